"""What a query on a KEYS_ONLY or INCLUDE index can honestly return.

Such an index holds the table's and its own key attributes, the type attribute (every
GSI dynaorm creates projects it) and, for INCLUDE, the listed attributes. Key fields are
decoded from the keys; anything else the index does not hold is refused before sending,
never returned as missing or defaulted.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from dynaorm._codec import AttributeValue, to_attribute_value
from dynaorm._conditions import Condition
from dynaorm._entity import EntityIndex, EntityInfo, Key
from dynaorm._expressions import Path, Size
from dynaorm._update import as_path
from dynaorm.errors import ExpressionError, KeyDecodingError

__all__ = [
    "check_entities_readable",
    "check_filter_readable",
    "key_field_attributes",
    "key_from_item",
    "missing_fields",
    "sendable_paths",
]


def _projected(index: EntityIndex) -> frozenset[str]:
    projection = index.projection
    return frozenset(projection) if isinstance(projection, tuple) else frozenset()


def _key_fields(index: EntityIndex) -> tuple[str, ...]:
    """Fields that fill a slot of the primary key or of the index: readable from keys."""
    info = index.entity.__dynaorm__
    return tuple(dict.fromkeys(info.pk.fields + info.sk.fields + index.fields))


def missing_fields(index: EntityIndex) -> tuple[str, ...]:
    """The entity's fields an item read through `index` does not carry."""
    if index.projection == "ALL":
        return ()
    info = index.entity.__dynaorm__
    known = set(_key_fields(index))
    projected = _projected(index)
    return tuple(
        name
        for name, attribute in info.attributes.items()
        if name not in known and attribute not in projected
    )


def _describe(index: EntityIndex) -> str:
    projection = index.projection
    return f"INCLUDE {list(projection)}" if isinstance(projection, tuple) else str(projection)


def check_entities_readable(index: EntityIndex) -> None:
    """Refuse to build entities from an index that lacks some of their fields."""
    missing = missing_fields(index)
    if not missing:
        return
    info = index.entity.__dynaorm__
    raise ExpressionError(
        f"{index!r} projects {_describe(index)}: its items lack {list(missing)}, so a "
        f"query on it cannot return {info.name} entities. Use .keys() for their primary "
        "keys (then session.batch_get(keys)), or .project(...) for the projected "
        "attributes and key fields",
        entity=info.name,
        field=missing[0],
    )


def sendable_paths(
    index: EntityIndex, paths: tuple[Path | str, ...], key_attributes: set[str]
) -> tuple[Path | str, ...]:
    """The paths of `.project(...)` to request from `index`.

    Key fields are left out (they are decoded from the keys); a path the index does not
    project raises instead of reading as absent.
    """
    info = index.entity.__dynaorm__
    from_keys = {info.attributes[name] for name in _key_fields(index)}
    readable = _projected(index) | key_attributes
    sendable: list[Path | str] = []
    for path in paths:
        top = as_path(path).segments[0]
        if top in readable:
            sendable.append(path)
        elif top not in from_keys:
            raise ExpressionError(
                f"{index!r} projects {_describe(index)}: {top!r} is not projected into "
                f"it; project one of {sorted(readable | from_keys)}",
                entity=info.name,
                field=str(top),
            )
    return tuple(sendable)


def _paths(node: object) -> Iterator[Path]:
    """Every path a condition reads. Condition nodes keep their parts in `__slots__`
    (paths, operands, values, nested conditions), so walking the slots finds them all."""
    if isinstance(node, Path):
        yield node
    elif isinstance(node, (Condition, Size)):
        for cls in type(node).__mro__:
            for slot in getattr(cls, "__slots__", ()):
                yield from _paths(getattr(node, slot, None))
    elif isinstance(node, (tuple, list)):
        for part in node:
            yield from _paths(part)


def check_filter_readable(
    index: EntityIndex, condition: Condition, key_attributes: set[str]
) -> None:
    """Refuse a filter on an attribute `index` does not hold.

    DynamoDB evaluates a GSI query's filter on the index's items, where such an attribute
    is absent: the filter would silently drop (or, negated, keep) every item.
    """
    readable = _projected(index) | key_attributes
    for path in _paths(condition):
        top = path.segments[0]
        if top not in readable:
            info = index.entity.__dynaorm__
            raise ExpressionError(
                f"{index!r} projects {_describe(index)}: a filter on {top!r} reads an "
                "attribute not projected into it, which DynamoDB would see as absent on "
                "every item. Filter on a projected attribute, use a key condition for key "
                "fields, or filter after session.batch_get(query.keys())",
                entity=info.name,
                field=str(top),
            )


def _string(item: Mapping[str, AttributeValue], attribute: str, entity: str) -> str:
    value = item.get(attribute, {}).get("S")
    if not isinstance(value, str):
        raise KeyDecodingError(
            f"a {entity} item read from an index has no string {attribute!r}",
            entity=entity,
            field=attribute,
        )
    return value


def key_from_item(info: EntityInfo, item: Mapping[str, AttributeValue]) -> Key:
    """The primary key of a returned item, its slot values decoded strictly."""
    table = info.table
    pk = _string(item, table.partition_key, info.name)
    sk = _string(item, table.sort_key, info.name)
    return Key(info.cls, pk, sk, {**info.pk.decode(pk), **info.sk.decode(sk)})


def key_field_attributes(
    index: EntityIndex,
    item: Mapping[str, AttributeValue],
    attributes: tuple[str, str],
    wanted: frozenset[str] | None = None,
) -> dict[str, AttributeValue]:
    """Key-field attributes rebuilt from the keys of an item read through `index`.

    `attributes`: the index's partition and sort attributes. `wanted`: only these
    attribute names (all key fields when None). Values read as the stored attribute
    would (a datetime key slot is stored in UTC, so it reads back in UTC).
    """
    info = index.entity.__dynaorm__
    values: dict[str, Any] = dict(key_from_item(info, item).slots)
    values.update(index.pk.decode(_string(item, attributes[0], info.name)))
    if index.sk is not None:
        values.update(index.sk.decode(_string(item, attributes[1], info.name)))
    result: dict[str, AttributeValue] = {}
    for name, value in values.items():
        attribute = info.attributes[name]
        if attribute in item or (wanted is not None and attribute not in wanted):
            continue
        encoded = to_attribute_value(value, path=attribute)
        if encoded is not None:
            result[attribute] = encoded
    return result
