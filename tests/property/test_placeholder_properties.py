"""Placeholder allocation over hostile names and values: no user text reaches an expression."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from dynaorm._conditions import Condition
from dynaorm._expressions import Path, Placeholders
from dynaorm._update import Update, projection_expression
from dynaorm.errors import ExpressionError

HOSTILE = ["#", "#n0", ":v0", ":", ")", "(", ".", "[0]", "a.b", " ", "a b", "é", "名前", "🙂"]
RESERVED = ["name", "status", "data", "size", "ttl", "AND", "OR", "NOT", "SET", "IN"]
names_st = st.one_of(st.sampled_from(HOSTILE + RESERVED), st.text(min_size=1, max_size=6))
values_st = st.one_of(
    st.text(max_size=6),
    st.sampled_from([":v0", "#n0", "a) OR (b", "SET x = :v1"]),
    st.integers(-(10**20), 10**20),
    st.none(),
    st.lists(st.text(max_size=3), max_size=2),
)

# Everything an expression may contain: placeholders, list indexes, operators, keywords.
FIXED = (
    "AND|OR|NOT|BETWEEN|IN|SET|REMOVE|ADD|DELETE|attribute_exists|attribute_not_exists"
    "|attribute_type|begins_with|contains|size|if_not_exists|list_append"
)
TOKEN = re.compile(rf"(?:#n\d+|:v\d+|\[\d+\]|[.,() ]|<>|<=|>=|[=<>]|\b(?:{FIXED})\b)*")

# A shape refers to names and values by position, so the same shape can be built twice:
# once with hostile names and values, once with tame ones.
segment_st = st.one_of(
    st.tuples(st.just("n"), st.integers(0, 5)), st.tuples(st.just("i"), st.integers(0, 3))
)
path_shape = st.tuples(st.integers(0, 5), st.lists(segment_st, max_size=3))
value_ref = st.integers(0, 5)
leaf_shape = st.one_of(
    st.tuples(st.just("cmp"), path_shape, st.sampled_from(["==", "!=", "<", ">="]), value_ref),
    st.tuples(st.just("attrs"), path_shape, path_shape),
    st.tuples(st.just("between"), path_shape, value_ref, value_ref),
    st.tuples(st.just("in"), path_shape, st.lists(value_ref, min_size=1, max_size=3)),
    st.tuples(st.just("fn"), st.sampled_from(["begins_with", "contains", "exists"]), path_shape),
    st.tuples(st.just("size"), path_shape, value_ref),
)
condition_shape = st.recursive(
    leaf_shape,
    lambda inner: st.one_of(
        st.tuples(st.sampled_from(["and", "or"]), inner, inner),
        st.tuples(st.just("not"), inner),
    ),
    max_leaves=6,
)
update_shape = st.lists(
    st.tuples(
        st.sampled_from(
            ["set", "set_if_not_exists", "append", "prepend", "add", "delete", "remove"]
        ),
        path_shape,
        value_ref,
    ),
    min_size=1,
    max_size=5,
)
world_st = st.tuples(
    st.lists(names_st, min_size=6, max_size=6, unique=True),
    st.lists(values_st, min_size=6, max_size=6),
)


class Builder:
    """Builds paths, conditions and updates from shapes, over one set of names and values."""

    def __init__(self, names: list[str], values: list[Any]) -> None:
        self.names, self.values = names, values

    def path(self, shape: Any) -> Path:
        first, rest = shape
        segments = [self.names[ref] if kind == "n" else ref for kind, ref in rest]
        return Path(self.names[first], *segments)

    def condition(self, shape: Any) -> Condition:
        kind, *args = shape
        if kind in ("and", "or"):
            left, right = self.condition(args[0]), self.condition(args[1])
            return left & right if kind == "and" else left | right
        if kind == "not":
            return ~self.condition(args[0])
        return self.leaf(kind, args)

    def leaf(self, kind: str, args: list[Any]) -> Condition:
        if kind == "fn":
            function, path = args[0], self.path(args[1])
            if function == "exists":
                return path.exists()
            value = self.values[0]
            prefix = value if isinstance(value, str) else "p"
            return path.begins_with(prefix) if function == "begins_with" else path.contains(value)
        path = self.path(args[0])
        if kind == "cmp":
            compare: Callable[[Any, Any], Condition] = {
                "==": lambda a, b: a == b,
                "!=": lambda a, b: a != b,
                "<": lambda a, b: a < b,
                ">=": lambda a, b: a >= b,
            }[args[1]]
            return compare(path, self.values[args[2]])
        if kind == "attrs":
            return path == self.path(args[1])
        if kind == "between":
            return path.between(*self.ordered(self.values[args[1]], self.values[args[2]]))
        if kind == "in":
            return path.is_in([self.values[ref] for ref in args[1]])
        size_condition: Condition = path.size() <= self.values[args[1]]
        return size_condition

    @staticmethod
    def ordered(low: Any, high: Any) -> tuple[Any, Any]:
        """Swap bounds DynamoDB would refuse (low > high of one type)."""
        if isinstance(low, str) and isinstance(high, str):
            swap = low.encode() > high.encode()
        else:
            swap = isinstance(low, int) and isinstance(high, int) and low > high
        return (high, low) if swap else (low, high)

    def update(self, shape: list[Any]) -> Update:
        update = Update()
        for action, path_shape_, ref in shape:
            value = self.values[ref]
            number = value if isinstance(value, int) else 1
            arguments: dict[str, tuple[Any, ...]] = {
                "set": (value,),
                "set_if_not_exists": (value,),
                "append": ([value],),
                "prepend": ([value],),
                "add": (number,),
                "delete": ({str(value)},),
                "remove": (),
            }
            try:
                update = getattr(update, action)(self.path(path_shape_), *arguments[action])
            except ExpressionError as error:  # overlapping paths: same for every naming
                if "overlaps" not in str(error):
                    raise
        return update


def tame(names: list[str], values: list[Any]) -> Builder:
    return Builder([f"x{i}" for i in range(len(names))], [0] * len(values))


def check_text(text: str, ph: Placeholders) -> None:
    assert TOKEN.fullmatch(text), text
    used_names = list(dict.fromkeys(re.findall(r"#n\d+", text)))
    assert used_names == [f"#n{i}" for i in range(len(ph.names))]  # first use = allocation
    assert re.findall(r":v\d+", text) == [f":v{i}" for i in range(len(ph.values))]


@given(world_st, path_shape)
def test_path_names_are_recoverable_in_order(world: Any, shape: Any) -> None:
    path = Builder(*world).path(shape)
    ph = Placeholders()
    text = path.serialize(ph)
    check_text(text, ph)
    recovered = [ph.names[p] for p in re.findall(r"#n\d+", text)]
    assert recovered == [s for s in path.segments if isinstance(s, str)]
    assert re.findall(r"\[(\d+)\]", text) == [str(s) for s in path.segments if isinstance(s, int)]


@given(world_st, condition_shape)
def test_condition_text_depends_only_on_the_shape(world: Any, shape: Any) -> None:
    ph, again, tamed = Placeholders(), Placeholders(), Placeholders()
    text = Builder(*world).condition(shape).serialize(ph)
    check_text(text, ph)
    assert Builder(*world).condition(shape).serialize(again) == text  # deterministic
    assert (again.names, again.values) == (ph.names, ph.values)
    assert tame(*world).condition(shape).serialize(tamed) == text  # no name or value leaks
    assert len(tamed.names) == len(ph.names)
    assert set(ph.names.values()) <= set(world[0])


@given(world_st, update_shape)
def test_update_text_depends_only_on_the_shape(world: Any, shape: Any) -> None:
    update = Builder(*world).update(shape)
    if not len(update):
        return
    ph, tamed = Placeholders(), Placeholders()
    text = update.serialize(ph)
    check_text(text, ph)
    assert tame(*world).update(shape).serialize(tamed) == text
    assert Builder(*world).update(shape).serialize(Placeholders()) == text


@given(world_st, st.lists(path_shape, min_size=1, max_size=4))
def test_projection_text_depends_only_on_the_shape(world: Any, shapes: list[Any]) -> None:
    def project(builder: Builder, ph: Placeholders) -> str | None:
        try:
            return projection_expression([builder.path(s) for s in shapes], ph)
        except ExpressionError:
            return None

    ph = Placeholders()
    text = project(Builder(*world), ph)
    assert text == project(tame(*world), Placeholders())
    if text is not None:
        check_text(text, ph)
