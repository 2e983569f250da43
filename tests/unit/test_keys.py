"""Key templates: parsing, exact encodings, strict decoding, limits, prefixes, condition plans."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from enum import Enum, IntEnum
from typing import Annotated, Any, Literal, NewType, Optional, Union

import pytest

from dynaorm._bounds import MATCH_NONE, KeyCondition, key_matches
from dynaorm._keys import KeyTemplate, LiteralSegment, SlotSegment
from dynaorm._slots import resolve_slot
from dynaorm.errors import KeyDecodingError, KeyEncodingError, KeyTemplateError

UTC = dt.timezone.utc


class Color(Enum):
    RED = "red"
    GREEN = "green"


class Level(IntEnum):
    LOW = -1
    HIGH = 7


class Answer(Enum):
    YES = True
    NO = False


class Mixed(Enum):
    A = "a"
    B = 1


FIELDS: dict[str, Any] = {
    "user_id": str,
    "s": str,
    "t": str,
    "n": int,
    "at": dt.datetime,
    "day": dt.date,
    "u": uuid.UUID,
    "flag": bool,
    "color": Color,
    "level": Level,
    "answer": Answer,
    "score": float,
    "maybe": Optional[int],  # noqa: UP045 - the typing.Optional spelling must work too
}


def tpl(source: str, max_bytes: int = 1024, role: str = "sk") -> KeyTemplate:
    return KeyTemplate.parse(source, FIELDS, entity="Post", role=role, max_bytes=max_bytes)


def one(field: str, value: Any) -> str:
    return tpl(f"K#{{{field}}}").encode({field: value})[2:]


# --- resolve_slot ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("annotation", "kind", "optional"),
    [
        (str, "str", False),
        (int, "int", False),
        (bool, "bool", False),
        (dt.datetime, "datetime", False),
        (dt.date, "date", False),
        (uuid.UUID, "uuid", False),
        (Color, "enum", False),
        (Optional[int], "int", True),  # noqa: UP045 - typing.Union spellings must work
        (dt.date | None, "date", True),
        (Union[None, dt.datetime], "datetime", True),  # noqa: UP007 - same
        (Literal["a", "b"], "str", False),
        (Literal[1, 2] | None, "int", True),
        (Annotated[str, "meta"], "str", False),
        (Optional[Annotated[uuid.UUID, "v4"]], "uuid", True),  # noqa: UP045 - same
        (NewType("UserId", str), "str", False),
        (Literal[Color.RED], "enum", False),
    ],
)
def test_resolve_slot_supported(annotation: Any, kind: str, optional: bool) -> None:
    codec = resolve_slot(annotation, entity="Post", field="f", template="P#{f}")
    assert (codec.kind, codec.optional) == (kind, optional)


def test_enum_value_kinds() -> None:
    assert resolve_slot(Color, entity="E", field="f", template="t").value_kind == "str"
    assert resolve_slot(Level, entity="E", field="f", template="t").value_kind == "int"
    assert resolve_slot(Answer, entity="E", field="f", template="t").value_kind == "bool"


@pytest.mark.parametrize(
    ("annotation", "shown"),
    [
        (float, "float"),
        (Decimal, "Decimal"),
        (bytes, "bytes"),
        (list[int], "list[int]"),
        (int | str, "int | str"),
        (Optional[int | str], "Union[int, str, NoneType]"),  # noqa: UP045 - typing spelling
        (Mixed, "Mixed"),
        (Literal["a", 1], "Literal['a', 1]"),
        (type(None), "NoneType"),
    ],
)
def test_resolve_slot_refuses(annotation: Any, shown: str) -> None:
    with pytest.raises(KeyTemplateError) as info:
        resolve_slot(annotation, entity="Post", field="score", template="POST#{score}", role="sk")
    message = str(info.value)
    assert "Post.sk template 'POST#{score}'" in message
    assert "field 'score'" in message
    assert shown in message
    assert (info.value.entity, info.value.field) == ("Post", "score")


def test_float_message_is_exact() -> None:
    with pytest.raises(KeyTemplateError) as info:
        tpl("POST#{score}")
    assert info.value.message == (
        "Post.sk template 'POST#{score}': field 'score' has type float, which cannot be "
        "encoded order-preservingly in a key; use int, str, datetime, date, UUID, bool or an Enum"
    )


def test_out_of_range_int_enum_is_refused() -> None:
    class Huge(IntEnum):
        BIG = 10**20

    with pytest.raises(KeyTemplateError, match="outside the key range"):
        resolve_slot(Huge, entity="E", field="f", template="t")


# --- parse -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("", "the template is empty"),
        ("A##B", "segment 2 '' is empty"),
        ("A#", "segment 2 '' is empty"),
        ("#A", "segment 1 '' is empty"),
        ("POST{s}", "segment 1 'POST{s}' mixes text with a placeholder"),
        ("{s}{t}", "segment 1 '{s}{t}' mixes"),
        ("A#{}", "segment 2 '{}' mixes"),
        ("A#{nope}", "'{nope}' names no field of Post"),
        ("A#{s}#{s}", "field 's' appears twice"),
        ("A B#{s}", "contains ' '"),
        ("A$#{s}", "contains '$'"),
        ("A\x01", "contains '\\x01'"),
        ("A}", "mixes"),
        ("A#{score}", "field 'score' has type float"),
    ],
)
def test_parse_errors_name_entity_role_template_and_part(source: str, fragment: str) -> None:
    with pytest.raises(KeyTemplateError) as info:
        tpl(source)
    assert info.value.message.startswith(f"Post.sk template {source!r}: ")
    assert fragment in info.value.message
    assert info.value.entity == "Post"


def test_parse_shortest_key_over_the_limit() -> None:
    with pytest.raises(KeyTemplateError, match="shortest key is 33 bytes, over the 32-byte"):
        tpl("ORDER#{at}", max_bytes=32)  # 5 + 1 + 27
    assert tpl("AT#{at}", max_bytes=30).encode({"at": dt.datetime(2024, 1, 1, tzinfo=UTC)})


def test_parse_structure() -> None:
    t = tpl("POST#{s}#AT#{at}")
    assert t.segments == (
        LiteralSegment("POST"),
        SlotSegment("s", t.slots[0].codec),
        LiteralSegment("AT"),
        SlotSegment("at", t.slots[1].codec),
    )
    assert (t.fields, t.is_static, t.source, t.role, t.entity) == (
        ("s", "at"),
        False,
        "POST#{s}#AT#{at}",
        "sk",
        "Post",
    )
    assert tpl("META").is_static
    assert tpl("META").encode({}) == "META"
    assert tpl("%~é#{s}").encode({"s": "x"}) == "%~é#x"


# --- encodings -------------------------------------------------------------------------


def test_user_key() -> None:
    assert tpl("USER#{user_id}", role="pk").encode({"user_id": "u1"}) == "USER#u1"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("u1", "u1"),
        ("", ""),
        ("a#b", "a$cb"),
        ("$", "$d"),
        ("%", "%"),
        (" ", "$`"),
        ("\x00", "$@"),
        ("AbC", "AbC"),
        ("é😀", "é😀"),
    ],
)
def test_str_encoding(value: str, text: str) -> None:
    assert one("s", value) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "00000000000000000000"),
        (42, "00000000000000000042"),
        (-1, "-99999999999999999999"),
        (10**20 - 1, "99999999999999999999"),
        (-(10**20 - 1), "-00000000000000000001"),
        (Level.HIGH, "00000000000000000007"),
    ],
)
def test_int_encoding(value: int, text: str) -> None:
    assert one("n", value) == text


def test_other_kinds_encoding() -> None:
    plus2 = dt.timezone(dt.timedelta(hours=2))
    assert one("at", dt.datetime(2024, 3, 1, 1, 30, tzinfo=plus2)) == "2024-02-29T23:30:00.000000Z"
    assert one("at", dt.datetime(1, 1, 1, tzinfo=UTC)) == "0001-01-01T00:00:00.000000Z"
    assert one("day", dt.date(7, 2, 3)) == "0007-02-03"
    u = uuid.UUID("12345678-9ABC-DEF0-1234-56789ABCDEF0")
    assert one("u", u) == "12345678-9abc-def0-1234-56789abcdef0"
    assert (one("flag", True), one("flag", False)) == ("true", "false")
    assert (one("color", Color.RED), one("color", "green")) == ("red", "green")
    assert (one("level", Level.LOW), one("level", 7)) == ("-99999999999999999999", "0" * 19 + "7")
    assert one("answer", Answer.NO) == "false"


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("n", True, "expected an int, got bool"),
        ("n", 10**20, "outside the key range"),
        ("n", -(10**20), "outside the key range"),
        ("n", "5", "expected an int, got str"),
        ("n", 5.0, "expected an int, got float"),
        ("s", 5, "expected a str, got int"),
        ("s", "\ud800", "lone surrogate"),
        ("flag", 1, "expected a bool"),
        ("at", dt.datetime(2024, 1, 1), "naive datetime in a key; give a timezone"),
        ("at", dt.date(2024, 1, 1), "expected a datetime, got date"),
        ("day", dt.datetime(2024, 1, 1, tzinfo=UTC), "expected a date, got datetime"),
        ("u", "12345678-9abc-def0-1234-56789abcdef0", "expected a UUID, got str"),
        ("color", "blue", "not a value of Color"),
        ("color", Level.LOW, "expected a Color member or value"),
        ("level", True, "expected a Level member or value"),
        ("s", None, "is None"),
        ("maybe", None, "is None"),
    ],
)
def test_encode_refuses(field: str, value: Any, fragment: str) -> None:
    with pytest.raises(KeyEncodingError) as info:
        tpl(f"K#{{{field}}}").encode({field: value})
    assert fragment in info.value.message
    assert info.value.message.startswith(f"Post.sk template 'K#{{{field}}}': field {field!r}")
    assert (info.value.entity, info.value.field) == ("Post", field)


def test_datetime_overflowing_utc() -> None:
    early = dt.datetime(1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    with pytest.raises(KeyEncodingError, match="outside years"):
        one("at", early)


def test_encode_missing_field() -> None:
    with pytest.raises(KeyEncodingError, match="no value for field 't'"):
        tpl("A#{s}#{t}").encode({"s": "x"})


def test_has_none() -> None:
    t = tpl("A#{s}#{maybe}")
    assert t.has_none({"s": "x", "maybe": None})
    assert not t.has_none({"s": "x", "maybe": 1})
    assert not t.has_none({"s": "x"})


# --- decoding --------------------------------------------------------------------------


def test_decode_round_trip_example() -> None:
    t = tpl("POST#{s}#{n}#{at}#{color}")
    values = {"s": "a#$ b", "n": -3, "at": dt.datetime(2024, 1, 1, tzinfo=UTC), "color": Color.RED}
    assert t.decode(t.encode(values)) == values


@pytest.mark.parametrize(
    ("field", "text"),
    [
        ("s", "a b"),
        ("s", "a$"),
        ("s", "a$e"),
        ("s", "a$?"),
        ("n", "42"),
        ("n", "-00000000000000000000"),
        ("n", "+00000000000000000001"),
        ("n", "0000000000000000004\uff12"),
        ("n", "000000000000000000042"),
        ("flag", "True"),
        ("flag", "1"),
        ("at", "2024-01-01T00:00:00Z"),
        ("at", "2024-01-01T00:00:00.000000+00:00"),
        ("at", "2024-02-30T00:00:00.000000Z"),
        ("at", "2024-01-01t00:00:00.000000Z"),
        ("day", "2024-1-01"),
        ("day", "2023-02-29"),
        ("u", "12345678-9ABC-def0-1234-56789abcdef0"),
        ("u", "123456789abcdef0123456789abcdef0"),
        ("color", "blue"),
        ("level", "00000000000000000003"),
    ],
)
def test_decode_rejects(field: str, text: str) -> None:
    t = tpl(f"K#{{{field}}}")
    with pytest.raises(KeyDecodingError) as info:
        t.decode("K#" + text)
    assert info.value.message.startswith(f"Post.sk key {'K#' + text!r} does not match template")
    assert info.value.field == field


@pytest.mark.parametrize("key", ["", "X#a", "K", "K#a#b", "K#a\n", "#a", "K#a\ud800"])
def test_decode_rejects_shape(key: str) -> None:
    with pytest.raises(KeyDecodingError) as info:
        tpl("K#{s}").decode(key)
    assert (info.value.entity, info.value.key) == ("Post", key)


# --- limits ----------------------------------------------------------------------------


def test_length_limit_counts_utf8_bytes() -> None:
    t = tpl("K#{s}", max_bytes=10)
    assert t.encode({"s": "a" * 8}) == "K#aaaaaaaa"
    assert t.encode({"s": "é" * 4}) == "K#éééé"  # 2 + 8 bytes
    assert t.encode({"s": "😀aaaa"}) == "K#😀aaaa"
    with pytest.raises(KeyEncodingError, match="the key is 11 bytes, over the 10-byte limit"):
        t.encode({"s": "a" * 9})
    with pytest.raises(KeyEncodingError, match="11 bytes"):
        t.encode({"s": "ééééa"})
    with pytest.raises(KeyEncodingError, match="11 bytes"):
        t.encode({"s": "aaaaaaa$"})  # '$' is escaped to two bytes
    with pytest.raises(KeyDecodingError):
        t.decode("K#aaaaaaaaa")


def test_empty_key_is_refused() -> None:
    with pytest.raises(KeyEncodingError, match="would be empty"):
        tpl("{s}").encode({"s": ""})
    assert tpl("K#{s}").encode({"s": ""}) == "K#"
    assert tpl("{s}#{t}").encode({"s": "", "t": ""}) == "#"


# --- prefix ----------------------------------------------------------------------------


def test_prefix() -> None:
    t = tpl("ORDER#{s}#ITEM#{n}")
    assert t.prefix({}) == "ORDER#"
    assert t.prefix({"s": "1"}) == "ORDER#1#ITEM#"
    assert t.prefix({"s": "1", "n": 2}) == "ORDER#1#ITEM#00000000000000000002"
    assert t.prefix({"s": "1", "other": 3}) == "ORDER#1#ITEM#"
    assert tpl("{s}#{n}").prefix({}) == ""
    assert tpl("{s}#{n}").prefix({"s": ""}) == "#"
    with pytest.raises(KeyEncodingError, match="field 'n' is given but 's' before it is not"):
        t.prefix({"n": 2})
    with pytest.raises(KeyEncodingError, match="over the 30-byte limit"):
        tpl("ORDER#{s}#{n}", max_bytes=30).prefix({"s": "x" * 30})


@pytest.mark.parametrize("other", ["10", "1#", "1 ", "1$", "1%", ""])
def test_prefix_is_segment_safe(other: str) -> None:
    t = tpl("ORDER#{s}#ITEM#{n}")
    cond = KeyCondition("begins_with", (t.prefix({"s": "1"}),))
    assert key_matches(cond, t.encode({"s": "1", "n": 5}))
    assert not key_matches(cond, t.encode({"s": other, "n": 5}))


# --- conditions ------------------------------------------------------------------------

P = "POST#"
E5 = "00000000000000000005"
E9 = "00000000000000000009"


@pytest.mark.parametrize(
    ("source", "fixed", "op", "field", "operand", "expected"),
    [
        ("POST#{n}", {}, None, None, None, KeyCondition("begins_with", (P,))),
        ("POST#{n}", {"n": 5}, None, None, None, KeyCondition("=", (P + E5,))),
        ("{n}#X", {}, None, None, None, None),
        ("POST#{n}", {}, "=", "n", 5, KeyCondition("=", (P + E5,))),
        ("POST#{n}", {}, ">", "n", 5, KeyCondition("between", (P + E5 + "$", "POST$"))),
        ("POST#{n}", {}, ">=", "n", 5, KeyCondition("between", (P + E5, "POST$"))),
        ("POST#{n}", {}, "<=", "n", 5, KeyCondition("between", (P, P + E5))),
        ("POST#{n}#{s}", {}, ">", "n", 5, KeyCondition("between", (P + E5 + "$", "POST$"))),
        ("POST#{n}#{s}", {}, ">=", "n", 5, KeyCondition("between", (P + E5 + "#", "POST$"))),
        ("POST#{n}#{s}", {}, "<=", "n", 5, KeyCondition("between", (P, P + E5 + "$"))),
        ("POST#{n}#{s}", {}, "<", "n", 5, KeyCondition("between", (P, P + E5))),
        (
            "POST#{n}#{s}",
            {},
            "between",
            "n",
            (5, 9),
            KeyCondition("between", (P + E5 + "#", P + E9 + "$")),
        ),
        ("POST#{n}", {}, "between", "n", (5, 9), KeyCondition("between", (P + E5, P + E9))),
        ("POST#{n}", {}, "between", "n", (9, 5), MATCH_NONE),
        ("{n}", {}, ">", "n", 5, KeyCondition(">", (E5,))),
        ("{n}", {}, ">=", "n", 5, KeyCondition(">=", (E5,))),
        ("{n}", {}, "<", "n", 5, KeyCondition("<", (E5,))),
        ("{n}", {}, "<=", "n", 5, KeyCondition("<=", (E5,))),
        ("{n}#X", {}, ">", "n", 5, KeyCondition(">=", (E5 + "$",))),
        ("{n}#X", {}, ">=", "n", 5, KeyCondition(">=", (E5 + "#",))),
        ("{n}#X", {}, "<=", "n", 5, KeyCondition("<=", (E5 + "$",))),
        ("{n}#X", {}, "between", "n", (5, 9), KeyCondition("between", (E5 + "#", E9 + "$"))),
        ("{s}", {}, ">", "s", "", None),
        ("{s}", {}, ">=", "s", "", None),
        ("{s}", {}, "<", "s", "", MATCH_NONE),
        ("{s}", {}, "<=", "s", "", MATCH_NONE),
        ("POST#{s}", {}, "<", "s", "", MATCH_NONE),
        ("POST#{s}", {}, "<=", "s", "", KeyCondition("between", (P, P))),
        ("POST#{s}", {}, "begins_with", "s", "a#", KeyCondition("begins_with", (P + "a$c",))),
        ("{s}", {}, "begins_with", "s", "", None),
        (
            "A#{s}#B#{at}",
            {"s": "x"},
            "begins_with",
            "at",
            "2024-0",
            KeyCondition("begins_with", ("A#x#B#2024-0",)),
        ),
        (
            "A#{day}",
            {},
            "begins_with",
            "day",
            "2024-04-3",
            KeyCondition("begins_with", ("A#2024-04-3",)),
        ),
    ],
)
def test_condition_plans(
    source: str,
    fixed: dict[str, Any],
    op: str | None,
    field: str | None,
    operand: Any,
    expected: KeyCondition | None,
) -> None:
    assert tpl(source).condition(fixed, op=op, field=field, operand=operand) == expected


def test_strict_less_on_last_slot_uses_greatest_lower_key() -> None:
    cond = tpl("P#{s}", max_bytes=8).condition({}, op="<", field="s", operand="b")
    # the greatest string below "P#b" within 8 bytes: "P#a", then U+10FFFF and U+007F
    assert cond == KeyCondition("between", ("P#", "P#a\U0010ffff\x7f"))
    assert len(cond.values[1].encode()) == 8
    assert key_matches(cond, "P#a\U0010ffff")
    assert not key_matches(cond, "P#b")


def test_range_operands_longer_than_a_key_are_clamped() -> None:
    t = tpl("P#{s}", max_bytes=6)
    assert t.condition({}, op="<=", field="s", operand="abcdz") == KeyCondition(
        "between", ("P#", "P#abcd")
    )
    assert t.condition({}, op=">=", field="s", operand="abcdz") == KeyCondition(
        "between", ("P#abce", "P$")
    )
    assert t.condition({}, op=">", field="s", operand="\U0010ffff" * 2) == MATCH_NONE
    with pytest.raises(KeyEncodingError, match="over the 6-byte limit"):
        t.condition({}, op="=", field="s", operand="abcdz")


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"op": "<", "field": "s", "operand": 1}, "next slot after the fixed ones, 'n'"),
        ({"op": "<", "field": None, "operand": 1}, "next slot"),
        ({"op": "~", "field": "n", "operand": 1}, "unsupported condition operator '~'"),
        ({"op": "between", "field": "n", "operand": 1}, "(low, high) pair"),
        ({"op": "<", "field": "n", "operand": None}, "is None"),
        ({"op": "<", "field": "n", "operand": "1"}, "expected an int"),
        ({"op": "begins_with", "field": "n", "operand": "1"}, "begins_with needs a str"),
    ],
)
def test_condition_refuses(kwargs: dict[str, Any], fragment: str) -> None:
    with pytest.raises(KeyEncodingError) as info:
        tpl("A#{n}#{s}").condition({}, **kwargs)
    assert fragment in info.value.message


def test_condition_refuses_when_all_fixed_or_gapped() -> None:
    t = tpl("A#{n}#{s}")
    with pytest.raises(KeyEncodingError, match="every slot is fixed"):
        t.condition({"n": 1, "s": "x"}, op="<", field="s", operand="y")
    with pytest.raises(KeyEncodingError, match="'s' is given but 'n' before it is not"):
        t.condition({"s": "x"})


@pytest.mark.parametrize("partial", ["2024-13", "2024-02-30", "2023-02-29", "x", "2024-01-01 "])
def test_partial_datetime_must_start_a_valid_encoding(partial: str) -> None:
    with pytest.raises(KeyEncodingError, match="does not start any valid UTC"):
        tpl("A#{at}").condition({}, op="begins_with", field="at", operand=partial)


def test_key_matches_compares_utf8_bytes() -> None:
    # U+FFFF sorts below U+10000 by code point and by UTF-8 bytes, but not in UTF-16
    assert key_matches(KeyCondition("<", ("\U00010000",)), "\uffff")
    assert key_matches(KeyCondition("between", ("a", "b")), "a\U0010ffff")
    assert not key_matches(KeyCondition("begins_with", ("ab",)), "a")
    assert key_matches(KeyCondition(">=", ("a",)), "a")
    assert not key_matches(MATCH_NONE, "$d")
