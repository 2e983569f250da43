"""Placeholders, document paths and operands: the building blocks of DynamoDB expressions."""

from __future__ import annotations

import datetime
import decimal
import enum
import uuid
from collections.abc import Iterable, Mapping, MutableMapping, MutableSequence, Sequence
from collections.abc import Set as AbstractSet
from functools import partial
from types import UnionType
from typing import Annotated, Any, Literal, Union, cast, get_args, get_origin

from pydantic import BaseModel

from dynaorm._codec import AttributeValue, to_attribute_value
from dynaorm._conditions import Between, Comparison, Condition, Function, In, Value, path_error
from dynaorm.errors import DynaormError, ExpressionError, UnknownFieldError

__all__ = [
    "Operand",
    "Path",
    "Placeholders",
    "Size",
    "encode_value",
    "to_operand",
]

# DynamoDB's IN comparator takes at most 100 operands on its right-hand side.
MAX_IN_OPERANDS = 100
_TYPE_TAGS = frozenset({"S", "SS", "N", "NS", "B", "BS", "BOOL", "NULL", "L", "M"})
# Annotations whose values have no addressable parts (sets are unordered in DynamoDB).
_SCALARS: tuple[type, ...] = (str, bytes, bytearray, int, float, decimal.Decimal, uuid.UUID)
_SCALARS += (datetime.date, datetime.time, datetime.timedelta, enum.Enum, AbstractSet)
_SEQUENCES = (list, tuple, Sequence, MutableSequence)
_MAPPINGS = (dict, Mapping, MutableMapping)


class Placeholders:
    """Hands out `#n0, #n1, ...` for names and `:v0, :v1, ...` for values.

    Placeholders are allocated while an expression is written, so their numbering follows
    the text. Share one instance across all expressions of a request (key condition,
    filter, projection) so that they never clash; `to_request()` gives the request fields.
    """

    __slots__ = ("_by_name", "names", "values")

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.values: dict[str, AttributeValue] = {}
        self._by_name: dict[str, str] = {}

    def name(self, name: str) -> str:
        """The placeholder of one literal name segment; a repeated name reuses it."""
        placeholder = self._by_name.get(name)
        if placeholder is None:
            placeholder = self._by_name[name] = f"#n{len(self.names)}"
            self.names[placeholder] = name
        return placeholder

    def value(self, value: AttributeValue) -> str:
        """A fresh placeholder for one encoded value."""
        placeholder = f":v{len(self.values)}"
        self.values[placeholder] = value
        return placeholder

    def to_request(self) -> dict[str, Any]:
        """`ExpressionAttributeNames`/`Values`, leaving out empty ones (DynamoDB refuses them)."""
        request: dict[str, Any] = {}
        if self.names:
            request["ExpressionAttributeNames"] = dict(self.names)
        if self.values:
            request["ExpressionAttributeValues"] = dict(self.values)
        return request


def _unwrap(annotation: Any) -> Any:
    """Strip `Annotated` and `Optional`; a union of several types navigates unchecked."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin is Union or origin is UnionType:
            arms = [arm for arm in get_args(annotation) if arm is not type(None)]
            if len(arms) != 1:
                return None
            annotation = arms[0]
        else:
            return None if annotation is Any else annotation


class _Operand:
    """Something with a value inside an expression: the comparison operators build conditions."""

    __slots__ = ()

    def _owner(self) -> Path:
        raise NotImplementedError

    def serialize(self, ph: Placeholders) -> str:
        raise NotImplementedError

    def __eq__(self, other: object) -> Comparison:  # type: ignore[override]
        return Comparison(self, "=", to_operand(_compared(self._owner()), other))

    def __ne__(self, other: object) -> Comparison:  # type: ignore[override]
        return Comparison(self, "<>", to_operand(_compared(self._owner()), other))

    def __lt__(self, other: object) -> Comparison:
        return Comparison(self, "<", to_operand(_compared(self._owner()), other))

    def __le__(self, other: object) -> Comparison:
        return Comparison(self, "<=", to_operand(_compared(self._owner()), other))

    def __gt__(self, other: object) -> Comparison:
        return Comparison(self, ">", to_operand(_compared(self._owner()), other))

    def __ge__(self, other: object) -> Comparison:
        return Comparison(self, ">=", to_operand(_compared(self._owner()), other))

    # Defining __eq__ would make instances unhashable; paths are used as dict keys and
    # set members, so keep identity hashing.
    __hash__ = object.__hash__

    def between(self, low: object, high: object) -> Between:
        """`x BETWEEN low AND high` (inclusive); refused if low > high, as DynamoDB would."""
        owner = _compared(self._owner())
        return Between(self, to_operand(owner, low), to_operand(owner, high))

    def is_in(self, *values: object) -> In:
        """`x IN (...)` for 1 to 100 operands, given as arguments or as one collection."""
        unordered = len(values) == 1 and isinstance(values[0], AbstractSet)
        if len(values) == 1 and _is_collection(values[0]):
            values = tuple(cast(Iterable[object], values[0]))
        owner = _compared(self._owner())
        if not 1 <= len(values) <= MAX_IN_OPERANDS:
            raise path_error(owner, f"IN takes 1 to {MAX_IN_OPERANDS} values, got {len(values)}")
        operands = [to_operand(owner, value) for value in values]
        if unordered:  # set order varies between runs; placeholder numbering must not
            operands.sort(key=repr)
        return In(self, tuple(operands))


class Path(_Operand):
    """An immutable document path: literal name segments (str) and list indexes (int).

    Names are never parsed: `Path("a.b")` is one attribute whose name contains a dot.
    `path.name`, `path["name"]` and `path[0]` navigate; with a pydantic model annotation
    the name must be one of its fields and the stored (alias) name is used. A field whose
    name is also a `Path` member (`size`, `contains`, `entity`, ...) is reached with
    `path["size"]`.
    """

    __slots__ = ("_annotation", "_declared", "_encrypted", "_entity", "_epoch_seconds", "_segments")
    _segments: tuple[str | int, ...]
    _annotation: Any
    _declared: Any
    _entity: str | None
    _epoch_seconds: bool
    _encrypted: bool
    __iter__ = None  # __getitem__ accepts ints: without this, list(path) would never end

    def __init__(
        self,
        *segments: str | int,
        annotation: Any = None,
        entity: str | None = None,
        epoch_seconds: bool = False,
        encrypted: bool = False,
    ) -> None:
        if not segments or not isinstance(segments[0], str):
            raise ExpressionError(f"a path starts with an attribute name, got {segments!r}")
        segments = tuple(_checked_segment(segment, segments) for segment in segments)
        object.__setattr__(self, "_segments", segments)
        object.__setattr__(self, "_annotation", _unwrap(annotation))
        object.__setattr__(self, "_declared", annotation)
        object.__setattr__(self, "_entity", entity)
        # A TTL attribute is stored as a Number of epoch seconds: datetimes compared with
        # it must be written the same way, or the comparison is silently false.
        object.__setattr__(self, "_epoch_seconds", epoch_seconds)
        # An Encrypted() field (or a path inside one) is stored as ciphertext: it can be
        # tested for existence, never compared.
        object.__setattr__(self, "_encrypted", encrypted)

    @property
    def segments(self) -> tuple[str | int, ...]:
        return self._segments

    @property
    def annotation(self) -> Any:
        """The declared type at this path (Optional stripped), or None when unknown."""
        return self._annotation

    @property
    def declared(self) -> Any:
        """The declared type at this path as written (Optional and unions kept), or None."""
        return self._declared

    @property
    def entity(self) -> str | None:
        return self._entity

    @property
    def encrypted(self) -> bool:
        """True for an `Encrypted()` field and the paths inside it."""
        return self._encrypted

    @property
    def dotted(self) -> str:
        """A readable, ambiguous spelling for messages: `author.tags[0]`."""
        return "".join(
            f"[{s}]" if isinstance(s, int) else f".{s}" if i else s
            for i, s in enumerate(self._segments)
        )

    def describe(self) -> str:
        return f"{self._entity}.{self.dotted}" if self._entity else self.dotted

    def serialize(self, ph: Placeholders) -> str:
        return "".join(
            f"[{s}]" if isinstance(s, int) else f".{ph.name(s)}" if i else ph.name(s)
            for i, s in enumerate(self._segments)
        )

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Path is immutable; cannot set {name!r}")

    def __reduce__(self) -> tuple[Any, ...]:  # __setattr__ refuses pickle's default path
        path = partial(
            Path,
            annotation=self._declared,
            entity=self._entity,
            epoch_seconds=self._epoch_seconds,
            encrypted=self._encrypted,
        )
        return (path, self._segments)

    def __repr__(self) -> str:
        return f"Path({', '.join(map(repr, self._segments))})"

    def __getattr__(self, name: str) -> Path:
        # copy, pickle, hypothesis and IPython probe dunder and private names with getattr;
        # they must stay AttributeErrors rather than become paths.
        if name.startswith("_"):
            raise AttributeError(name)
        return self._child(name)

    def __getitem__(self, key: str | int) -> Path:
        return self._child(key)

    def _owner(self) -> Path:
        return self

    def _child(self, key: str | int) -> Path:
        key = _checked_segment(key, (*self._segments, key))
        stored, annotation = self._navigate(key)
        return Path(
            *self._segments,
            stored,
            annotation=annotation,
            entity=self._entity,
            encrypted=self._encrypted,
        )

    def _navigate(self, key: str | int) -> tuple[str | int, Any]:
        """The stored segment for `key` and the annotation below it."""
        annotation = self._annotation
        origin = get_origin(annotation) or annotation
        if annotation is None:
            return key, None
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if isinstance(key, str):
                return _model_field(self, annotation, key)
        elif origin is Literal or (isinstance(origin, type) and issubclass(origin, _SCALARS)):
            raise self._unknown(key, f"{_type_name(annotation)} values have no parts")
        elif origin in _SEQUENCES:
            if isinstance(key, int):
                return key, self._element(annotation, key)
        elif origin in _MAPPINGS:
            args = get_args(annotation)
            if isinstance(key, str):
                return key, args[1] if len(args) == 2 else None
        else:  # a TypedDict, dataclass, ...: navigation is not checked
            return key, None
        kind = "index" if isinstance(key, int) else "name"
        raise self._unknown(key, f"{_type_name(annotation)} values are not navigated by {kind}")

    def _element(self, annotation: Any, index: int) -> Any:
        args = get_args(annotation)
        if get_origin(annotation) is not tuple or (len(args) == 2 and args[1] is Ellipsis):
            return args[0] if args else None
        if index >= len(args):
            raise self._unknown(index, f"{_type_name(annotation)} has {len(args)} elements")
        return args[index]

    def _unknown(self, key: str | int, reason: str) -> UnknownFieldError:
        return UnknownFieldError(
            f"{self.describe()} has no {key!r}: {reason}", entity=self._entity, field=self.dotted
        )

    def begins_with(self, prefix: object) -> Function:
        """`begins_with(path, prefix)` for a string or binary prefix."""
        operand = to_operand(_compared(self), prefix)
        if isinstance(operand, Value) and set(operand.av) - {"S", "B"}:
            raise path_error(self, f"begins_with needs a str or bytes prefix, got {prefix!r}")
        return Function("begins_with", self, operand)

    def contains(self, value: object) -> Function:
        """`contains(path, value)`: a substring, or an element of a set or list."""
        return Function("contains", self, to_operand(_compared(self), value))

    def exists(self) -> Function:
        return Function("attribute_exists", self)

    def not_exists(self) -> Function:
        return Function("attribute_not_exists", self)

    def is_type(self, type_tag: str) -> Function:
        """`attribute_type(path, tag)` with a DynamoDB type tag such as "S", "NS" or "M"."""
        if type_tag not in _TYPE_TAGS:
            raise path_error(
                self, f"unknown type tag {type_tag!r}; use one of {sorted(_TYPE_TAGS)}"
            )
        return Function("attribute_type", self, Value({"S": type_tag}))

    def size(self) -> Size:
        """`size(path)`, to compare with the operators or `between`/`is_in`."""
        return Size(self)


class Size(_Operand):
    """`size(path)`: the length of a string, binary, set, list or map."""

    __slots__ = ("path",)

    def __init__(self, path: Path) -> None:
        self.path = path

    def _owner(self) -> Path:
        return self.path

    def serialize(self, ph: Placeholders) -> str:
        return f"size({self.path.serialize(ph)})"

    def __repr__(self) -> str:
        return f"Size({self.path!r})"


Operand = _Operand | Value


def _checked_segment(segment: object, segments: tuple[object, ...]) -> str | int:
    """The segment as a plain `str` or `int`, which is what expressions are written from.

    A subclass keeps only its value: its `__format__`/`__str__` could otherwise write
    expression syntax into the request (`a[0] OR ...`).
    """
    if isinstance(segment, bool) or not isinstance(segment, str | int):
        shown = repr(segment) if type(segment) in (bool, float) else type(segment).__name__
        raise ExpressionError(
            f"path segments are str names or int indexes (not bool), got {shown}",
            value=segment,
        )
    # The base classes' own methods: a subclass may override __int__ and __str__ too.
    plain: str | int = str.__str__(segment) if isinstance(segment, str) else int.__int__(segment)
    if plain == "" or (isinstance(plain, int) and plain < 0):
        raise ExpressionError(
            f"DynamoDB refuses an empty name or a negative index in a path: {segments!r}"
        )
    if isinstance(plain, str) and not plain.isascii():
        try:
            plain.encode("utf-8")
        except UnicodeEncodeError:
            raise ExpressionError(
                f"a path name must be valid UTF-8 (lone surrogate): {plain!r}", value=plain
            ) from None
    return plain


def _model_field(path: Path, model: type[BaseModel], key: str) -> tuple[str, Any]:
    """The stored name and annotation of `key`, a field (or alias) of `model`."""
    for name, field in model.model_fields.items():
        stored = field.serialization_alias or field.alias or name
        if key in (name, stored):
            return stored, field.annotation
    valid = ", ".join(
        name
        if (stored := field.serialization_alias or field.alias or name) == name
        else f"{name} (stored as {stored})"
        for name, field in model.model_fields.items()
    )
    raise UnknownFieldError(
        f"{path.describe()} has no field {key!r}; {model.__name__} fields: {valid}",
        entity=path.entity,
        field=f"{path.dotted}.{key}",
    )


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or repr(annotation)


def _is_collection(value: object) -> bool:
    return isinstance(value, Iterable) and not isinstance(value, str | bytes | bytearray | Mapping)


def encode_value(path: Path, value: object) -> AttributeValue:
    """Encode with the codec; an unstorable value or an empty set is an ExpressionError."""
    if isinstance(value, Condition):
        raise path_error(path, f"{type(value).__name__} is not a value", value)
    if isinstance(value, BaseModel):  # stored as a map under its fields' stored names
        value = value.model_dump(mode="python", by_alias=True)
    if path._epoch_seconds and isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            raise path_error(path, "the TTL attribute needs a timezone-aware datetime", value)
        value = int(value.timestamp())
    try:
        av = to_attribute_value(value, path=path.dotted)
    except (DynaormError, ValueError, TypeError, ArithmeticError) as error:
        raise path_error(path, f"cannot use {value!r}: {error}", value) from error
    if av is None:
        raise path_error(
            path, "an empty set cannot be stored in DynamoDB; remove it instead", value
        )
    return av


def _compared(path: Path) -> Path:
    """`path`, once it is known that a condition may compare its value."""
    if path.encrypted:
        raise path_error(
            path,
            "is Encrypted(): DynamoDB holds only its ciphertext, so a condition or filter "
            "cannot compare it (exists() and not_exists() still work)",
        )
    return path


def to_operand(path: Path, value: object) -> Operand:
    return value if isinstance(value, Path | Size) else Value(encode_value(path, value))
