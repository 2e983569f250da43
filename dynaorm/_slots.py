"""Slot codecs: field annotation → `SlotCodec`, order-preserving encode and strict decode."""

from __future__ import annotations

import datetime as dt
import re
import types
import typing
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

from dynaorm._codec import utc_digits
from dynaorm.errors import KeyDecodingError, KeyEncodingError, KeyTemplateError

__all__ = [
    "ESCAPE",
    "INT_LIMIT",
    "SEPARATOR",
    "SlotCodec",
    "is_utf8",
    "resolve_slot",
    "utf8_size",
]

# Every encoded slot value uses only characters above SEPARATOR, so joining segments with it
# keeps tuple order equal to byte order, even after a variable-length string slot.
SEPARATOR = "#"
ESCAPE = "$"
INT_LIMIT = 10**20 - 1
_INT_WIDTH = 20
_SUPPORTED = "use int, str, datetime, date, UUID, bool or an Enum"

# str escape: each character at or below '$' becomes '$' + chr(0x40 + ord(c)). Escaped
# characters sort below every kept one, as the originals do, and no code is a prefix of another.
_ESCAPES = {i: ESCAPE + chr(0x40 + i) for i in range(ord(ESCAPE) + 1)}
_ESCAPED_TEXT = re.compile(r"(?:[^\x00-\x24]|\$[\x40-\x64])*")
_ESCAPE_CODE = re.compile(r"\$([\x40-\x64])")
_INT_TEXT = re.compile(r"(-?)([0-9]{20})")
_DATE_TEXT = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_DATETIME_TEXT = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})\.([0-9]{6})Z"
)
_UUID_TEXT = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# Completions used to check that a partial date/datetime is a prefix of some valid encoding:
# '1' is a valid next digit after any valid prefix, except a day "3" in a 30-day month.
_DATETIME_FILLS = ("1111-11-11T11:11:11.111111Z", "1111-11-10T11:11:11.111111Z")
_DATE_FILLS = ("1111-11-11", "1111-11-10")
_MIN_BYTES = {"str": 0, "int": _INT_WIDTH, "bool": 4, "datetime": 27, "date": 10, "uuid": 36}


def utf8_size(text: str) -> int:
    """The length of `text` in UTF-8 bytes, the unit of DynamoDB's key limits."""
    return len(text.encode("utf-8"))


def is_utf8(text: str) -> bool:
    """False when `text` holds a lone surrogate, which DynamoDB cannot store."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# --- slot value codecs -------------------------------------------------------------------


def _encode_str(value: Any) -> str:
    if not isinstance(value, str):
        raise KeyEncodingError(f"expected a str, got {type(value).__name__}")
    if value.isascii():  # O(1) in CPython, and ASCII is always valid UTF-8
        return str.translate(value, _ESCAPES)
    if not is_utf8(value):
        raise KeyEncodingError("the string holds a lone surrogate and is not valid UTF-8")
    return str.translate(value, _ESCAPES)


def _decode_str(text: str) -> str:
    if not _ESCAPED_TEXT.fullmatch(text) or not is_utf8(text):
        raise KeyDecodingError("not an escaped string")
    return _ESCAPE_CODE.sub(lambda m: chr(ord(m.group(1)) - 0x40), text)


def _encode_int(value: Any) -> str:
    if not isinstance(value, int) or isinstance(value, bool):
        raise KeyEncodingError(f"expected an int, got {type(value).__name__}")
    number = int(value)
    if not -INT_LIMIT <= number <= INT_LIMIT:
        raise KeyEncodingError(f"{number} is outside the key range -(10**20 - 1) .. 10**20 - 1")
    if number >= 0:
        return f"{number:0{_INT_WIDTH}d}"
    # '-' sorts below '0'; offsetting by 10**20 makes larger negatives sort higher.
    return f"-{10**20 + number:0{_INT_WIDTH}d}"


def _decode_int(text: str) -> int:
    match = _INT_TEXT.fullmatch(text)
    if match is None:
        raise KeyDecodingError("not a 20-digit key integer")
    sign, digits = match.groups()
    if not sign:
        return int(digits)
    if digits == "0" * _INT_WIDTH:
        raise KeyDecodingError("a negative integer form that encodes no value")
    return int(digits) - 10**20


def _encode_bool(value: Any) -> str:
    if not isinstance(value, bool):
        raise KeyEncodingError(f"expected a bool, got {type(value).__name__}")
    return "true" if value else "false"


def _decode_bool(text: str) -> bool:
    if text not in ("true", "false"):
        raise KeyDecodingError("not 'true' or 'false'")
    return text == "true"


def _encode_datetime(value: Any) -> str:
    if not isinstance(value, dt.datetime):
        raise KeyEncodingError(f"expected a datetime, got {type(value).__name__}")
    if value.tzinfo is not dt.timezone.utc:  # the common case needs no conversion
        if value.utcoffset() is None:
            raise KeyEncodingError("naive datetime in a key; give a timezone (e.g. timezone.utc)")
        try:
            value = value.astimezone(dt.timezone.utc)
        except OverflowError:
            raise KeyEncodingError("the datetime is outside years 1..9999 in UTC") from None
    return utc_digits(value) + "Z"


def _decode_datetime(text: str) -> dt.datetime:
    match = _DATETIME_TEXT.fullmatch(text)
    if match is None:
        raise KeyDecodingError("not a UTC timestamp YYYY-MM-DDTHH:MM:SS.ffffffZ")
    try:
        year, month, day, hour, minute, second, micro = map(int, match.groups())
        return dt.datetime(year, month, day, hour, minute, second, micro, dt.timezone.utc)
    except ValueError:
        raise KeyDecodingError("not a valid UTC timestamp") from None


def _encode_date(value: Any) -> str:
    if not isinstance(value, dt.date) or isinstance(value, dt.datetime):
        raise KeyEncodingError(f"expected a date, got {type(value).__name__}")
    return f"{value.year:04d}-{value.month:02d}-{value.day:02d}"


def _decode_date(text: str) -> dt.date:
    match = _DATE_TEXT.fullmatch(text)
    if match is None:
        raise KeyDecodingError("not a date YYYY-MM-DD")
    try:
        year, month, day = map(int, match.groups())
        return dt.date(year, month, day)
    except ValueError:
        raise KeyDecodingError("not a valid date") from None


def _encode_uuid(value: Any) -> str:
    if not isinstance(value, uuid.UUID):
        raise KeyEncodingError(f"expected a UUID, got {type(value).__name__}")
    return str(value)


def _decode_uuid(text: str) -> uuid.UUID:
    if _UUID_TEXT.fullmatch(text) is None:
        raise KeyDecodingError("not a lowercase canonical UUID")
    return uuid.UUID(text)


_ENCODERS: dict[str, Callable[[Any], str]] = {
    "str": _encode_str,
    "int": _encode_int,
    "bool": _encode_bool,
    "datetime": _encode_datetime,
    "date": _encode_date,
    "uuid": _encode_uuid,
}
_DECODERS: dict[str, Callable[[str], Any]] = {
    "str": _decode_str,
    "int": _decode_int,
    "bool": _decode_bool,
    "datetime": _decode_datetime,
    "date": _decode_date,
    "uuid": _decode_uuid,
}


def _is_value_of_kind(value: Any, kind: str) -> bool:
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, str)


@dataclass(frozen=True)
class SlotCodec:
    """Encodes one slot's values; `kind` is str/int/bool/datetime/date/uuid/enum.

    For an Enum slot, `enum` is the class and `value_kind` the kind of its values.
    """

    kind: str
    value_kind: str
    optional: bool = False
    enum: type[Enum] | None = None

    @property
    def encoder(self) -> Callable[[Any], str]:
        """`encode` itself, or for a plain (non-Enum) slot the function it would call."""
        return self.encode if self.enum is not None else _ENCODERS[self.value_kind]

    def encode(self, value: Any) -> str:
        """Encode a value of this slot's type; a wrong type raises, nothing is str()-ed."""
        if self.enum is not None:
            value = self._member(value).value
        return _ENCODERS[self.value_kind](value)

    def decode(self, text: str) -> Any:
        """Decode the text of a segment; anything `encode` cannot produce raises."""
        value = _DECODERS[self.value_kind](text)
        if self.enum is None:
            return value
        try:
            return self.enum(value)
        except ValueError:
            raise KeyDecodingError(f"{value!r} is not a value of {self.enum.__name__}") from None

    def encode_partial(self, text: str) -> str:
        """Encode a partial value for `begins_with`: str and date/datetime slots only."""
        if self.kind == "str":
            return _encode_str(text)
        fills = {"datetime": _DATETIME_FILLS, "date": _DATE_FILLS}.get(self.kind)
        if fills is None:
            raise KeyEncodingError(f"begins_with needs a str, date or datetime slot, not {self}")
        if not isinstance(text, str):
            raise KeyEncodingError(f"expected a partial {self.kind} str, got {type(text)}")
        for fill in fills:
            if len(text) <= len(fill):
                try:
                    _DECODERS[self.kind](text + fill[len(text) :])
                except KeyDecodingError:
                    continue
                return text
        raise KeyEncodingError(f"{text!r} does not start any valid UTC {self.kind} in key form")

    def __str__(self) -> str:
        name = self.enum.__name__ if self.enum is not None else self.kind
        return f"{name} | None" if self.optional else name

    def _member(self, value: Any) -> Enum:
        assert self.enum is not None
        if isinstance(value, self.enum):
            return value
        if isinstance(value, Enum) or not _is_value_of_kind(value, self.value_kind):
            raise KeyEncodingError(f"expected a {self.enum.__name__} member or value")
        try:
            return self.enum(value)
        except ValueError:
            raise KeyEncodingError(f"not a value of {self.enum.__name__}") from None

    @property
    def min_bytes(self) -> int:
        """The fewest UTF-8 bytes any value of this slot encodes to."""
        if self.enum is None:
            return _MIN_BYTES[self.kind]
        return min(utf8_size(self.encode(member)) for member in self.enum)


# --- annotation → codec --------------------------------------------------------------------


class _Unsupported(Exception):
    """Why an annotation cannot fill a slot (turned into a KeyTemplateError by the caller)."""


_PLAIN_KINDS: dict[Any, str] = {
    str: "str",
    int: "int",
    bool: "bool",
    dt.datetime: "datetime",
    dt.date: "date",
    uuid.UUID: "uuid",
}


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, type):
        return annotation.__name__
    return repr(annotation).replace("typing.", "")


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """Strip Annotated, NewType and Optional; return (inner type, was optional)."""
    optional = False
    while True:
        if getattr(annotation, "__metadata__", None) is not None:  # Annotated[X, ...]
            annotation = annotation.__origin__
        elif getattr(annotation, "__supertype__", None) is not None:  # NewType
            annotation = annotation.__supertype__
        elif typing.get_origin(annotation) in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                raise _Unsupported(f"has type {_type_name(annotation)}, a union of types")
            optional, annotation = True, args[0]
        else:
            return annotation, optional


def _value_kind(values: list[Any]) -> str | None:
    for kind in ("bool", "int", "str"):
        if values and all(_is_value_of_kind(v, kind) for v in values):
            return kind
    return None


def _enum_codec(cls: type[Enum]) -> SlotCodec:
    kind = _value_kind([member.value for member in cls])
    if kind is None:
        raise _Unsupported(
            f"has type {cls.__name__}, an Enum whose values are not all str, all int or all bool"
        )
    codec = SlotCodec("enum", kind, enum=cls)
    for member in cls:
        try:
            _ENCODERS[kind](member.value)
        except KeyEncodingError as e:
            raise _Unsupported(f"has type {cls.__name__}: {member!r}: {e.message}") from None
    return codec


def _literal_codec(annotation: Any) -> SlotCodec:
    values = list(typing.get_args(annotation))
    classes = {type(v) for v in values}
    if len(classes) == 1 and issubclass(cls := classes.pop(), Enum):
        return _enum_codec(cls)
    kind = _value_kind(values)
    if kind is None:
        raise _Unsupported(f"has type {_type_name(annotation)}, a Literal of mixed types")
    for value in values:
        try:
            _ENCODERS[kind](value)
        except KeyEncodingError as e:
            raise _Unsupported(f"has type {_type_name(annotation)}: {e.message}") from None
    return SlotCodec(kind, kind)


def _codec_for(annotation: Any) -> SlotCodec:
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return _enum_codec(annotation)
    if typing.get_origin(annotation) is typing.Literal:
        return _literal_codec(annotation)
    # Exact types only: datetime subclasses date and bool subclasses int, so a lookup by
    # identity keeps each on its own codec.
    kind = _PLAIN_KINDS.get(annotation) if isinstance(annotation, type) else None
    if kind is None:
        raise _Unsupported(
            f"has type {_type_name(annotation)}, which cannot be encoded order-preservingly "
            f"in a key; {_SUPPORTED}"
        )
    return SlotCodec(kind, kind)


def resolve_slot(
    annotation: Any, *, entity: str, field: str, template: str, role: str | None = None
) -> SlotCodec:
    """The codec for a field annotation; `Optional[X]` gives X's codec with `optional=True`."""
    where = f"{entity}.{role}" if role else entity
    try:
        inner, optional = _unwrap(annotation)
        codec = _codec_for(inner)
    except _Unsupported as e:
        raise KeyTemplateError(
            f"{where} template {template!r}: field {field!r} {e}",
            entity=entity,
            key=template,
            field=field,
        ) from None
    return replace(codec, optional=optional)
