"""Hypothesis strategies for dynaorm entities and for the text that breaks naive keys.

Needs `hypothesis` (`pip install hypothesis`; dynaorm's `dev` extra has it)::

    from hypothesis import given
    from dynaorm.testing.strategies import entities

    @given(entities(Post))
    def test_post_round_trips(post): ...

`entities(Post)` builds valid `Post` instances whose keys always encode: key-slot fields
(primary key, index keys, `unique=` groups) draw from the values the key codec accepts,
including hostile strings; other fields follow their annotations and pydantic
constraints, kept within what DynamoDB can store and read back unchanged.
"""

from __future__ import annotations

import datetime as dt
import enum
import types
import typing
import uuid
from collections.abc import Mapping
from decimal import Decimal
from functools import partial
from typing import Any, TypeVar

from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from dynaorm._entity import Entity, EntityInfo
from dynaorm._keys import KeyTemplate
from dynaorm._slots import INT_LIMIT, SlotCodec, resolve_slot
from dynaorm.errors import KeyTemplateError

__all__ = ["HOSTILE_CHARACTERS", "entities", "hostile_text"]

E = TypeVar("E", bound=Entity)
SearchStrategy = st.SearchStrategy

# The separator and escape characters and their neighbours, the template braces,
# whitespace and controls, and multi-byte, non-BMP and boundary code points.
HOSTILE_CHARACTERS = (
    "#$%{} \t\n\r\x00\x01\x1f\x7f!\"'\\/.:0aAzZ~é\u00a0\u2028\ufeff\uffff\U0001f600\U0010ffff"
)

_MAX_TEXT = 16  # characters: keys stay far below 1 KB and examples stay readable
_MAX_ITEMS = 3  # elements per list, set or map
_MAX_DEPTH = 6  # nested models
# DynamoDB numbers: 38 significant digits, magnitudes 1E-130 .. 9.99..E+125.
_NUMBER_LIMIT = 10**38 - 1
_FLOAT_MIN, _FLOAT_MAX = 1e-130, 9.9e125
# TTL datetimes are stored as epoch seconds and read back from them: whole seconds, and
# below 2e10 so that pydantic does not read the number as milliseconds.
_TTL_MIN = dt.datetime(1970, 1, 2)
_TTL_MAX = dt.datetime(2500, 1, 1)
# Years 2 .. 9998 keep every offset's UTC conversion inside datetime's range.
_DATETIME_MIN = dt.datetime(2, 1, 1)
_DATETIME_MAX = dt.datetime(9998, 12, 31)
_CONSTRAINTS = ("min_length", "max_length", "pattern", "gt", "ge", "lt", "le", "multiple_of")


def hostile_text(*, min_size: int = 0, max_size: int = _MAX_TEXT) -> SearchStrategy[str]:
    """Valid UTF-8 text (no lone surrogates) rich in characters that break naive keys."""
    alphabet = st.sampled_from(HOSTILE_CHARACTERS) | st.characters(codec="utf-8")
    return st.text(alphabet, min_size=min_size, max_size=max_size)


def _plain_text(*, min_size: int = 0, max_size: int = _MAX_TEXT) -> SearchStrategy[str]:
    alphabet = st.characters(codec="ascii", categories=("L", "N"))
    return st.text(alphabet, min_size=min_size, max_size=max_size)


def entities(entity: type[E], *, hostile: bool = True, **overrides: Any) -> SearchStrategy[E]:
    """Valid instances of `entity`, every one storable and with keys that encode.

    `hostile=False` draws plain letters and digits for strings instead of hostile text.
    Keyword arguments override a field's strategy: a strategy, or a value to use as is
    (`entities(Post, user_id="u1")` keeps every post in one partition). Instances that
    the model's own validators reject are filtered out.
    """
    info: EntityInfo = entity.__dynaorm__
    unknown = sorted(set(overrides) - set(entity.model_fields))
    if unknown:
        raise TypeError(f"entities({entity.__name__}): {unknown} are not fields")
    builder = _Builder(hostile)
    slots = _key_slots(info)
    required: dict[str, SearchStrategy[Any]] = {}
    optional: dict[str, SearchStrategy[Any]] = {}
    for name, field in entity.model_fields.items():
        if name in overrides:
            value = overrides[name]
            strategy = value if isinstance(value, SearchStrategy) else st.just(value)
            required[name] = strategy
            continue
        if name in slots:
            strategy = builder.slot(field, *slots[name])
        elif name == info.version:
            strategy = st.integers(0, 10**6)
        elif name == info.ttl:
            strategy = _ttl(field.annotation)
        else:
            strategy = builder.field(field)
        (required if field.is_required() else optional)[name] = strategy
    values = st.fixed_dictionaries(required, optional=optional)
    return values.map(partial(_validated, entity)).filter(_is_built)


def _validated(model: type[BaseModel], values: Mapping[str, Any]) -> Any:
    try:
        return model.model_validate(values)
    except ValidationError:
        return None


def _is_built(value: Any) -> bool:
    return value is not None


# -- key slots --------------------------------------------------------------------------


def _key_slots(info: EntityInfo) -> dict[str, tuple[SlotCodec, bool]]:
    """Each key-slot field's codec, and whether its value must not encode to ''.

    A template made of one str slot (`sk="{name}"`) encodes "" to an empty key, which
    DynamoDB refuses; every other template has a literal or separator around it.
    """
    templates: list[KeyTemplate] = [info.pk, info.sk]
    for index in info.indexes.values():
        templates.append(index.pk)
        if index.sk is not None:
            templates.append(index.sk)
    slots: dict[str, tuple[SlotCodec, bool]] = {}
    for template in templates:
        alone = len(template.segments) == 1
        for slot in template.slots:
            _, was_alone = slots.get(slot.field, (slot.codec, False))
            slots[slot.field] = (slot.codec, was_alone or alone)
    for group in info.unique:
        for name in group:
            if name in slots:
                continue
            try:
                codec = resolve_slot(
                    info.cls.model_fields[name].annotation,
                    entity=info.name,
                    field=name,
                    template="unique",
                )
            except KeyTemplateError:
                continue  # dynaorm refuses to write it anyway; let the field strategy be
            slots[name] = (codec, False)
    return slots


def _ttl(annotation: Any) -> SearchStrategy[Any]:
    inner, optional = _strip_none(annotation)
    if inner is int:
        strategy: SearchStrategy[Any] = st.integers(0, 10**10)
    else:
        strategy = st.datetimes(_TTL_MIN, _TTL_MAX, timezones=_zones()).map(
            lambda value: value.replace(microsecond=0)
        )
    return st.none() | strategy if optional else strategy


def _zones() -> SearchStrategy[dt.tzinfo]:
    offsets = st.integers(-1439, 1439).map(lambda m: dt.timezone(dt.timedelta(minutes=m)))
    return st.just(dt.timezone.utc) | offsets


def _aware_datetimes() -> SearchStrategy[dt.datetime]:
    return st.datetimes(_DATETIME_MIN, _DATETIME_MAX, timezones=_zones())


def _strip_none(annotation: Any) -> tuple[Any, bool]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return annotation, False


def _constraints(metadata: list[Any]) -> dict[str, Any]:
    """pydantic's constraint metadata (annotated-types, StringConstraints, Field) as a dict."""
    found: dict[str, Any] = {}
    for item in metadata:
        if isinstance(item, FieldInfo):
            found.update(_constraints(item.metadata))
            continue
        for name in _CONSTRAINTS:
            value = getattr(item, name, None)
            if value is not None:
                found[name] = value
    return found


# -- field values ------------------------------------------------------------------------


class _Builder:
    """Strategies for annotations, recursing through containers and nested models."""

    def __init__(self, hostile: bool) -> None:
        self.hostile = hostile
        self.depth = 0

    def text(self, limits: Mapping[str, Any], min_size: int = 0) -> SearchStrategy[str]:
        low = max(min_size, int(limits.get("min_length", 0)))
        high = max(low, min(int(limits.get("max_length", _MAX_TEXT)), low + _MAX_TEXT))
        pattern = limits.get("pattern")
        if pattern is not None:
            return st.from_regex(pattern, fullmatch=True).filter(lambda s: low <= len(s) <= high)
        make = hostile_text if self.hostile else _plain_text
        return make(min_size=low, max_size=high)

    def slot(self, field: FieldInfo, codec: SlotCodec, non_empty: bool) -> SearchStrategy[Any]:
        limits = _constraints(field.metadata)
        inner, _ = _strip_none(field.annotation)
        strategy: SearchStrategy[Any]
        if codec.enum is not None:
            strategy = st.sampled_from(list(codec.enum))
        elif typing.get_origin(inner) is typing.Literal:
            strategy = st.sampled_from(typing.get_args(inner))
        elif codec.kind == "str":
            strategy = self.text(limits, min_size=1 if non_empty else 0)
        elif codec.kind == "int":
            strategy = _integers(limits, INT_LIMIT)
        elif codec.kind == "datetime":
            strategy = _aware_datetimes()
        else:
            strategy = st.from_type({"bool": bool, "date": dt.date, "uuid": uuid.UUID}[codec.kind])
        # An optional slot fills an index key: None leaves the item out of the index.
        return st.none() | strategy if codec.optional else strategy

    def field(self, field: FieldInfo) -> SearchStrategy[Any]:
        # A top-level empty set is omitted; it reads back empty when the field is required
        # or defaults to an empty set (elsewhere dynaorm refuses it before sending).
        empty_default = isinstance(field.default, (set, frozenset)) and not field.default
        allow_empty_set = empty_default or field.is_required()
        return self.of(field.annotation, _constraints(field.metadata), allow_empty_set)

    def of(
        self, annotation: Any, limits: Mapping[str, Any], allow_empty_set: bool = False
    ) -> SearchStrategy[Any]:
        origin = typing.get_origin(annotation)
        args = typing.get_args(annotation)
        if origin is typing.Annotated:
            return self.of(args[0], {**limits, **_constraints(list(args[1:]))}, allow_empty_set)
        if origin in (typing.Union, types.UnionType):
            return st.one_of([self.of(arg, limits, allow_empty_set) for arg in args])
        if origin is typing.Literal:
            return st.sampled_from(args)
        if origin is not None:
            return self.container(origin, args, limits, allow_empty_set)
        return self.scalar(annotation, limits)

    def scalar(self, annotation: Any, limits: Mapping[str, Any]) -> SearchStrategy[Any]:
        if annotation is None or annotation is type(None):
            return st.none()
        if not isinstance(annotation, type):
            return st.from_type(annotation)
        if issubclass(annotation, enum.Enum):
            return st.sampled_from(list(annotation))
        if issubclass(annotation, BaseModel):
            return self.model(annotation)
        if annotation is bool:
            return st.booleans()
        if annotation is int:
            return _integers(limits, _NUMBER_LIMIT)
        if annotation is float:
            return _floats(limits)
        if annotation is Decimal:
            return _decimals(limits)
        if annotation is str:
            return self.text(limits)
        if annotation is bytes:
            return st.binary(max_size=32)
        if annotation is dt.datetime:
            return _aware_datetimes() | st.datetimes(_DATETIME_MIN, _DATETIME_MAX)
        if annotation is dt.timedelta:
            # Stored as seconds with six decimals; pydantic reads them back through a float.
            return st.timedeltas(dt.timedelta(days=-1000), dt.timedelta(days=1000))
        return st.from_type(annotation)

    def container(
        self, origin: Any, args: tuple[Any, ...], limits: Mapping[str, Any], allow_empty: bool
    ) -> SearchStrategy[Any]:
        # DynamoDB stores no empty string in a set and no empty map key. An empty set
        # nested in a list or map is stored as an empty list and reads back as a set.
        low = int(limits.get("min_length", 0))
        high = max(low, min(int(limits.get("max_length", _MAX_ITEMS)), low + _MAX_ITEMS))
        if origin in (set, frozenset):
            element = self.member(args[0] if args else str)
            low = low if allow_empty else max(low, 1)
            made = st.frozensets if origin is frozenset else st.sets
            return made(element, min_size=low, max_size=max(low, high))
        if origin is list:
            element = self.of(args[0] if args else str, {}, True)
            return st.lists(element, min_size=low, max_size=high)
        if origin is tuple:
            if len(args) == 2 and args[1] is Ellipsis:
                lists = st.lists(self.of(args[0], {}, True), min_size=low, max_size=high)
                return lists.map(tuple)
            return st.tuples(*(self.of(arg, {}, True) for arg in args))
        if origin is dict:
            keys = self.text({}, min_size=1)
            values = self.of(args[1] if len(args) == 2 else str, {}, True)
            return st.dictionaries(keys, values, min_size=low, max_size=high)
        return st.from_type(origin[args] if args else origin)

    def member(self, annotation: Any) -> SearchStrategy[Any]:
        if annotation is str:
            return self.text({}, min_size=1)
        if annotation is bytes:
            return st.binary(min_size=1, max_size=32)
        return self.of(annotation, {})

    def model(self, model: type[BaseModel]) -> SearchStrategy[Any]:
        if self.depth >= _MAX_DEPTH:
            raise TypeError(
                f"{model.__name__} nests more than {_MAX_DEPTH} models deep; pass a "
                "strategy for the field to entities()"
            )
        self.depth += 1
        try:
            required: dict[str, SearchStrategy[Any]] = {}
            optional: dict[str, SearchStrategy[Any]] = {}
            for name, field in model.model_fields.items():
                strategy = self.field(field)
                (required if field.is_required() else optional)[field.alias or name] = strategy
        finally:
            self.depth -= 1
        values = st.fixed_dictionaries(required, optional=optional)
        return values.map(partial(_validated, model)).filter(_is_built)


def _integers(limits: Mapping[str, Any], bound: int) -> SearchStrategy[int]:
    low, high = -bound, bound
    if "ge" in limits:
        low = max(low, int(limits["ge"]))
    if "gt" in limits:
        low = max(low, int(limits["gt"]) + 1)
    if "le" in limits:
        high = min(high, int(limits["le"]))
    if "lt" in limits:
        high = min(high, int(limits["lt"]) - 1)
    strategy = st.integers(low, high)
    step = limits.get("multiple_of")
    return strategy.filter(lambda n: n % step == 0) if step else strategy


def _storable_float(value: float) -> float:
    """DynamoDB cannot hold magnitudes below 1E-130: those become 0.0 (mapping, not
    filtering, because hypothesis favours such boundary values)."""
    return value if abs(value) >= _FLOAT_MIN else 0.0


def _floats(limits: Mapping[str, Any]) -> SearchStrategy[float]:
    low = max(-_FLOAT_MAX, float(limits.get("ge", limits.get("gt", -_FLOAT_MAX))))
    high = min(_FLOAT_MAX, float(limits.get("le", limits.get("lt", _FLOAT_MAX))))
    return st.floats(
        low,
        high,
        allow_nan=False,
        allow_infinity=False,
        exclude_min="gt" in limits,
        exclude_max="lt" in limits,
    ).map(_storable_float)


def _decimals(limits: Mapping[str, Any]) -> SearchStrategy[Decimal]:
    low = max(Decimal(-(10**20)), Decimal(str(limits.get("ge", limits.get("gt", -(10**20))))))
    high = min(Decimal(10**20), Decimal(str(limits.get("le", limits.get("lt", 10**20)))))
    strategy = st.decimals(low, high, allow_nan=False, allow_infinity=False, places=6)
    if "gt" in limits or "lt" in limits:
        return strategy.filter(
            lambda d: (
                ("gt" not in limits or d > limits["gt"])
                and ("lt" not in limits or d < limits["lt"])
            )
        )
    return strategy
