"""How an entity's fields are stored and read back: aliases, empty sets, computed fields.

The rules that keep a written item readable, in one place for every write and read path:

- A field is stored under its serialization alias (what `model_dump(by_alias=True)`
  writes), or its name; reading maps those names back at every depth, so a
  `serialization_alias`-only field reads back instead of going missing.
- DynamoDB has no empty set. A top-level empty set is omitted; a missing attribute reads
  back as an empty set when the field is required and typed as a set. Where the missing
  attribute would read back as something else (the field's default, say `None`), an
  empty set is refused before sending. Nested empty sets are the codec's business.
- `@computed_field`s are not stored: they are recomputed from the stored fields on read,
  so no write path can leave a stale copy behind.
- A read that does not fit the entity raises `ItemDecodingError`, never pydantic's error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, MutableSequence, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from functools import lru_cache
from types import UnionType
from typing import TYPE_CHECKING, Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, TypeAdapter, ValidationError

from dynaorm.errors import (
    DefinitionError,
    ExpressionError,
    ItemDecodingError,
    ItemEncodingError,
)

if TYPE_CHECKING:
    from dynaorm._entity import Entity, EntityInfo
    from dynaorm._expressions import Path

__all__ = [
    "check_removable",
    "prepare_values",
    "reads_back_empty",
    "shape_of",
    "validate_at",
    "validate_item",
]

_Walk = Callable[[Any], Any]
_SET_ORIGINS = (set, frozenset, AbstractSet)
_SEQUENCES = (list, tuple, Sequence, MutableSequence)
_MAPPINGS = (dict, Mapping)


@dataclass(frozen=True)
class Shape:
    """What an entity class needs on its write and read paths, computed once per class."""

    # attributes of required set fields: missing on read means empty.
    fill_empty: tuple[str, ...]
    # attribute -> field where an empty set would read back as something else.
    no_empty: Mapping[str, str]
    # attributes model_dump writes for computed fields: never stored.
    computed: tuple[str, ...]
    # renames stored names back to field names at every depth; None when none differ.
    walk: _Walk | None


def _strip(annotation: Any) -> Any:
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return annotation


def _arms(annotation: Any) -> tuple[Any, ...]:
    annotation = _strip(annotation)
    if get_origin(annotation) in (Union, UnionType):
        return tuple(_strip(arm) for arm in get_args(annotation))
    return (annotation,)


def _is_set(annotation: Any) -> bool:
    origin = get_origin(annotation) or annotation
    return isinstance(origin, type) and issubclass(origin, _SET_ORIGINS)


def _may_hold_set(annotation: Any) -> bool:
    return any(_is_set(arm) or arm is Any or arm is object for arm in _arms(annotation))


def _empty_default(field: Any) -> bool:
    if field.default_factory in (set, frozenset):
        return True
    default = field.default
    return isinstance(default, set | frozenset) and not default


@lru_cache(maxsize=1024)
def shape_of(cls: type[Entity]) -> Shape:
    info = cls.__dynaorm__
    fill: list[str] = []
    refused: dict[str, str] = {}
    for name, field in cls.model_fields.items():
        attribute = info.attributes[name]
        if field.is_required() and any(_is_set(arm) for arm in _arms(field.annotation)):
            fill.append(attribute)
        elif _may_hold_set(field.annotation) and not _empty_default(field):
            refused[attribute] = name
    computed = tuple(
        field.alias or name
        for name, field in cls.model_computed_fields.items()
        if name not in info.attributes
    )
    try:
        walk = _walker(cls, {})
    except DefinitionError as error:
        error.entity = info.name
        error.message = f"{info.name}: {error.message}"
        error.args = (error.message,)
        raise
    return Shape(tuple(fill), refused, computed, walk)


# --- stored names --------------------------------------------------------------------


def _models(annotation: Any) -> Iterator[type[BaseModel]]:
    """The models an annotation holds, through unions, Annotated and containers."""
    for arm in _arms(annotation):
        if isinstance(arm, type) and issubclass(arm, BaseModel):
            yield arm
        else:
            for arg in get_args(arm):
                yield from _models(arg)


def _renames_inside(model: type[BaseModel], visited: set[type]) -> bool:
    """True if a stored name differs from its field name in `model` or models it holds."""
    if model in visited:
        return False
    visited.add(model)
    for name, field in model.model_fields.items():
        if (field.serialization_alias or name) != name:
            return True
        if any(_renames_inside(inner, visited) for inner in _models(field.annotation)):
            return True
    return False


def _model_walker(model: type[BaseModel], memo: dict[type, _Walk]) -> _Walk | None:
    if model in memo:  # a recursive model: the walker being built
        return memo[model]
    if not _renames_inside(model, set()):
        return None
    renames: dict[str, str] = {}
    children: dict[str, _Walk] = {}

    def walk(value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        out = {}
        for key, element in value.items():
            child = children.get(key)
            out[renames.get(key, key)] = element if child is None else child(element)
        return out

    memo[model] = walk
    for name, field in model.model_fields.items():
        stored = field.serialization_alias or name
        if stored != name:
            renames[stored] = name
        child = _walker(field.annotation, memo)
        if child is not None:
            children[stored] = child
    return walk


def _walker(annotation: Any, memo: dict[type, _Walk]) -> _Walk | None:
    """A function renaming stored names to field names inside values of `annotation`."""
    arms = _arms(annotation)
    if len(arms) > 1:
        walks = [w for arm in arms if arm is not type(None) and (w := _walker(arm, memo))]
        if len(walks) > 1:
            # Which arm's names to map back is only known after validation picked one.
            raise DefinitionError(
                f"the union {annotation!r} has several arms whose stored names differ from "
                "their field names (serialization aliases); an item could not be read "
                "back reliably: drop the serialization aliases or use a discriminated model"
            )
        return walks[0] if walks else None
    annotation = arms[0]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _model_walker(annotation, memo)
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is tuple and args and args[-1] is not Ellipsis:
        positions = [_walker(arg, memo) for arg in args]
        if any(positions):
            return lambda value: (
                [w(v) if w else v for w, v in zip(positions, value, strict=False)]
                if isinstance(value, list)
                else value
            )
        return None
    if origin in _SEQUENCES and args:
        element = _walker(args[0], memo)
        if element is not None:
            return lambda value: [element(v) for v in value] if isinstance(value, list) else value
    if origin in _MAPPINGS and len(args) == 2:
        member = _walker(args[1], memo)
        if member is not None:
            return lambda value: (
                {k: member(v) for k, v in value.items()} if isinstance(value, dict) else value
            )
    return None


# --- write path ----------------------------------------------------------------------


def prepare_values(info: EntityInfo, values: dict[str, Any]) -> None:
    """Drop computed fields from a dump; refuse an empty set that would not read back."""
    shape = shape_of(info.cls)
    for attribute in shape.computed:
        values.pop(attribute, None)
    for attribute, name in shape.no_empty.items():
        value = values.get(attribute)
        if isinstance(value, set | frozenset) and not value:
            raise ItemEncodingError(
                f"{info.name}.{name}: DynamoDB has no empty set, so the attribute would be "
                "omitted and read back as the field's default, not set(); give the field "
                "an empty-set default (or none), or store None or a non-empty set",
                entity=info.name,
                field=name,
                value=value,
            )


def reads_back_empty(info: EntityInfo, name: str) -> bool:
    """True if a missing attribute for field `name` reads back as an empty set."""
    field = info.cls.model_fields[name]
    if field.is_required():
        return info.attributes[name] in shape_of(info.cls).fill_empty
    return _empty_default(field)


def check_removable(info: EntityInfo, name: str) -> None:
    """Refuse `REMOVE` of a field that has no default: the item would not read back."""
    field = info.cls.model_fields[name]
    if field.is_required() and not reads_back_empty(info, name):
        raise ExpressionError(
            f"{info.name}.{name} is required (it has no default): removing it would leave "
            "an item that cannot be read; set a value instead",
            entity=info.name,
            field=name,
        )


@lru_cache(maxsize=1024)
def _path_adapter(annotation: Any) -> TypeAdapter[Any]:
    return TypeAdapter(annotation)


def validate_at(path: Path, value: Any) -> Any:
    """`value` validated as the type declared at `path` and dumped as a write stores it.

    Models, dataclasses and the like become maps under their stored names, and a wrong
    type is refused here rather than written and then unreadable. Paths without a
    declared type (plain `Path("x")`, `Any`) pass `value` through.
    """
    annotation = path.declared
    if annotation is None or annotation is Any:
        return value
    try:
        adapter = _path_adapter(annotation)
    except TypeError:  # unhashable metadata inside Annotated
        adapter = TypeAdapter(annotation)
    try:
        valid = adapter.validate_python(value)
    except ValidationError as error:
        raise ExpressionError(
            f"{path.describe()}: {value!r:.80} is not a valid value: {error.errors()[0]['msg']}",
            entity=path.entity,
            field=path.dotted,
            value=value,
        ) from error
    return adapter.dump_python(valid, mode="python", by_alias=True)


# --- read path -----------------------------------------------------------------------


def validate_item(info: EntityInfo, data: dict[str, Any], key: Any) -> Entity:
    """The entity for decoded item `data`; `ItemDecodingError` if it does not fit."""
    shape = shape_of(info.cls)
    for attribute in shape.fill_empty:
        if attribute not in data:
            data[attribute] = set()
    if shape.walk is not None:
        data = shape.walk(data)
    try:
        return info.cls.model_validate(data, by_name=True)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or None
        missing = first["type"] == "missing"  # its input is the whole enclosing map
        value = None if missing else first.get("input")
        shown = "missing" if missing else f"stored value {value!r:.80}"
        raise ItemDecodingError(
            f"the stored {info.name} item {key!r} does not fit the entity: "
            f"{field or 'item'}: {first['msg']} ({shown})",
            entity=info.name,
            key=key,
            field=field,
            value=value,
        ) from error
