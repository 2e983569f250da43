"""Python values <-> DynamoDB AttributeValue JSON (botocore's low-level shape); no I/O."""

from __future__ import annotations

import binascii
import math
import threading
from base64 import b64decode
from collections.abc import Callable, Container, Mapping
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import Any, TypeAlias
from uuid import UUID

from dynaorm.errors import ItemEncodingError, ItemTooLarge

__all__ = [
    "MAX_ITEM_BYTES",
    "AttributeValue",
    "check_item_size",
    "decode_item",
    "encode_item",
    "encode_item_sized",
    "from_attribute_value",
    "item_size",
    "surely_within",
    "to_attribute_value",
    "utc_digits",
]

# One AttributeValue such as {"S": "x"} or {"L": [{"N": "1"}]}. A plain dict rather than a
# TypedDict: the shape is a tagged union whose payload type depends on the single key,
# which TypedDict cannot express, and botocore hands us (and accepts) plain dicts anyway.
AttributeValue: TypeAlias = dict[str, Any]

# DynamoDB's item size limit: 400 KB, where 1 KB = 1024 bytes ("Constraints" page).
MAX_ITEM_BYTES = 409_600

# "Supported data types and naming rules in Amazon DynamoDB", Number: up to 38 digits of
# precision; positive range 1E-130 to 9.9999999999999999999999999999999999999E+125 (and
# the mirror image for negatives). With at most 38 significant digits, "at most
# 9.99..E+125" is the same as "most significant digit at exponent <= 125".
_MAX_DIGITS = 38
_MIN_ADJUSTED = -130
_MAX_ADJUSTED = 125
# Integers strictly inside +-10**38 always fit (<= 38 digits, >= 1): the fast path.
_INT_FAST_LIMIT = 10**38
# 2**419 > 10**126, so an int this wide is out of range without looking at its digits
# (and without str(), which Python refuses for ints over 4300 digits).
_INT_MAX_BITS = 419

_Encoder: TypeAlias = Callable[[Any, str], "AttributeValue | None"]


# --- errors -------------------------------------------------------------------------


def _describe(value: Any) -> str:
    """A short repr for messages: values can be megabytes long or too wide for str()."""
    try:
        text = repr(value)
    except ValueError:  # an int wider than sys.get_int_max_str_digits()
        return f"<int of {value.bit_length()} bits>"
    return text if len(text) <= 80 else f"{text[:77]}..."


def _fail(path: str, value: Any, reason: str) -> ItemEncodingError:
    where = f" at {path!r}" if path else ""
    return ItemEncodingError(
        f"cannot store {_describe(value)}{where}: {reason}", field=path or None, value=value
    )


# --- numbers ------------------------------------------------------------------------


def _decimal_to_n(number: Decimal, original: Any, path: str) -> str:
    """Check DynamoDB's precision and range, then write the canonical form.

    Canonical form: plain positional notation, no exponent, no trailing fractional zeros,
    no "-0": Decimal("1.50") -> "1.5", Decimal("1E+3") -> "1000", 1E-5 -> "0.00001".
    Integral values therefore decode back as `int`. Works on the digit tuple only, so no
    decimal context (precision 28 by default) can round anything.
    """
    sign, digit_tuple, exponent = number.as_tuple()
    if not isinstance(exponent, int):  # 'n', 'N' (NaN) or 'F' (Infinity)
        raise _fail(path, original, "NaN and Infinity cannot be stored in DynamoDB")
    digits = "".join(map(str, digit_tuple)).rstrip("0")
    if not digits:
        return "0"
    exponent += len(digit_tuple) - len(digits)
    if len(digits) > _MAX_DIGITS:
        raise _fail(
            path,
            original,
            f"{len(digits)} significant digits; DynamoDB numbers hold at most {_MAX_DIGITS}",
        )
    adjusted = exponent + len(digits) - 1
    if not _MIN_ADJUSTED <= adjusted <= _MAX_ADJUSTED:
        raise _fail(
            path,
            original,
            "outside DynamoDB's number range (magnitude 1E-130 to "
            "9.9999999999999999999999999999999999999E+125, or 0)",
        )
    if exponent >= 0:
        text = digits + "0" * exponent
    elif (point := len(digits) + exponent) > 0:
        text = f"{digits[:point]}.{digits[point:]}"
    else:
        text = f"0.{'0' * -point}{digits}"
    return f"-{text}" if sign else text


def _encode_int(value: int, path: str) -> AttributeValue:
    if -_INT_FAST_LIMIT < value < _INT_FAST_LIMIT:
        return {"N": str(int(value))}  # int(): a subclass's __str__ may differ
    if value.bit_length() > _INT_MAX_BITS:
        raise _fail(path, value, "outside DynamoDB's number range (magnitude up to ~1E+126)")
    return {"N": _decimal_to_n(Decimal(value), value, path)}


def _encode_float(value: float, path: str) -> AttributeValue:
    if not math.isfinite(value):
        raise _fail(path, value, "NaN and Infinity cannot be stored in DynamoDB")
    # repr() is the shortest string that reads back as the same float: 0.1 -> "0.1",
    # where Decimal(0.1) would be 0.1000000000000000055511151231257827...
    return {"N": _decimal_to_n(Decimal(repr(float(value))), value, path)}


def _encode_decimal(value: Decimal, path: str) -> AttributeValue:
    return {"N": _decimal_to_n(value, value, path)}


def _encode_timedelta(value: timedelta, path: str) -> AttributeValue:
    micros = (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds
    return {"N": _decimal_to_n(Decimal(f"{micros}E-6"), value, path)}


# --- scalars ------------------------------------------------------------------------


def _encode_null(value: None, path: str) -> AttributeValue:
    return {"NULL": True}


def _encode_bool(value: bool, path: str) -> AttributeValue:
    return {"BOOL": bool(value)}


def _encode_str(value: str, path: str) -> AttributeValue:
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise _fail(path, value, "not valid UTF-8 (lone surrogate)") from None
    return {"S": str(value)}


def _encode_bytes(value: bytes | bytearray | memoryview, path: str) -> AttributeValue:
    # Raw bytes: botocore base64-encodes them on the wire.
    return {"B": bytes(value)}


def _encode_datetime(value: datetime, path: str) -> AttributeValue:
    # Fixed width (always microseconds, always "+00:00" once aware) so that string order
    # equals time order for aware values.
    if value.tzinfo is not timezone.utc and value.utcoffset() is not None:
        try:
            value = value.astimezone(timezone.utc)
        except OverflowError:  # e.g. 0001-01-01T00:00+01:00 is before year 1 in UTC
            raise _fail(path, value, "outside the datetime range once converted to UTC") from None
        return {"S": utc_digits(value) + "+00:00"}
    # Already UTC, or naive (stored as given, without an offset): what isoformat() writes.
    return {"S": utc_digits(value) + ("" if value.tzinfo is None else "+00:00")}


def utc_digits(value: datetime) -> str:
    """The fixed-width `YYYY-MM-DDTHH:MM:SS.ffffff` of a datetime's own fields.

    What `isoformat(timespec="microseconds")` writes before any offset; %-formatting the
    fields is the fastest fixed-width form (years are 1..9999). Both the item codec and
    datetime key slots write it, each after converting to UTC, with their own suffix.
    """
    return "%04d-%02d-%02dT%02d:%02d:%02d.%06d" % (  # noqa: UP031 - faster than f""
        value.year,
        value.month,
        value.day,
        value.hour,
        value.minute,
        value.second,
        value.microsecond,
    )


def _encode_date(value: date, path: str) -> AttributeValue:
    return {"S": value.isoformat()}


def _encode_time(value: time, path: str) -> AttributeValue:
    return {"S": value.isoformat(timespec="microseconds")}


def _encode_uuid(value: UUID, path: str) -> AttributeValue:
    return {"S": str(value)}


def _encode_enum(value: Enum, path: str) -> AttributeValue | None:
    return _encode(value.value, path)


# --- containers ---------------------------------------------------------------------


# DynamoDB nests documents at most 32 levels deep, counting the top-level attribute: a
# value may hold 31 lists or maps inside one another (DynamoDB Local refuses the 32nd
# with "Nesting Levels have exceeded supported limits").
MAX_NESTED_CONTAINERS = 31
_nesting = threading.local()


def _enter(path: str, value: Any) -> int:
    depth: int = getattr(_nesting, "depth", 0) + 1
    if depth > MAX_NESTED_CONTAINERS:
        # No repr of `value` here: it may be nested deeper than repr can recurse.
        raise ItemEncodingError(
            f"cannot store the {type(value).__name__} at {path!r}: lists and maps nest "
            f"more than {MAX_NESTED_CONTAINERS} deep; DynamoDB stores at most 32 levels",
            field=path,
        )
    _nesting.depth = depth
    return depth


def _encode_list(value: list[Any] | tuple[Any, ...], path: str) -> AttributeValue:
    depth = _enter(path, value)
    try:
        out: list[AttributeValue] = []
        for index, element in enumerate(value):
            child = f"{path}[{index}]"
            out.append(_encode(element, child) or _EMPTY_SET)
    finally:
        _nesting.depth = depth - 1
    return {"L": out}


def _encode_map(value: Mapping[Any, Any], path: str) -> AttributeValue:
    depth = _enter(path, value)
    try:
        return {"M": _encode_members(value, path, nested=True)}
    finally:
        _nesting.depth = depth - 1


# DynamoDB has no empty set. At the top level the attribute is omitted (and read back as
# an empty set where the field's type is a set); inside a list or map there is nothing to
# omit without losing the element or its key, so it is stored as an empty list, which
# pydantic validates back into an empty set wherever the declared type is a set.
_EMPTY_SET: AttributeValue = {"L": []}


def _check_name(key: Any, path: str) -> str:
    """A map key or attribute name: a non-empty str that is valid UTF-8."""
    if not isinstance(key, str):
        raise _fail(path, key, f"map keys must be str, not {type(key).__name__}")
    text = str.__str__(key)  # a str subclass's own __str__ could say anything
    if not text:
        raise _fail(path, text, "an empty map key or attribute name cannot be stored")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise _fail(path, text, "map key is not valid UTF-8 (lone surrogate)") from None
    return text


def _encode_members(
    value: Mapping[Any, Any], path: str, *, nested: bool = False
) -> dict[str, AttributeValue]:
    out: dict[str, AttributeValue] = {}
    for given, element in value.items():
        key = _check_name(given, path)
        encoded = _encode(element, f"{path}.{key}" if path else key)
        if encoded is not None:
            out[key] = encoded
        elif nested:
            out[key] = _EMPTY_SET
    return out


_SET_TAGS = {"S": "SS", "N": "NS", "B": "BS"}


def _encode_set(value: set[Any] | frozenset[Any], path: str) -> AttributeValue | None:
    if not value:
        return None  # DynamoDB refuses empty sets: the caller omits the attribute
    kinds: set[str] = set()
    members: set[Any] = set()  # a set: Decimal("1.0") and 1 both encode as "1"
    for element in value:
        encoded = _encode(element, path)
        tag, payload = next(iter(encoded.items())) if encoded else ("", None)
        if tag not in _SET_TAGS:
            raise _fail(path, element, "set elements must be strings, numbers or binary")
        kinds.add(tag)
        members.add(payload)
    if len(kinds) > 1:
        raise _fail(path, value, "a set must hold one kind: all strings, numbers or binary")
    kind = _SET_TAGS[kinds.pop()]
    # Sorted so that the same set always yields the same request.
    return {kind: sorted(members, key=Decimal) if kind == "NS" else sorted(members)}


_EXACT: dict[type, _Encoder] = {
    type(None): _encode_null,
    bool: _encode_bool,
    str: _encode_str,
    int: _encode_int,
    float: _encode_float,
    Decimal: _encode_decimal,
    bytes: _encode_bytes,
    bytearray: _encode_bytes,
    memoryview: _encode_bytes,
    datetime: _encode_datetime,
    date: _encode_date,
    time: _encode_time,
    timedelta: _encode_timedelta,
    UUID: _encode_uuid,
    list: _encode_list,
    tuple: _encode_list,
    dict: _encode_map,
    set: _encode_set,
    frozenset: _encode_set,
}

# Subclasses, in an order where the more specific base wins: Enum before str/int (a
# StrEnum is a str), bool before int, datetime before date.
_BY_BASE: tuple[tuple[type | tuple[type, ...], _Encoder], ...] = (
    (Enum, _encode_enum),
    (bool, _encode_bool),
    (int, _encode_int),
    (float, _encode_float),
    (Decimal, _encode_decimal),
    (str, _encode_str),
    ((bytes, bytearray, memoryview), _encode_bytes),
    (datetime, _encode_datetime),
    (date, _encode_date),
    (time, _encode_time),
    (timedelta, _encode_timedelta),
    (UUID, _encode_uuid),
    (Mapping, _encode_map),
    ((list, tuple), _encode_list),
    ((set, frozenset), _encode_set),
)


def _encode(value: Any, path: str) -> AttributeValue | None:
    encoder = _EXACT.get(type(value))
    if encoder is None:
        for base, candidate in _BY_BASE:
            if isinstance(value, base):
                encoder = candidate
                break
        else:
            raise _fail(path, value, f"unsupported type {type(value).__qualname__}")
    return encoder(value, path)


def to_attribute_value(value: Any, *, path: str = "") -> AttributeValue | None:
    """Encode one value as produced by pydantic's `model_dump(mode="python")`.

    Returns None for an empty set, which DynamoDB cannot store: omit the attribute.
    `path` names the value in errors (`meta.tags[2]`); nested values extend it.
    Raises `ItemEncodingError` (with `field=path`) for anything DynamoDB cannot hold.
    """
    return _encode(value, path)


def encode_item(values: Mapping[str, Any]) -> dict[str, AttributeValue]:
    """Encode a top-level item, omitting attributes that are empty sets."""
    return _encode_members(values, "")


def encode_item_sized(values: Mapping[str, Any]) -> tuple[dict[str, AttributeValue], int]:
    """`encode_item`, plus a bound on the item's size: at least what DynamoDB counts.

    The write path's version: strings, small integers and booleans (most of any item) are
    encoded inline, and sized on the way, instead of going through `_encode` and then a
    second walk to size them. Strings, booleans, nulls and everything else are counted
    exactly; an integer counts one more byte than its digits, never less than DynamoDB's
    "one byte per two digits, plus one". The result equals `encode_item(values)`.
    """
    out: dict[str, AttributeValue] = {}
    bound = 0
    for given, value in values.items():
        name = given if type(given) is str and given else _check_name(given, "")
        kind = type(value)
        if kind is str:
            if value.isascii():
                size = len(value)
            else:
                try:
                    size = len(value.encode("utf-8"))
                except UnicodeEncodeError:
                    raise _fail(name, value, "not valid UTF-8 (lone surrogate)") from None
            out[name] = {"S": value}
        elif kind is int and -_INT_FAST_LIMIT < value < _INT_FAST_LIMIT:
            text = str(value)
            size = len(text) + 1
            out[name] = {"N": text}
        elif kind is bool:
            size = 1
            out[name] = {"BOOL": value}
        elif kind is datetime:
            stamp = _encode_datetime(value, name)
            size = len(stamp["S"])  # ASCII digits and punctuation
            out[name] = stamp
        elif (kind is set or kind is frozenset) and value and all(type(e) is str for e in value):
            size = 0
            for element in value:
                if element.isascii():
                    size += len(element)
                else:
                    try:
                        size += len(element.encode("utf-8"))
                    except UnicodeEncodeError:
                        raise _fail(name, element, "not valid UTF-8 (lone surrogate)") from None
            out[name] = {"SS": sorted(value)}
        else:
            encoded = _encode(value, name)
            if encoded is None:  # an empty set: the attribute is omitted
                continue
            size = _value_size(encoded)
            out[name] = encoded
        bound += size + (len(name) if name.isascii() else len(_check_name(name, "").encode()))
    return out, bound


# --- decoding (the hot read path: one dict lookup per value) -------------------------


def _decode_number(text: str) -> int | Decimal:
    try:
        return int(text)  # DynamoDB writes integral values without a point or exponent
    except ValueError:
        pass
    try:
        return Decimal(text)
    except InvalidOperation:
        raise ItemEncodingError(f"malformed DynamoDB number {text[:80]!r}") from None


def _decode_binary(payload: bytes | str) -> bytes:
    if isinstance(payload, str):  # base64 text straight from a raw JSON response
        try:
            return b64decode(payload, validate=True)
        except binascii.Error:
            raise ItemEncodingError(f"malformed base64 binary {payload[:80]!r}") from None
    return payload


def _identity(payload: Any) -> Any:
    return payload


def _decode_null(payload: Any) -> None:
    return None


def _decode_list(payload: list[AttributeValue]) -> list[Any]:
    return [from_attribute_value(element) for element in payload]


def _decode_map(payload: dict[str, AttributeValue]) -> dict[str, Any]:
    return {name: from_attribute_value(element) for name, element in payload.items()}


def _decode_number_set(payload: list[str]) -> set[int | Decimal]:
    return {_decode_number(text) for text in payload}


def _decode_binary_set(payload: list[bytes | str]) -> set[bytes]:
    return {_decode_binary(element) for element in payload}


_DECODERS: dict[str, Callable[[Any], Any]] = {
    "S": _identity,
    "N": _decode_number,
    "B": _decode_binary,
    "BOOL": _identity,
    "NULL": _decode_null,
    "L": _decode_list,
    "M": _decode_map,
    "SS": set,
    "NS": _decode_number_set,
    "BS": _decode_binary_set,
}


def from_attribute_value(av: AttributeValue) -> Any:
    """Decode one AttributeValue: N is `int` when integral, else `Decimal`; sets are sets."""
    for tag, payload in av.items():  # exactly one key in a well-formed value
        decoder = _DECODERS.get(tag)
        if decoder is None:
            raise ItemEncodingError(f"unknown DynamoDB type tag {tag!r}")
        return decoder(payload)
    raise ItemEncodingError("empty AttributeValue: no type tag")


def decode_item(item: Mapping[str, AttributeValue], skip: Container[str] = ()) -> dict[str, Any]:
    """Decode a top-level item, the inverse of `encode_item`, leaving out `skip` names.

    The hot read path (every attribute of every item read): S and N, most of any item,
    are decoded inline rather than through one `from_attribute_value` call per value;
    the result is the same.
    """
    out: dict[str, Any] = {}
    for name, av in item.items():
        if name in skip:
            continue
        for tag, payload in av.items():  # exactly one key in a well-formed value
            if tag == "S":
                out[name] = payload
            elif tag == "N":
                out[name] = _decode_number(payload)
            else:
                decoder = _DECODERS.get(tag)
                if decoder is None:
                    raise ItemEncodingError(f"unknown DynamoDB type tag {tag!r}")
                out[name] = decoder(payload)
            break
        else:
            raise ItemEncodingError("empty AttributeValue: no type tag")
    return out


# --- item size ----------------------------------------------------------------------
# Rules from the DynamoDB Developer Guide page "DynamoDB item sizes and formats":
# an item is the sum of its attribute names' UTF-8 lengths and its values' sizes, where
#   S: UTF-8 bytes;  N: ~1 byte per two significant digits (leading and trailing zeros
#   trimmed) + 1;  B: raw byte length (not base64);  BOOL, NULL: 1 byte;
#   L, M: 3 bytes + the nested sizes + 1 byte per element (names count inside M).
# The page gives no rule for sets; we count them as the sum of their elements, each
# sized like the matching scalar.


def _utf8_len(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def _number_size(text: str) -> int:
    mantissa = text.lstrip("+-").split("e")[0].split("E")[0]
    significant = mantissa.replace(".", "").strip("0")
    return (len(significant) + 1) // 2 + 1


def _binary_size(payload: bytes | bytearray | str) -> int:
    if isinstance(payload, str):  # base64 text: count the bytes it stands for
        return len(payload) * 3 // 4 - (len(payload) - len(payload.rstrip("=")))
    return len(payload)


def _value_size(av: AttributeValue) -> int:
    for tag, payload in av.items():
        if tag == "S":
            return _utf8_len(payload)
        if tag == "N":
            return _number_size(payload)
        if tag == "B":
            return _binary_size(payload)
        if tag in ("BOOL", "NULL"):
            return 1
        if tag == "L":
            return 3 + sum(_value_size(element) + 1 for element in payload)
        if tag == "M":
            return 3 + sum(_utf8_len(k) + _value_size(v) + 1 for k, v in payload.items())
        if tag == "SS":
            return sum(_utf8_len(element) for element in payload)
        if tag == "NS":
            return sum(_number_size(element) for element in payload)
        if tag == "BS":
            return sum(_binary_size(element) for element in payload)
        raise ItemEncodingError(f"unknown DynamoDB type tag {tag!r}")
    raise ItemEncodingError("empty AttributeValue: no type tag")


def item_size(item: Mapping[str, AttributeValue]) -> int:
    """The item's size in bytes, counted the way DynamoDB counts it."""
    return sum(_utf8_len(name) + _value_size(av) for name, av in item.items())


def surely_within(data: Any, limit: int) -> bool:
    """A cheap, sound bound: True only if `data`'s DynamoDB size cannot exceed `limit`.

    Every byte DynamoDB counts (a name's or string's UTF-8 bytes, at most 4 per
    character; a binary byte; a digit; 1-3 bytes of overhead per value) has at least a
    quarter of a character behind it in the repr, which C builds fast. False means
    "count exactly", not "too large".
    """
    return len(repr(data)) * 4 <= limit


def check_item_size(item: Mapping[str, AttributeValue], *, entity: str, key: Any) -> None:
    """Raise `ItemTooLarge` if the item is over 409,600 bytes as DynamoDB counts them."""
    if surely_within(item, MAX_ITEM_BYTES):
        return
    size = item_size(item)
    if size > MAX_ITEM_BYTES:
        raise ItemTooLarge(
            f"{entity} item {key!r} is {size:,} bytes, over DynamoDB's item limit of "
            f"{MAX_ITEM_BYTES:,} bytes (400 KB)",
            entity=entity,
            key=key,
            size=size,
        )
