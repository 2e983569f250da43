"""Exact expression text and placeholder maps for paths, conditions, updates and keys."""

from __future__ import annotations

import copy
import pickle
from typing import Any

import pytest
from pydantic import BaseModel, Field

from dynaorm._conditions import and_, build_condition
from dynaorm._expressions import Path, Placeholders
from dynaorm._update import Update, key_condition_expression, projection_expression
from dynaorm.errors import ExpressionError, UnknownFieldError


class Author(BaseModel):
    name: str
    email: str = Field(alias="mail")


class Post(BaseModel):
    author: Author
    editor: Author | None = None
    items: list[Author]
    pair: tuple[int, Author]
    meta: dict[str, int]
    extra: Any = None
    likes: int
    tags: set[str] = set()


def field(name: str) -> Path:
    return Path(name, annotation=Post.model_fields[name].annotation, entity="Post")


def render(condition: Any) -> tuple[str, dict[str, str], dict[str, Any]]:
    ph = Placeholders()
    text = build_condition(condition, ph)
    return text, ph.names, ph.values


# --- placeholders -------------------------------------------------------------------


def test_placeholders_reuse_names_but_not_values() -> None:
    ph = Placeholders()
    assert [ph.name("a"), ph.name("b"), ph.name("a")] == ["#n0", "#n1", "#n0"]
    assert [ph.value({"N": "1"}), ph.value({"N": "1"})] == [":v0", ":v1"]
    assert ph.names == {"#n0": "a", "#n1": "b"}
    assert ph.values == {":v0": {"N": "1"}, ":v1": {"N": "1"}}


def test_to_request_leaves_out_empty_maps() -> None:
    ph = Placeholders()
    assert ph.to_request() == {}
    ph.name("a")
    assert ph.to_request() == {"ExpressionAttributeNames": {"#n0": "a"}}


# --- paths --------------------------------------------------------------------------


def test_path_serializes_names_and_indexes_literally() -> None:
    ph = Placeholders()
    assert Path("a.b", "c[0]", 3, "#d")[1].serialize(ph) == "#n0.#n1[3].#n2[1]"
    assert ph.names == {"#n0": "a.b", "#n1": "c[0]", "#n2": "#d"}


def test_navigation_follows_model_fields_and_aliases() -> None:
    assert field("author").name.segments == ("author", "name")
    assert field("author").email.segments == ("author", "mail")  # stored under its alias
    assert field("author")["mail"].segments == ("author", "mail")
    assert field("editor").name.annotation is str  # Optional unwrapped
    assert field("items")[0].name.segments == ("items", 0, "name")
    assert field("pair")[1].email.segments == ("pair", 1, "mail")
    assert field("meta")["any key.with dots"].annotation is int
    assert field("extra").x[2].y.segments == ("extra", "x", 2, "y")
    assert Path("free")["a"][0].b.segments == ("free", "a", 0, "b")


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: field("author").nmae, "Post.author has no field 'nmae'"),
        (lambda: field("items")[0].nope, "Post.items[0] has no field 'nope'"),
        (lambda: field("likes").x, "Post.likes has no 'x': int values have no parts"),
        (lambda: field("tags")[0], "Post.tags has no 0"),
        (lambda: field("items").name, "list values are not navigated by name"),
        (lambda: field("meta")[0], "dict values are not navigated by index"),
        (lambda: field("author")[0], "Post.author has no 0"),
        (lambda: field("pair")[2], "has 2 elements"),
    ],
)
def test_navigation_refuses_unknown_parts(build: Any, message: str) -> None:
    with pytest.raises(UnknownFieldError, match=message.replace("[", r"\[")) as info:
        build()
    assert info.value.entity == "Post"


def test_unknown_field_lists_valid_fields() -> None:
    with pytest.raises(UnknownFieldError) as info:
        _ = field("author").nmae
    assert "Author fields: name, email (stored as mail)" in str(info.value)
    assert info.value.field == "author.nmae"
    assert not hasattr(field("author"), "nmae")


def test_private_and_dunder_names_are_not_paths() -> None:
    path = field("author")
    with pytest.raises(AttributeError):
        _ = path._private
    with pytest.raises(AttributeError):
        _ = path.__wrapped__
    assert copy.copy(path).segments == ("author",)
    restored = pickle.loads(pickle.dumps(field("author").name))
    assert (restored.segments, restored.annotation, restored.entity) == (
        ("author", "name"),
        str,
        "Post",
    )


def test_paths_are_immutable_hashable_and_not_iterable() -> None:
    path = Path("a")
    with pytest.raises(AttributeError):
        path.x = 1
    assert len({path, Path("a")}) == 2  # identity hashing
    assert {path: 1}[path] == 1
    with pytest.raises(TypeError):
        list(path)  # type: ignore[call-overload]  # mypy refuses it too


@pytest.mark.parametrize("segments", [(), (0,), ("",), ("a", -1), ("a", "")])
def test_invalid_segments_are_refused(segments: tuple[Any, ...]) -> None:
    with pytest.raises(ExpressionError):
        Path(*segments)


def test_non_str_int_segments_are_dynaorm_errors() -> None:
    # bool is an int subclass, but True is not a list index.
    with pytest.raises(ExpressionError, match="True"):
        Path("a", True)
    with pytest.raises(ExpressionError):
        Path("a")[1.5]  # type: ignore[index]
    with pytest.raises(ExpressionError):
        Path("a")[False]
    with pytest.raises(ExpressionError, match="lone surrogate"):
        Path("a")["x\ud800"]


class _Hostile(int):
    """An int whose text forms try to inject expression syntax."""

    def __format__(self, spec: str) -> str:
        return "0] OR attribute_exists(#n0) OR #n0[0"

    def __str__(self) -> str:
        return self.__format__("")

    __repr__ = __str__


def test_index_segments_are_written_as_plain_ints() -> None:
    path = Path("a", _Hostile(2))["b"]
    assert type(path.segments[1]) is int
    ph = Placeholders()
    assert path.serialize(ph) == "#n0[2].#n1"
    assert Path("a")[_Hostile(3)].serialize(Placeholders()) == "#n0[3]"


# --- conditions ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "text"),
    [
        (Path("a") == 1, "#n0 = :v0"),
        (Path("a") != 1, "#n0 <> :v0"),
        (Path("a") < 1, "#n0 < :v0"),
        (Path("a") <= 1, "#n0 <= :v0"),
        (Path("a") > 1, "#n0 > :v0"),
        (Path("a") >= 1, "#n0 >= :v0"),
        (1 < Path("a"), "#n0 > :v0"),  # noqa: SIM300 (the reflected operator is the point)
    ],
)
def test_comparisons(condition: Any, text: str) -> None:
    assert render(condition) == (text, {"#n0": "a"}, {":v0": {"N": "1"}})


def test_functions_and_ranges() -> None:
    a = Path("a")
    assert render(a.between(1, 2)) == (
        "#n0 BETWEEN :v0 AND :v1",
        {"#n0": "a"},
        {":v0": {"N": "1"}, ":v1": {"N": "2"}},
    )
    assert render(a.begins_with("x"))[0] == "begins_with(#n0, :v0)"
    assert render(a.contains("x"))[0] == "contains(#n0, :v0)"
    assert render(a.exists()) == ("attribute_exists(#n0)", {"#n0": "a"}, {})
    assert render(a.not_exists())[0] == "attribute_not_exists(#n0)"
    assert render(a.is_type("SS")) == (
        "attribute_type(#n0, :v0)",
        {"#n0": "a"},
        {":v0": {"S": "SS"}},
    )
    assert render(a.is_in("x", "y"))[0] == "#n0 IN (:v0, :v1)"
    assert render(a.is_in(["x", "y", "z"]))[0] == "#n0 IN (:v0, :v1, :v2)"
    assert render(a.size() >= 2) == ("size(#n0) >= :v0", {"#n0": "a"}, {":v0": {"N": "2"}})
    assert render(a.size().between(1, 3))[0] == "size(#n0) BETWEEN :v0 AND :v1"


def test_comparing_two_attributes_and_nested_paths() -> None:
    text, names, values = render(field("author").name == field("items")[0].name)
    assert text == "#n0.#n1 = #n2[0].#n1"
    assert names == {"#n0": "author", "#n1": "name", "#n2": "items"}
    assert values == {}


def test_values_are_encoded_by_the_codec() -> None:
    _, _, values = render(Path("t").contains({"a"}) & (Path("n") == None))  # noqa: E711
    assert values == {":v0": {"SS": ["a"]}, ":v1": {"NULL": True}}


def test_precedence_is_explicit() -> None:
    a, b, c = Path("a") == 1, Path("b") == 2, Path("c") == 3
    assert render(a & b | c)[0] == "(#n0 = :v0 AND #n1 = :v1) OR #n2 = :v2"
    assert render(a & (b | c))[0] == "#n0 = :v0 AND (#n1 = :v1 OR #n2 = :v2)"
    assert render(a & b & c)[0] == "#n0 = :v0 AND #n1 = :v1 AND #n2 = :v2"
    assert render(~(a | b))[0] == "NOT (#n0 = :v0 OR #n1 = :v1)"
    assert render(~a & b)[0] == "NOT #n0 = :v0 AND #n1 = :v1"
    assert render(~~a)[0] == "#n0 = :v0"


def test_conditions_have_no_truth_value() -> None:
    condition = Path("likes") > 3
    with pytest.raises(TypeError, match="&, \\| and ~"):
        bool(condition)
    with pytest.raises(TypeError):
        _ = condition and condition
    with pytest.raises(TypeError):
        _ = 1 < Path("likes") < 5


def test_and_folds_and_skips_none() -> None:
    a, b = Path("a") == 1, Path("b") == 2
    assert and_() is None
    assert and_(None, None) is None
    assert and_(None, a) is a
    assert render(and_(a, None, b))[0] == "#n0 = :v0 AND #n1 = :v1"


def test_build_condition_refuses_non_conditions() -> None:
    with pytest.raises(ExpressionError):
        build_condition(True, Placeholders())  # type: ignore[arg-type]


def test_is_in_numbers_a_set_deterministically() -> None:
    _, _, values = render(Path("a").is_in({"c", "a", "b"}))
    assert values == {":v0": {"S": "a"}, ":v1": {"S": "b"}, ":v2": {"S": "c"}}


def test_is_in_takes_one_to_one_hundred_values() -> None:
    assert render(Path("a").is_in(range(100)))[0].count(":v") == 100
    with pytest.raises(ExpressionError, match="1 to 100"):
        Path("a").is_in(range(101))
    with pytest.raises(ExpressionError):
        Path("a").is_in([])


@pytest.mark.parametrize(
    "build",
    [
        lambda: Path("a") == set(),
        lambda: Path("a") == object(),
        lambda: Path("a") == float("inf"),
        lambda: Path("a") == (Path("b") == 1),
        lambda: Path("a").begins_with(3),
        lambda: Path("a").is_type("STRING"),
        lambda: Path("a").between(5, 1),
        lambda: Path("a").between("b", "a"),
    ],
)
def test_bad_operands_are_expression_errors(build: Any) -> None:
    with pytest.raises(ExpressionError, match=r"^\[expression\] a:"):
        build()


def test_errors_name_the_entity_and_path() -> None:
    with pytest.raises(ExpressionError) as info:
        _ = field("author").name == object()
    assert (info.value.entity, info.value.field) == ("Post", "author.name")
    assert "Post.author.name" in str(info.value)


# --- updates ------------------------------------------------------------------------


def serialize(update: Update) -> tuple[str, dict[str, str], dict[str, Any]]:
    ph = Placeholders()
    text = update.serialize(ph)
    return text, ph.names, ph.values


def test_update_clauses_in_fixed_order() -> None:
    update = (
        Update()
        .delete("d", {"x"})
        .add("c", 2)
        .remove("b")
        .set("a", "v")
        .set_if_not_exists("e", 0)
        .append("f", [1])
        .prepend("g", (2,))
    )
    text, names, values = serialize(update)
    assert text == (
        "SET #n0 = :v0, #n1 = if_not_exists(#n1, :v1), #n2 = list_append(#n2, :v2), "
        "#n3 = list_append(:v3, #n3) REMOVE #n4 ADD #n5 :v4 DELETE #n6 :v5"
    )
    assert names == {
        "#n0": "a",
        "#n1": "e",
        "#n2": "f",
        "#n3": "g",
        "#n4": "b",
        "#n5": "c",
        "#n6": "d",
    }
    assert values == {
        ":v0": {"S": "v"},
        ":v1": {"N": "0"},
        ":v2": {"L": [{"N": "1"}]},
        ":v3": {"L": [{"N": "2"}]},
        ":v4": {"N": "2"},
        ":v5": {"SS": ["x"]},
    }


def test_update_only_writes_used_clauses() -> None:
    assert serialize(Update().remove("a", "b"))[0] == "REMOVE #n0, #n1"
    assert serialize(Update().add("n", {1, 2}))[2] == {":v0": {"NS": ["1", "2"]}}
    assert serialize(Update().set(field("author").name, field("editor").name))[0] == (
        "SET #n0.#n1 = #n2.#n1"
    )
    assert serialize(Update().set("topic", None))[2] == {":v0": {"NULL": True}}
    assert serialize(Update().add(Path("counts")[0]["n"], 1))[0] == "ADD #n0[0].#n1 :v0"


def test_update_is_immutable() -> None:
    base = Update().set("a", 1)
    extended = base.set("b", 2)
    assert (len(Update()), len(base), len(extended)) == (0, 1, 2)
    assert serialize(base)[0] == "SET #n0 = :v0"


def test_empty_update_is_refused() -> None:
    with pytest.raises(ExpressionError, match="at least one action"):
        Update().serialize(Placeholders())


@pytest.mark.parametrize(
    "build",
    [
        lambda: Update().set("a", 1).remove("a"),
        lambda: Update().set("a", 1).set("a", 2),
        lambda: Update().set("a", 1).add(Path("a", "b"), 1),
        lambda: Update().remove(Path("a", 0, "b")).set(Path("a", 0), 1),
        lambda: Update().add("a", True),
        lambda: Update().add("a", "x"),
        lambda: Update().add("a", set()),
        lambda: Update().delete("a", 1),  # type: ignore[arg-type]
        lambda: Update().delete("a", frozenset()),
        lambda: Update().set("a", set()),
        lambda: Update().append("a", {"x"}),  # type: ignore[arg-type]
    ],
)
def test_update_refuses_what_dynamodb_would(build: Any) -> None:
    with pytest.raises(ExpressionError, match="a"):
        build()


def test_different_list_elements_do_not_overlap() -> None:
    update = Update().set(Path("l", 0), 1).remove(Path("l", 1))
    assert serialize(update)[0] == "SET #n0[0] = :v0 REMOVE #n0[1]"


def test_overlap_error_names_both_paths() -> None:
    with pytest.raises(ExpressionError, match=r"Post\.author\.name: overlaps Post\.author"):
        Update().set(field("author"), {"name": "x"}).remove(field("author").name)


# --- projections and key conditions -------------------------------------------------


def test_projection() -> None:
    ph = Placeholders()
    paths: list[Path | str] = ["PK", field("author").name, Path("PK"), field("items")[0]]
    assert projection_expression(paths, ph) == "#n0, #n1.#n2, #n3[0]"
    assert ph.names == {"#n0": "PK", "#n1": "author", "#n2": "name", "#n3": "items"}
    with pytest.raises(ExpressionError, match="overlaps"):
        projection_expression([field("author"), field("author").name], Placeholders())
    with pytest.raises(ExpressionError):
        projection_expression([], Placeholders())


@pytest.mark.parametrize(
    ("op", "values", "text"),
    [
        (None, (), "#n0 = :v0"),
        ("=", ("A",), "#n0 = :v0 AND #n1 = :v1"),
        ("begins_with", ("A",), "#n0 = :v0 AND begins_with(#n1, :v1)"),
        ("between", ("A", "B"), "#n0 = :v0 AND #n1 BETWEEN :v1 AND :v2"),
        ("<", ("A",), "#n0 = :v0 AND #n1 < :v1"),
        ("<=", ("A",), "#n0 = :v0 AND #n1 <= :v1"),
        (">", ("A",), "#n0 = :v0 AND #n1 > :v1"),
        (">=", ("A",), "#n0 = :v0 AND #n1 >= :v1"),
    ],
)
def test_key_conditions(op: str | None, values: tuple[str, ...], text: str) -> None:
    ph = Placeholders()
    assert key_condition_expression("PK", "USER#1", "SK", op, values, ph) == text
    assert ph.values == {f":v{i}": {"S": v} for i, v in enumerate(("USER#1", *values))}
    assert ph.names == ({"#n0": "PK", "#n1": "SK"} if op else {"#n0": "PK"})


@pytest.mark.parametrize(
    ("sk_name", "op", "values"),
    [
        ("SK", "<>", ("A",)),
        ("SK", "contains", ("A",)),
        (None, "=", ("A",)),
        ("SK", "between", ("A",)),
        ("SK", "=", ("A", "B")),
        ("SK", "between", ("B", "A")),
        ("SK", None, ("A",)),
    ],
)
def test_bad_key_conditions(sk_name: str | None, op: str | None, values: tuple[str, ...]) -> None:
    ph = Placeholders()
    with pytest.raises(ExpressionError):
        key_condition_expression("PK", "USER#1", sk_name, op, values, ph)
    assert ph.names == {}  # nothing allocated before the refusal


def test_models_compare_as_the_maps_they_are_stored_as() -> None:
    condition = Path("post", annotation=Post)["author"] == Author(name="a", mail="m")
    ph = Placeholders()
    assert build_condition(condition, ph) == "#n0.#n1 = :v0"
    assert ph.values == {":v0": {"M": {"name": {"S": "a"}, "mail": {"S": "m"}}}}
