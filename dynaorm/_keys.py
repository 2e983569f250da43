"""Key templates: parse `USER#{id}`, encode slot values order-preservingly, decode strictly."""

from __future__ import annotations

import datetime as dt
import re
import types
import typing
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

from dynaorm.errors import KeyDecodingError, KeyEncodingError, KeyTemplateError

__all__ = [
    "MATCH_NONE",
    "KeyCondition",
    "KeyTemplate",
    "LiteralSegment",
    "Segment",
    "SlotCodec",
    "SlotSegment",
    "key_matches",
    "resolve_slot",
]

# Every encoded slot value uses only characters above SEPARATOR, so joining segments with it
# keeps tuple order equal to byte order, even after a variable-length string slot.
SEPARATOR = "#"
ESCAPE = "$"
INT_LIMIT = 10**20 - 1
_INT_WIDTH = 20
_SUPPORTED = "use int, str, datetime, date, UUID, bool or an Enum"
_OPS = frozenset({"=", "begins_with", "between", "<", "<=", ">", ">="})
_RANGE_OPS = frozenset({"between", "<", "<=", ">", ">="})

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


def _size(text: str) -> int:
    return len(text.encode("utf-8"))


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# --- slot value codecs -------------------------------------------------------------------


def _encode_str(value: Any) -> str:
    if not isinstance(value, str):
        raise KeyEncodingError(f"expected a str, got {type(value).__name__}")
    if not _is_utf8(value):
        raise KeyEncodingError("the string holds a lone surrogate and is not valid UTF-8")
    return str.translate(value, _ESCAPES)


def _decode_str(text: str) -> str:
    if not _ESCAPED_TEXT.fullmatch(text) or not _is_utf8(text):
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
    if value.utcoffset() is None:
        raise KeyEncodingError("naive datetime in a key; give a timezone (e.g. timezone.utc)")
    try:
        utc = value.astimezone(dt.timezone.utc)
    except OverflowError:
        raise KeyEncodingError("the datetime is outside years 1..9999 in UTC") from None
    return (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T"
        f"{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}.{utc.microsecond:06d}Z"
    )


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
        return min(_size(self.encode(member)) for member in self.enum)


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


# --- conditions and DynamoDB's byte order ------------------------------------------------


@dataclass(frozen=True)
class KeyCondition:
    """A sort-key condition: `op` is =, begins_with, between, <, <=, > or >=."""

    op: str
    values: tuple[str, ...]


# '$' alone is never a valid key: literals cannot contain '$' and no encoding is a bare '$'.
# Conditions that no key can satisfy plan to this, so the request stays valid and returns none.
MATCH_NONE = KeyCondition("=", (ESCAPE,))


def key_matches(cond: KeyCondition, key: str) -> bool:
    """Evaluate a condition on a key the way DynamoDB does: by UTF-8 bytes."""
    k = key.encode("utf-8")
    v = [value.encode("utf-8") for value in cond.values]
    if cond.op == "=":
        return k == v[0]
    if cond.op == "begins_with":
        return k.startswith(v[0])
    if cond.op == "between":
        return v[0] <= k <= v[1]
    compare: dict[str, Callable[[bytes, bytes], bool]] = {
        "<": bytes.__lt__,
        "<=": bytes.__le__,
        ">": bytes.__gt__,
        ">=": bytes.__ge__,
    }
    return compare[cond.op](k, v[0])


def _max_char(size: int) -> str:
    """The greatest code point that takes at most `size` (1..4) UTF-8 bytes."""
    return ("\x7f", "\u07ff", "\uffff", "\U0010ffff")[min(size, 4) - 1]


def _truncate(text: str, max_bytes: int) -> str:
    return text.encode("utf-8")[:max_bytes].decode("utf-8", "ignore")


def _step(char: str, delta: int) -> str | None:
    """The next (+1) or previous (-1) Unicode scalar value, skipping surrogates."""
    code = ord(char) + delta
    if 0xD800 <= code <= 0xDFFF:
        code = 0xE000 if delta > 0 else 0xD7FF
    return chr(code) if 0 <= code <= 0x10FFFF else None


def _least_from(text: str, max_bytes: int) -> str | None:
    """The least string >= `text` of at most `max_bytes` bytes (None if there is none)."""
    if _size(text) <= max_bytes:
        return text
    # No fitting string extends the cut; raise the last character that can be raised.
    head = _truncate(text, max_bytes)
    while head:
        nxt = _step(head[-1], +1)
        if nxt is not None and _size(head[:-1] + nxt) <= max_bytes:
            return head[:-1] + nxt
        head = head[:-1]
    return None


def _greatest_below(text: str, max_bytes: int) -> str | None:
    """The greatest string < `text` of at most `max_bytes` bytes (None if there is none)."""
    if _size(text) > max_bytes:
        head = _truncate(text, max_bytes)
        room = max_bytes - _size(head)
        return head + _max_char(room) if room else head
    if not text:
        return None
    prev = _step(text[-1], -1)
    if prev is None:  # text ends in U+0000: dropping it gives the greatest lower string
        return text[:-1]
    head = text[:-1] + prev
    room = max_bytes - _size(head)
    return head + "\U0010ffff" * (room // 4) + (_max_char(room % 4) if room % 4 else "")


Bound = tuple[str, bool]  # (text, inclusive)


def _plan(prefix: str, lo: Bound | None, hi: Bound | None, max_bytes: int) -> KeyCondition | None:
    """One DynamoDB sort-key condition selecting exactly the keys within lo..hi under prefix.

    With a prefix, bounds are inclusive (BETWEEN); lower bounds are only strict without one.
    """
    if lo is not None:
        if not lo[0]:  # every key is >= "" and, being non-empty, > ""
            lo = None
        elif (least := _least_from(lo[0], max_bytes)) is None:
            return MATCH_NONE
        elif least != lo[0]:
            lo = (least, True)
    if hi is not None:
        if _size(hi[0]) > max_bytes or (prefix and not hi[1]):
            below = _greatest_below(hi[0], max_bytes)
            hi = (below, True) if below else ("", True)
        if not hi[0]:  # only "" could match, and no key is empty
            return MATCH_NONE
    if prefix:
        low = lo[0] if lo else prefix
        high = hi[0] if hi else prefix[:-1] + ESCAPE  # above all of prefix, never a key
        # Code point order of valid strings is their UTF-8 byte order.
        if low > high or not low.startswith(prefix):
            return MATCH_NONE
        return KeyCondition("between", (low, high))
    if lo and hi:
        return MATCH_NONE if lo[0] > hi[0] else KeyCondition("between", (lo[0], hi[0]))
    if lo:
        return KeyCondition(">=" if lo[1] else ">", (lo[0],))
    if hi:
        return KeyCondition("<=" if hi[1] else "<", (hi[0],))
    return None


def _bounds(op: str, prefix: str, e: str, last: bool) -> tuple[Bound | None, Bound | None]:
    """Raw bounds for `slot op value` under `prefix`, where `e` is the encoded value.

    A non-last slot is followed by '#', below every encoded character: keys with the value
    are prefix+e+'#'..., keys with greater values are >= prefix+e+'$' (never equal to it).
    """
    if op == ">":
        if last and not prefix:
            return (e, False), None
        return (prefix + e + ESCAPE, True), None
    if op == ">=":
        return (prefix + e if last else prefix + e + SEPARATOR, True), None
    if op == "<=":
        return None, (prefix + e if last else prefix + e + ESCAPE, True)
    # "<": for a non-last slot prefix+e itself is no key of this template, so <= it is exact.
    return None, (prefix + e, not last and bool(prefix))


# --- templates -----------------------------------------------------------------------------


@dataclass(frozen=True)
class LiteralSegment:
    """A fixed segment of a key template, written as it is."""

    text: str


@dataclass(frozen=True)
class SlotSegment:
    """A `{field}` segment of a key template."""

    field: str
    codec: SlotCodec


Segment = LiteralSegment | SlotSegment
_FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _literal_problem(text: str) -> str | None:
    for char in text:
        if char in "{}":
            return f"mixes text with a placeholder {char!r}; a {{field}} must fill a segment"
        if char <= ESCAPE:
            return (
                f"contains {char!r}; literals cannot hold characters at or below '$' "
                '(controls, space, !, ", #, $)'
            )
    return None if _is_utf8(text) else "is not valid UTF-8"


@dataclass(frozen=True)
class KeyTemplate:
    """A parsed key template: encode slot values to a key, decode a key, plan conditions."""

    source: str
    entity: str
    role: str
    max_bytes: int
    segments: tuple[Segment, ...]

    @classmethod
    def parse(
        cls,
        source: str,
        annotations: Mapping[str, Any],
        *,
        entity: str,
        role: str,
        max_bytes: int,
    ) -> KeyTemplate:
        """Parse `source` against the entity's field annotations."""

        def fail(problem: str, field: str | None = None) -> KeyTemplateError:
            return KeyTemplateError(
                f"{entity}.{role} template {source!r}: {problem}",
                entity=entity,
                key=source,
                field=field,
            )

        if not source:
            raise fail("the template is empty")
        segments: list[Segment] = []
        for position, part in enumerate(source.split(SEPARATOR), start=1):
            match = _FIELD.fullmatch(part)
            if match is None:
                problem = "is empty" if not part else _literal_problem(part)
                if problem is not None:
                    raise fail(f"segment {position} {part!r} {problem}")
                segments.append(LiteralSegment(part))
                continue
            name = match.group(1)
            if name not in annotations:
                known = ", ".join(sorted(annotations)) or "none"
                raise fail(f"{part!r} names no field of {entity} (fields: {known})", name)
            if any(isinstance(s, SlotSegment) and s.field == name for s in segments):
                raise fail(f"field {name!r} appears twice", name)
            codec = resolve_slot(
                annotations[name], entity=entity, field=name, template=source, role=role
            )
            segments.append(SlotSegment(name, codec))
        template = cls(source, entity, role, max_bytes, tuple(segments))
        template._check_fits()
        return template

    def _check_fits(self) -> None:
        separators = len(self.segments) - 1
        least = separators + sum(
            _size(s.text) if isinstance(s, LiteralSegment) else s.codec.min_bytes
            for s in self.segments
        )
        if least > self.max_bytes:
            raise KeyTemplateError(
                f"{self.entity}.{self.role} template {self.source!r}: its shortest key is "
                f"{least} bytes, over the {self.max_bytes}-byte limit",
                entity=self.entity,
                key=self.source,
            )

    @property
    def slots(self) -> tuple[SlotSegment, ...]:
        """The slot segments, in template order."""
        return tuple(s for s in self.segments if isinstance(s, SlotSegment))

    @property
    def fields(self) -> tuple[str, ...]:
        """The slot field names, in template order."""
        return tuple(s.field for s in self.slots)

    @property
    def is_static(self) -> bool:
        """True when the template has no slots: every item gets the same key."""
        return not self.slots

    def encode(self, values: Mapping[str, Any]) -> str:
        """The key for `values`; every slot needs a non-None value."""
        key = self._join(self.segments, values)
        self._check_size(key)
        return key

    def has_none(self, values: Mapping[str, Any]) -> bool:
        """True when some slot's value is None (a sparse index then writes no key)."""
        return any(field in values and values[field] is None for field in self.fields)

    def decode(self, key: str) -> dict[str, Any]:
        """The slot values of `key`; a key this template could not have produced raises."""

        def fail(problem: str, field: str | None = None) -> KeyDecodingError:
            return KeyDecodingError(
                f"{self.entity}.{self.role} key {key!r} does not match template "
                f"{self.source!r}: {problem}",
                entity=self.entity,
                key=key,
                field=field,
            )

        if not isinstance(key, str) or not key or not _is_utf8(key):
            raise fail("keys are non-empty, valid UTF-8 strings")
        if _size(key) > self.max_bytes:
            raise fail(f"the key is over the {self.max_bytes}-byte limit")
        parts = key.split(SEPARATOR)
        if len(parts) != len(self.segments):
            raise fail(f"{len(parts)} segments, expected {len(self.segments)}")
        values: dict[str, Any] = {}
        for part, segment in zip(parts, self.segments, strict=True):
            if isinstance(segment, LiteralSegment):
                if part != segment.text:
                    raise fail(f"segment {part!r} is not the literal {segment.text!r}")
                continue
            try:
                values[segment.field] = segment.codec.decode(part)
            except KeyDecodingError as e:
                raise fail(f"field {segment.field!r}: {e.message}", segment.field) from None
        return values

    def prefix(self, values: Mapping[str, Any]) -> str:
        """The key prefix for a leading run of slot values, ending on a segment boundary.

        Returns the full key when every slot is given, "" when the first segment is unfilled.
        """
        cut = self._first_missing(values)
        if cut is None:
            return self.encode(values)
        head = self.segments[:cut]
        prefix = self._join(head, values) + SEPARATOR if head else ""
        self._check_size(prefix, allow_empty=True)
        return prefix

    def condition(
        self,
        fixed: Mapping[str, Any],
        *,
        op: str | None = None,
        field: str | None = None,
        operand: Any = None,
    ) -> KeyCondition | None:
        """The sort-key condition for `fixed` leading slots and optionally `field op operand`.

        None means no condition is needed (every key of the partition qualifies);
        `MATCH_NONE` means no key can qualify.
        """
        if op is None:
            if self._first_missing(fixed) is None:
                return KeyCondition("=", (self.encode(fixed),))
            prefix = self.prefix(fixed)
            return KeyCondition("begins_with", (prefix,)) if prefix else None
        if op not in _OPS:
            raise self._error(f"unsupported condition operator {op!r}", field)
        slot = self._next_slot(fixed, field)
        if op == "=":
            return self.condition({**fixed, slot.field: operand})
        prefix = self.prefix(fixed)
        last = slot is self.segments[-1]
        if op == "begins_with":
            text = prefix + self._encode_one(slot, operand, partial=True)
            self._check_size(text, allow_empty=True)
            return KeyCondition("begins_with", (text,)) if text else None
        if op == "between":
            if not isinstance(operand, (tuple, list)) or len(operand) != 2:
                raise self._error(f"between needs a (low, high) pair, got {operand!r}", field)
            lo, _ = _bounds(">=", prefix, self._encode_one(slot, operand[0]), last)
            _, hi = _bounds("<=", prefix, self._encode_one(slot, operand[1]), last)
        else:
            lo, hi = _bounds(op, prefix, self._encode_one(slot, operand), last)
        return _plan(prefix, lo, hi, self.max_bytes)

    # --- helpers ---

    def _error(self, problem: str, field: str | None = None, value: Any = None) -> KeyEncodingError:
        return KeyEncodingError(
            f"{self.entity}.{self.role} template {self.source!r}: {problem}",
            entity=self.entity,
            field=field,
            value=value,
        )

    def _encode_one(self, slot: SlotSegment, value: Any, *, partial: bool = False) -> str:
        if value is None:
            raise self._error(f"field {slot.field!r} is None; a key slot needs a value", slot.field)
        try:
            if partial:
                return slot.codec.encode_partial(value)
            return slot.codec.encode(value)
        except KeyEncodingError as e:
            raise self._error(
                f"field {slot.field!r} = {value!r}: {e.message}", slot.field, value
            ) from None

    def _join(self, segments: tuple[Segment, ...], values: Mapping[str, Any]) -> str:
        parts = []
        for segment in segments:
            if isinstance(segment, LiteralSegment):
                parts.append(segment.text)
            elif segment.field not in values:
                raise self._error(f"no value for field {segment.field!r}", segment.field)
            else:
                parts.append(self._encode_one(segment, values[segment.field]))
        return SEPARATOR.join(parts)

    def _check_size(self, key: str, *, allow_empty: bool = False) -> None:
        size = _size(key)
        if size > self.max_bytes:
            raise self._error(f"the key is {size} bytes, over the {self.max_bytes}-byte limit")
        if not key and not allow_empty:
            raise self._error("the key would be empty; DynamoDB refuses empty keys")

    def _first_missing(self, values: Mapping[str, Any]) -> int | None:
        """Index of the first slot segment not in `values`; later slots must be absent."""
        cut = None
        for index, segment in enumerate(self.segments):
            if not isinstance(segment, SlotSegment):
                continue
            if segment.field not in values:
                cut = index if cut is None else cut
            elif cut is not None:
                missing = typing.cast(SlotSegment, self.segments[cut]).field
                raise self._error(
                    f"field {segment.field!r} is given but {missing!r} before it is not; "
                    "a prefix needs a leading run of slots",
                    missing,
                )
        return cut

    def _next_slot(self, fixed: Mapping[str, Any], field: str | None) -> SlotSegment:
        cut = self._first_missing(fixed)
        if cut is None:
            raise self._error("every slot is fixed; there is no slot left to compare", field)
        slot = self.segments[cut]
        assert isinstance(slot, SlotSegment)
        if field != slot.field:
            raise self._error(
                f"a range condition applies to the next slot after the fixed ones, "
                f"{slot.field!r}, not {field!r}",
                field,
            )
        return slot
