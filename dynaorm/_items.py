"""Entity <-> DynamoDB item: attributes, derived keys, TTL, size check, type dispatch."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from dynaorm._codec import (
    MAX_ITEM_BYTES,
    AttributeValue,
    check_item_size,
    decode_item,
    encode_item_sized,
)
from dynaorm._compiler import CompiledSchema, schema_of
from dynaorm._crypto import open_values, seal_values
from dynaorm._fields import prepare_values, validate_item
from dynaorm._schema import Table
from dynaorm.errors import ItemEncodingError, KeyDecodingError

if TYPE_CHECKING:
    from dynaorm._entity import Entity, Key

__all__ = [
    "entity_from_item",
    "entity_to_item",
    "entity_to_item_sized",
    "item_type",
    "ttl_seconds",
]


def entity_to_item(
    entity: Entity, schema: CompiledSchema | None = None
) -> dict[str, AttributeValue]:
    """The full item for `entity`: its fields, key attributes, type and GSI keys.

    Raises before any request when a key cannot be encoded, a value cannot be stored,
    or the item is over 400 KB.
    """
    return entity_to_item_sized(entity, schema)[0]


def entity_to_item_sized(
    entity: Entity, schema: CompiledSchema | None = None, known: Key | None = None
) -> tuple[dict[str, AttributeValue], int]:
    """`entity_to_item`, plus a bound on the item's size: never less than DynamoDB counts.

    `known`: the entity's key as computed earlier, reused if its fields are unchanged.
    """
    info = type(entity).__dynaorm__
    table = info.table
    schema = schema or schema_of(table)
    try:
        values = entity.model_dump(mode="python", by_alias=True)
    except (ValueError, RecursionError) as e:  # pydantic's "Maximum serialization depth"
        raise ItemEncodingError(
            f"{info.name} cannot be serialized: {e}", entity=info.name, value=entity
        ) from e
    prepare_values(info, values)
    if info.ttl is not None:
        ttl = info.attributes[info.ttl]
        values[ttl] = ttl_seconds(info.name, ttl, values.get(ttl))
    for name in info.omit_none:
        attribute = info.attributes[name]
        if values.get(attribute, 0) is None:
            del values[attribute]
    keys = schema.key_attributes(entity, known)
    if info.encrypted:
        seal_values(info, entity, values, keys)
    try:
        item, size = encode_item_sized(values)
    except ItemEncodingError as e:
        if e.entity is None:  # the codec knows the attribute path, not the entity
            e.entity = info.name
            e.message = f"{info.name}: {e.message}"
            e.args = (e.message,)
        raise
    type_attribute = table.type_attribute
    item[type_attribute] = {"S": info.name}
    size += len(type_attribute) * 4 + len(info.name) * 4
    for attribute, value in keys.items():
        item[attribute] = {"S": value}
        size += len(attribute) * 4 + len(value) * 4
    # `size` is a bound (names and keys at 4 bytes a character): count exactly only when
    # the bound says the item might be too large.
    if size > MAX_ITEM_BYTES:
        check_item_size(
            item,
            entity=info.name,
            key=(keys[table.partition_key], keys[table.sort_key]),
        )
    return item, size


def ttl_seconds(entity: str, field: str, value: Any) -> int | None:
    """DynamoDB TTL reads a Number of epoch seconds; a datetime is converted to one."""
    if value is None or isinstance(value, int):
        return value
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ItemEncodingError(
                f"{entity}.{field} is the TTL attribute and got the naive datetime "
                f"{value!r}; give it a timezone",
                entity=entity,
                field=field,
                value=value,
            )
        return int(value.timestamp())
    raise ItemEncodingError(
        f"{entity}.{field} is the TTL attribute; expected a datetime or int, got {value!r}",
        entity=entity,
        field=field,
        value=value,
    )


def item_type(table: Table, item: Mapping[str, AttributeValue]) -> str | None:
    """The type name stored in an item, or None when it has none."""
    tag = item.get(table.type_attribute)
    if tag is None:
        return None
    value = tag.get("S")
    return value if isinstance(value, str) else None


def entity_from_item(
    schema: CompiledSchema,
    item: Mapping[str, AttributeValue],
    expected: type[Entity] | None = None,
) -> Entity | None:
    """Build the entity an item stores, dispatching on the type attribute.

    Returns None for items of types this table does not declare (another service's
    items in a shared partition) unless `expected` names the class, in which case a
    mismatch raises.
    """
    table = schema.table
    name = item_type(table, item)
    compiled = schema.entities.get(name) if name is not None else None
    if compiled is None or (expected is not None and compiled.info.cls is not expected):
        if expected is None:
            return None
        raise KeyDecodingError(
            f"expected a {expected.__dynaorm__.name} item but the item's "
            f"{table.type_attribute!r} is {name!r}",
            entity=expected.__dynaorm__.name,
            key=_item_key(table, item),
        )
    # Derived attributes (key and GSI attributes, the type) are skipped while decoding
    # rather than filtered into a copy first: one dict per item instead of two.
    data = decode_item(item, compiled.derived)
    if compiled.info.encrypted:
        open_values(compiled.info, data, _item_keys(table, item))
    return validate_item(compiled.info, data, _item_key(table, item))


def _item_keys(table: Table, item: Mapping[str, AttributeValue]) -> dict[str, str]:
    return {name: item.get(name, {}).get("S", "") for name in (table.partition_key, table.sort_key)}


def _item_key(table: Table, item: Mapping[str, AttributeValue]) -> tuple[Any, Any]:
    return (
        item.get(table.partition_key, {}).get("S"),
        item.get(table.sort_key, {}).get("S"),
    )
