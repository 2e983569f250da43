"""Round trips and number-limit invariants of dynaorm._codec, over hostile values."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dynaorm._codec import (
    decode_item,
    encode_item,
    encode_item_sized,
    from_attribute_value,
    item_size,
    to_attribute_value,
)
from dynaorm.errors import ItemEncodingError

MAX_INT = 10**38 - 1

texts = st.text() | st.text(st.characters(min_codepoint=0x10000), max_size=5) | st.just("")
control_texts = st.text(st.characters(max_codepoint=0x1F), max_size=5)
ints = st.integers(-MAX_INT, MAX_INT) | st.sampled_from([MAX_INT, -MAX_INT, 0, 10**38, -(10**38)])
in_range_floats = st.floats(allow_nan=False, allow_infinity=False).filter(
    lambda f: f == 0 or 1e-130 <= abs(f) <= 9.9e125
)


def _decimals(max_digits: st.SearchStrategy[int], adjusted: st.SearchStrategy[int]) -> Any:
    @st.composite
    def build(draw: st.DrawFn) -> Decimal:
        digits = draw(st.integers(1, 10 ** draw(max_digits) - 1))
        exponent = draw(adjusted) - len(str(digits)) + 1  # adjusted: most significant digit
        return Decimal(f"{draw(st.sampled_from(['', '-']))}{digits}E{exponent}")

    return build()


# Any Decimal DynamoDB can hold: <= 38 significant digits, exponent -130..125.
in_range_decimals = _decimals(st.integers(1, 38), st.integers(-130, 125))
# Straddling every limit: 37..40 digits, exponents just inside and just outside the range.
near_limit_decimals = _decimals(
    st.integers(37, 40), st.sampled_from([-132, -131, -130, -129, 124, 125, 126, 127])
)
near_limit_ints = st.integers(0, 3).flatmap(
    lambda k: st.integers(10**38 - 10**k, 10**38 + 10**k) | st.integers(10**38, 10**40)
)


def _set_of(elements: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.sets(elements, min_size=1, max_size=5) | st.frozensets(
        elements, min_size=1, max_size=5
    )


# Map keys and attribute names: DynamoDB refuses empty ones (a separate test).
names = texts.filter(bool)
leaves = st.one_of(
    st.none(),
    st.sampled_from([set(), frozenset()]),
    st.booleans(),
    texts,
    control_texts,
    ints,
    in_range_floats,
    in_range_decimals,
    st.binary(max_size=20),
    _set_of(texts),
    _set_of(ints | in_range_decimals),
    _set_of(st.binary(max_size=8)),
)
values = st.recursive(
    leaves,
    lambda children: (
        st.lists(children, max_size=4)
        | st.tuples(children, children)
        | st.dictionaries(names, children, max_size=4)
    ),
    max_leaves=12,
)


def _normalised(value: Any) -> Any:
    """What decoding is documented to give back: tuple -> list, float -> Decimal.

    A nested empty set is stored as an empty list (DynamoDB has no empty set).
    """
    if isinstance(value, (set, frozenset)) and not value:
        return []
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, (list, tuple)):
        return [_normalised(element) for element in value]
    if isinstance(value, dict):
        return {key: _normalised(element) for key, element in value.items()}
    if isinstance(value, (set, frozenset)):
        return {_normalised(element) for element in value}
    return value


def _assert_same(decoded: Any, expected: Any) -> None:
    """Equality that also tells True from 1, "1" from 1 and bytes from str."""
    if isinstance(expected, bool) or expected is None:
        assert decoded is expected
    elif isinstance(expected, (int, Decimal)):
        assert type(decoded) in (int, Decimal)
        assert decoded == expected
        if isinstance(decoded, Decimal):  # integral values come back as int
            assert decoded != decoded.to_integral_value()
    elif isinstance(expected, list):
        assert type(decoded) is list
        assert len(decoded) == len(expected)
        for got, want in zip(decoded, expected, strict=True):
            _assert_same(got, want)
    elif isinstance(expected, dict):
        assert type(decoded) is dict
        assert decoded.keys() == expected.keys()
        for key, want in expected.items():
            _assert_same(decoded[key], want)
    else:
        assert type(decoded) is type(expected)
        assert decoded == expected


@given(values)
def test_round_trip(value: Any) -> None:
    encoded = to_attribute_value(value)
    if isinstance(value, (set, frozenset)) and not value:
        assert encoded is None  # omitted at the top level
        return
    assert encoded is not None
    _assert_same(from_attribute_value(encoded), _normalised(value))


@given(st.dictionaries(names, values, max_size=5))
def test_item_round_trip_and_size(item: dict[str, Any]) -> None:
    encoded = encode_item(item)
    stored = {k: v for k, v in item.items() if not (isinstance(v, (set, frozenset)) and not v)}
    assert decode_item(encoded) == _normalised(stored)
    assert item_size(encoded) >= sum(len(name.encode()) for name in encoded)


zones = st.sampled_from([timezone.utc, timezone(timedelta(hours=5, minutes=30))])
top_level_values = (
    values
    | st.datetimes(timezones=zones)
    | st.text(st.characters(categories=["Cs"]), min_size=1, max_size=3)  # lone surrogates
    | _set_of(texts | st.text(st.characters(categories=["Cs"]), min_size=1, max_size=2))
)


bad_names = st.just("") | st.text(st.characters(categories=["Cs"]), min_size=1, max_size=2)


@given(values, bad_names, st.lists(st.integers(0, 2), max_size=3))
def test_empty_and_surrogate_map_keys_are_refused(
    value: Any, bad: str, wrappers: list[int]
) -> None:
    """However deep the key sits, with whatever sibling, it is never sent."""
    doc: Any = {bad: value, "ok": 1} if wrappers[:1] == [0] else {bad: value}
    for wrapper in wrappers:
        doc = [doc] if wrapper == 1 else {"m": doc}
    with pytest.raises(ItemEncodingError, match="map key"):
        encode_item({"doc": doc})
    with pytest.raises(ItemEncodingError, match="map key"):
        encode_item_sized({"doc": doc})


@given(st.dictionaries(texts, top_level_values, max_size=6))
def test_sized_encoding_is_encoding_plus_a_sound_size_bound(item: dict[str, Any]) -> None:
    """The write path's inline encoder: the same item (or error), and never undercounts."""
    try:
        expected = encode_item(item)
    except ItemEncodingError as error:
        refused: ItemEncodingError | None = error
    else:
        refused = None
    if refused is not None:
        with pytest.raises(ItemEncodingError) as raised:
            encode_item_sized(item)
        assert raised.value.field == refused.field
        return
    encoded, bound = encode_item_sized(item)
    assert encoded == expected
    assert [type(av) for av in encoded.values()] == [type(av) for av in expected.values()]
    assert bound >= item_size(encoded)


def _check_canonical(text: str, value: Any) -> None:
    number = Decimal(text)
    _sign, digits, exponent = number.as_tuple()
    assert isinstance(exponent, int)
    assert "E" not in text
    assert "e" not in text
    assert not text.startswith("-0") or text.startswith("-0.")
    assert text != "-0"
    if "." in text:
        assert not text.endswith("0")
        assert not text.endswith(".")
    significant = "".join(map(str, digits)).strip("0")
    if significant:
        assert len(significant) <= 38
        # copy_abs, not abs(): abs() rounds to the 28-digit default context precision.
        assert Decimal("1E-130") <= number.copy_abs() <= Decimal("9" * 38 + "E+88")
    if isinstance(value, float):
        assert float(number) == value
    else:
        assert number == value  # never rounded


any_numbers = st.one_of(
    st.integers(),
    st.integers(-(10**200), 10**200),
    st.floats(),
    st.decimals(),
    st.decimals(allow_nan=False, allow_infinity=False, places=40),
    in_range_decimals,
    near_limit_decimals,
    near_limit_ints,
    near_limit_ints.map(lambda n: -n),
    st.timedeltas(),
)


@given(any_numbers)
def test_numbers_are_canonical_and_within_limits_or_refused(value: Any) -> None:
    try:
        encoded = to_attribute_value(value)
    except ItemEncodingError:
        return
    assert encoded is not None
    if isinstance(value, timedelta):
        assert Decimal(encoded["N"]) * 1_000_000 == value // timedelta(microseconds=1)
        return
    _check_canonical(encoded["N"], value)


offsets = st.timedeltas(min_value=timedelta(hours=-23), max_value=timedelta(hours=23)).map(
    lambda delta: timezone(timedelta(minutes=delta // timedelta(minutes=1)))
)
aware = st.datetimes(
    min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31), timezones=offsets
)


@given(aware, aware)
def test_aware_datetime_strings_sort_like_times(a: datetime, b: datetime) -> None:
    text_a = to_attribute_value(a)["S"]  # type: ignore[index]
    text_b = to_attribute_value(b)["S"]  # type: ignore[index]
    assert (text_a < text_b) == (a < b)
    assert (text_a == text_b) == (a == b)
    assert datetime.fromisoformat(text_a) == a


@given(st.datetimes() | st.datetimes(timezones=zones) | aware)
def test_datetimes_are_stored_as_isoformat_in_utc(value: datetime) -> None:
    """Naive values as given, aware ones converted to UTC; always with microseconds."""
    utc = value
    if value.tzinfo is not None:
        try:
            utc = value.astimezone(timezone.utc)
        except OverflowError:  # outside years 1..9999 once in UTC: refused
            with pytest.raises(ItemEncodingError):
                encode_item_sized({"at": value})
            return
    expected = {"S": utc.isoformat(timespec="microseconds")}
    assert to_attribute_value(value) == expected
    assert encode_item_sized({"at": value})[0] == {"at": expected}
