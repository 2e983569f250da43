"""Exact encodings, refusals and item sizes of dynaorm._codec."""

from __future__ import annotations

import enum
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from dynaorm._codec import (
    MAX_ITEM_BYTES,
    check_item_size,
    decode_item,
    encode_item,
    from_attribute_value,
    item_size,
    to_attribute_value,
)
from dynaorm.errors import ItemEncodingError, ItemTooLarge

PLUS_TWO = timezone(timedelta(hours=2))


class Color(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


class Kind(str, enum.Enum):
    POST = "post"


class Tag(str):
    pass


# --- encoding -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, {"NULL": True}),
        (True, {"BOOL": True}),
        (False, {"BOOL": False}),
        ("", {"S": ""}),
        ("héllo 😀", {"S": "héllo 😀"}),
        (Tag("t"), {"S": "t"}),
        (0, {"N": "0"}),
        (-42, {"N": "-42"}),
        (10**38 - 1, {"N": "9" * 38}),
        (10**38, {"N": "1" + "0" * 38}),  # one significant digit: fits
        (12 * 10**100, {"N": "12" + "0" * 100}),
        (0.1, {"N": "0.1"}),
        (-0.0, {"N": "0"}),
        (1e20, {"N": "100000000000000000000"}),
        (2.5e-5, {"N": "0.000025"}),
        (Decimal("1.50"), {"N": "1.5"}),
        (Decimal("-0.00"), {"N": "0"}),
        (Decimal("1E+3"), {"N": "1000"}),
        (Decimal("-123.4500"), {"N": "-123.45"}),
        (Decimal("1" * 38), {"N": "1" * 38}),
        (Decimal("1E-130"), {"N": "0." + "0" * 129 + "1"}),
        (
            Decimal("-9.9999999999999999999999999999999999999E+125"),
            {"N": "-" + "9" * 38 + "0" * 88},
        ),
        (b"\x00\xff", {"B": b"\x00\xff"}),
        (bytearray(b"ab"), {"B": b"ab"}),
        (memoryview(b"ab"), {"B": b"ab"}),
        (datetime(2024, 5, 1, 12, 0, tzinfo=PLUS_TWO), {"S": "2024-05-01T10:00:00.000000+00:00"}),
        (
            datetime(2024, 5, 1, 10, 0, 0, 5, tzinfo=timezone.utc),
            {"S": "2024-05-01T10:00:00.000005+00:00"},
        ),
        (datetime(2024, 5, 1, 10, 0), {"S": "2024-05-01T10:00:00.000000"}),
        (date(2024, 5, 1), {"S": "2024-05-01"}),
        (time(9, 30), {"S": "09:30:00.000000"}),
        (timedelta(days=1, seconds=2, microseconds=5), {"N": "86402.000005"}),
        (timedelta(minutes=-1), {"N": "-60"}),
        (timedelta(days=10**8), {"N": "8640000000000"}),
        (timedelta(microseconds=-1), {"N": "-0.000001"}),
        (UUID(int=1), {"S": "00000000-0000-0000-0000-000000000001"}),
        (Color.RED, {"S": "red"}),
        (Level.HIGH, {"N": "3"}),
        (Kind.POST, {"S": "post"}),
        ([1, "a", None], {"L": [{"N": "1"}, {"S": "a"}, {"NULL": True}]}),
        ((1, (2,)), {"L": [{"N": "1"}, {"L": [{"N": "2"}]}]}),
        ([], {"L": []}),
        ({}, {"M": {}}),
        ({"a": {"b": True}}, {"M": {"a": {"M": {"b": {"BOOL": True}}}}}),
        # A nested empty set has no set form and no attribute to omit: an empty list,
        # which pydantic reads back as an empty set wherever the field type is a set.
        ({"a": set(), "b": 1}, {"M": {"a": {"L": []}, "b": {"N": "1"}}}),
        ([set(), frozenset()], {"L": [{"L": []}, {"L": []}]}),
        ({"b", "a", "c"}, {"SS": ["a", "b", "c"]}),
        ({10, 9, Decimal("1.5")}, {"NS": ["1.5", "9", "10"]}),  # numeric order
        # 0.1 != Decimal("0.1") in Python, so the set holds both; both write "0.1"
        ({0.1, Decimal("0.1"), Decimal("2.00")}, {"NS": ["0.1", "2"]}),
        (frozenset({b"z", b"a"}), {"BS": [b"a", b"z"]}),
        ({UUID(int=2), UUID(int=1)}, {"SS": [str(UUID(int=1)), str(UUID(int=2))]}),
        ({Color.RED}, {"SS": ["red"]}),
    ],
)
def test_encodes_exactly(value: Any, expected: dict[str, Any]) -> None:
    assert to_attribute_value(value) == expected


def test_empty_set_encodes_as_none() -> None:
    assert to_attribute_value(set()) is None
    assert to_attribute_value(frozenset()) is None


def test_encode_item_omits_top_level_empty_sets_only() -> None:
    item = encode_item({"PK": "USER#1", "tags": set(), "likes": 3, "meta": {"s": frozenset()}})
    assert item == {"PK": {"S": "USER#1"}, "likes": {"N": "3"}, "meta": {"M": {"s": {"L": []}}}}


def test_aware_datetimes_sort_as_strings() -> None:
    early = datetime(2024, 5, 1, 9, 59, 59, 999_999, tzinfo=timezone.utc)
    late = datetime(2024, 5, 1, 12, 0, tzinfo=PLUS_TWO)  # 10:00 UTC
    assert to_attribute_value(early)["S"] < to_attribute_value(late)["S"]  # type: ignore[index]


# --- refusals -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "named", "reason"),
    [
        (float("nan"), "nan", "NaN and Infinity"),
        (float("-inf"), "-inf", "NaN and Infinity"),
        (Decimal("NaN"), "Decimal('NaN')", "NaN and Infinity"),
        (Decimal("sNaN"), "Decimal('sNaN')", "NaN and Infinity"),
        (Decimal("Infinity"), "Decimal('Infinity')", "NaN and Infinity"),
        (10**38 + 1, str(10**38 + 1), "39 significant digits"),
        (Decimal("1." + "1" * 38), "Decimal('1." + "1" * 38, "39 significant digits"),
        (Decimal("1E+126"), "Decimal('1E+126')", "outside DynamoDB's number range"),
        (-(10**126), "-1000", "outside DynamoDB's number range"),
        pytest.param(
            10**5000, "<int of 16610 bits>", "outside DynamoDB's number range", id="huge-int"
        ),
        (Decimal("1E-131"), "Decimal('1E-131')", "outside DynamoDB's number range"),
        (Decimal("-9.9E-131"), "Decimal('-9.9E-131')", "outside DynamoDB's number range"),
        (1e-300, "1e-300", "outside DynamoDB's number range"),
        (1e200, "1e+200", "outside DynamoDB's number range"),
        ({1, "a"}, "{", "one kind"),
        ({True}, "True", "strings, numbers or binary"),
        ({None}, "None", "strings, numbers or binary"),
        ({1: "x"}, "1", "map keys must be str, not int"),
        (object(), "<object object", "unsupported type object"),
        ({1.5j}, "1.5j", "unsupported type complex"),
        ({"": 1}, "''", "empty map key"),
        ({"ok\ud800": 1}, "'ok\\ud800'", "map key is not valid UTF-8"),
        ("\ud800", "'\\ud800'", "lone surrogate"),
        (datetime(1, 1, 1, tzinfo=PLUS_TWO), "datetime.datetime(1, 1, 1", "datetime range"),
    ],
)
def test_refusals_name_value_and_path(value: Any, named: str, reason: str) -> None:
    with pytest.raises(ItemEncodingError) as caught:
        to_attribute_value({"meta": {"tags": [0, 1, value]}}, path="doc")
    error = caught.value
    assert named in error.message
    assert reason in error.message
    assert "'doc.meta.tags[2]" in error.message
    assert error.field is not None
    assert error.field.startswith("doc.meta.tags[2]")
    assert error.code == "item-encoding"


def test_top_level_refusal_has_no_path() -> None:
    with pytest.raises(ItemEncodingError, match=r"cannot store nan: NaN") as caught:
        to_attribute_value(float("nan"))
    assert caught.value.field is None
    assert caught.value.value != caught.value.value  # the NaN itself


def test_encode_item_errors_name_the_attribute() -> None:
    with pytest.raises(ItemEncodingError, match=r"at 'score'") as caught:
        encode_item({"PK": "x", "score": Decimal("1E+200")})
    assert caught.value.field == "score"


def test_long_values_are_shortened_in_messages() -> None:
    with pytest.raises(ItemEncodingError) as caught:
        to_attribute_value(["x" * 10_000, 1j])
    assert "unsupported type complex" in caught.value.message
    assert len(caught.value.message) < 200


# --- decoding -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("av", "expected"),
    [
        ({"S": "x"}, "x"),
        ({"N": "42"}, 42),
        ({"N": "-7"}, -7),
        ({"N": "1.5"}, Decimal("1.5")),
        ({"N": "1E+3"}, Decimal("1E+3")),
        ({"B": b"\x00\x01"}, b"\x00\x01"),
        ({"B": "AAE="}, b"\x00\x01"),
        ({"BOOL": False}, False),
        ({"NULL": True}, None),
        ({"L": [{"N": "1"}, {"L": []}]}, [1, []]),
        ({"M": {"a": {"S": "b"}}}, {"a": "b"}),
        ({"SS": ["a", "b"]}, {"a", "b"}),
        ({"NS": ["1", "2.5"]}, {1, Decimal("2.5")}),
        ({"BS": [b"a", "Yg=="]}, {b"a", b"b"}),
    ],
)
def test_decodes(av: dict[str, Any], expected: Any) -> None:
    decoded = from_attribute_value(av)
    assert decoded == expected
    assert type(decoded) is type(expected)


def test_integral_numbers_decode_as_int() -> None:
    assert type(from_attribute_value({"N": "42"})) is int
    assert type(from_attribute_value({"N": "4.2"})) is Decimal


@pytest.mark.parametrize(
    ("av", "message"),
    [
        ({"X": 1}, "unknown DynamoDB type tag 'X'"),
        ({}, "empty AttributeValue"),
        ({"N": "abc"}, "malformed DynamoDB number"),
        ({"B": "!!"}, "malformed base64"),
        ({"L": [{"Q": 1}]}, "unknown DynamoDB type tag 'Q'"),
    ],
)
def test_decode_refusals(av: dict[str, Any], message: str) -> None:
    with pytest.raises(ItemEncodingError, match=message):
        from_attribute_value(av)


def test_item_round_trip() -> None:
    values = {"PK": "USER#1", "n": 3, "tags": {"a"}, "data": b"\x01", "m": {"x": [None, True]}}
    assert decode_item(encode_item(values)) == values


# --- item size ------------------------------------------------------------------------


def test_size_of_scalars() -> None:
    item: dict[str, Any] = {
        "id": {"S": "abc"},
        "n": {"N": "123.45"},
        "ok": {"BOOL": True},
        "z": {"NULL": True},
    }
    # id: 2 + 3 = 5;  n: 1 + (5 digits -> 3 bytes) + 1 = 5;  ok: 2 + 1 = 3;  z: 1 + 1 = 2
    assert item_size(item) == 5 + 5 + 3 + 2


def test_size_counts_utf8_bytes() -> None:
    # name "é" is 2 bytes, value "😀" is 4 bytes
    assert item_size({"é": {"S": "😀"}}) == 2 + 4


@pytest.mark.parametrize(
    ("number", "size"),
    [
        ("0", 1),  # no significant digits: just the 1-byte overhead
        ("7", 2),  # 1 digit -> 1 byte, + 1
        ("1000", 2),  # trailing zeros trimmed: "1"
        ("0.0012", 2),  # leading zeros trimmed: "12" -> 1 byte, + 1
        ("-123", 3),  # "123" -> 2 bytes, + 1
        ("9" * 38, 20),  # 38 digits -> 19 bytes, + 1
    ],
)
def test_size_of_numbers(number: str, size: int) -> None:
    assert item_size({"n": {"N": number}}) == 1 + size


def test_size_of_binary_uses_raw_length() -> None:
    assert item_size({"b": {"B": b"\x00\x01\x02"}}) == 1 + 3
    assert item_size({"b": {"B": "AAEC"}}) == 1 + 3  # base64 of 3 bytes
    assert item_size({"b": {"B": "AAE="}}) == 1 + 2
    assert item_size({"b": {"B": "AA=="}}) == 1 + 1


def test_size_of_nested_list_and_map() -> None:
    item = {"m": {"M": {"a": {"S": "xy"}, "l": {"L": [{"N": "1"}, {"NULL": True}]}}}}
    # list l: 3 + (N "1": 2, + 1 per element) + (NULL: 1, + 1) = 3 + 3 + 2 = 8
    # map m:  3 + ("a" 1 + "xy" 2 + 1) + ("l" 1 + 8 + 1) = 3 + 4 + 10 = 17
    # item:   name "m" 1 + 17 = 18
    assert item_size(item) == 18
    assert item_size({"e": {"L": []}, "f": {"M": {}}}) == (1 + 3) + (1 + 3)


def test_size_of_sets_is_sum_of_elements() -> None:
    # SS: 1 + 2 = 3;  NS: "10" -> 2, "1.5" -> 2 = 4;  BS: 2 + 1 = 3
    item: dict[str, Any] = {
        "s": {"SS": ["a", "bc"]},
        "n": {"NS": ["10", "1.5"]},
        "b": {"BS": [b"xy", "eg=="]},
    }
    assert item_size(item) == (1 + 3) + (1 + 4) + (1 + 3)


def test_check_item_size_at_the_limit() -> None:
    # name "d" is 1 byte, so a string of 409,599 ASCII characters makes exactly 409,600
    at_limit = {"d": {"S": "x" * (MAX_ITEM_BYTES - 1)}}
    assert item_size(at_limit) == 409_600
    check_item_size(at_limit, entity="Post", key={"PK": "P#1"})  # accepted: no error


def test_check_item_size_bound_never_hides_an_oversized_item() -> None:
    # Non-ASCII text has the most bytes per repr character (4 for U+10000 and above):
    # the fast bound must still send it to the exact count.
    wide = {"d": {"S": "\U0001f600" * 102_400}}
    assert item_size(wide) == 409_601
    with pytest.raises(ItemTooLarge):
        check_item_size(wide, entity="Post", key="P#1")


def test_check_item_size_one_byte_over() -> None:
    over = {"d": {"S": "x" * MAX_ITEM_BYTES}}
    with pytest.raises(ItemTooLarge) as caught:
        check_item_size(over, entity="Post", key="P#1")
    error = caught.value
    assert (error.entity, error.key, error.size) == ("Post", "P#1", 409_601)
    assert "Post item 'P#1' is 409,601 bytes" in error.message
    assert "409,600" in error.message
    assert isinstance(error, ItemEncodingError)


def test_size_of_encoded_item() -> None:
    item = encode_item({"PK": "U#1", "tags": {"a", "b"}, "n": 12.5})
    # PK: 2 + 3;  tags: 4 + 1 + 1;  n: 1 + ("125" -> 2 bytes) + 1
    assert item_size(item) == 5 + 6 + 4
