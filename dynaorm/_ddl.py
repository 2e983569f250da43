"""Table definitions from a compiled schema: CreateTable, CloudFormation, drift, patterns."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Any

from dynaorm._compiler import CompiledIndex, CompiledSchema, Gsi
from dynaorm._keys import KeyTemplate
from dynaorm._lock import LockedIndex, lock_entry
from dynaorm._placement import normal_projection
from dynaorm._schema import Projection

__all__ = [
    "access_patterns",
    "cloudformation_resource",
    "create_table_request",
    "describe_drift",
    "index_drift",
    "lock_drift",
    "lock_entries",
    "time_to_live_request",
]


def _projection(projection: Projection, type_attribute: str) -> dict[str, Any]:
    """Every GSI dynaorm creates projects the type attribute: queries filter on it where
    entities share an index, and decoding dispatches on it. So KEYS_ONLY is created as
    INCLUDE of the type attribute alone (DynamoDB has no KEYS_ONLY-plus-one)."""
    if projection == "ALL":
        return {"ProjectionType": "ALL"}
    included = list(projection) if isinstance(projection, tuple) else []
    if type_attribute not in included:
        included.append(type_attribute)
    return {"ProjectionType": "INCLUDE", "NonKeyAttributes": included}


def _key_schema(partition: str, sort: str) -> list[dict[str, str]]:
    return [
        {"AttributeName": partition, "KeyType": "HASH"},
        {"AttributeName": sort, "KeyType": "RANGE"},
    ]


def _gsi_definition(schema: CompiledSchema, gsi: Gsi) -> dict[str, Any]:
    definition: dict[str, Any] = {
        "IndexName": gsi.name,
        "KeySchema": _key_schema(gsi.pk_attribute, gsi.sk_attribute),
        "Projection": _projection(gsi.projection, schema.table.type_attribute),
    }
    table = schema.table
    if table.billing_mode == "PROVISIONED":
        definition["ProvisionedThroughput"] = {
            "ReadCapacityUnits": table.read_capacity,
            "WriteCapacityUnits": table.write_capacity,
        }
    return definition


def _table_properties(schema: CompiledSchema, name: str) -> dict[str, Any]:
    table = schema.table
    attributes = [table.partition_key, table.sort_key]
    for gsi in schema.gsis:
        attributes += [gsi.pk_attribute, gsi.sk_attribute]
    properties: dict[str, Any] = {
        "TableName": name,
        "AttributeDefinitions": [{"AttributeName": a, "AttributeType": "S"} for a in attributes],
        "KeySchema": _key_schema(table.partition_key, table.sort_key),
        "BillingMode": table.billing_mode,
    }
    if table.billing_mode == "PROVISIONED":
        properties["ProvisionedThroughput"] = {
            "ReadCapacityUnits": table.read_capacity,
            "WriteCapacityUnits": table.write_capacity,
        }
    if schema.gsis:
        properties["GlobalSecondaryIndexes"] = [_gsi_definition(schema, g) for g in schema.gsis]
    return properties


def create_table_request(schema: CompiledSchema, name: str) -> dict[str, Any]:
    """CreateTable parameters (on-demand unless the table asks for provisioned)."""
    return _table_properties(schema, name)


def time_to_live_request(schema: CompiledSchema, name: str) -> dict[str, Any] | None:
    """UpdateTimeToLive parameters when the table declares `ttl=`."""
    if schema.table.ttl is None:
        return None
    return {
        "TableName": name,
        "TimeToLiveSpecification": {"Enabled": True, "AttributeName": schema.table.ttl},
    }


def cloudformation_resource(schema: CompiledSchema, name: str) -> dict[str, Any]:
    """An `AWS::DynamoDB::Table` resource for a CloudFormation template."""
    properties = _table_properties(schema, name)
    if schema.table.ttl is not None:
        properties["TimeToLiveSpecification"] = {
            "AttributeName": schema.table.ttl,
            "Enabled": True,
        }
    return {"Type": "AWS::DynamoDB::Table", "Properties": properties}


def describe_drift(schema: CompiledSchema, live: dict[str, Any]) -> list[str]:
    """What differs between the compiled schema and a `DescribeTable` result's `Table`."""
    table = schema.table
    problems: list[str] = []
    live_keys = {k["KeyType"]: k["AttributeName"] for k in live.get("KeySchema", [])}
    wanted_keys = {"HASH": table.partition_key, "RANGE": table.sort_key}
    if live_keys != wanted_keys:
        problems.append(f"primary key is {live_keys}, the schema wants {wanted_keys}")
    live_gsis = {g["IndexName"]: g for g in live.get("GlobalSecondaryIndexes", [])}
    for gsi in schema.gsis:
        found = live_gsis.pop(gsi.name, None)
        if found is None:
            problems.append(f"GSI {gsi.name} is missing")
            continue
        keys = {k["KeyType"]: k["AttributeName"] for k in found.get("KeySchema", [])}
        if keys != {"HASH": gsi.pk_attribute, "RANGE": gsi.sk_attribute}:
            problems.append(
                f"GSI {gsi.name} has key {keys}, the schema wants "
                f"{{'HASH': {gsi.pk_attribute!r}, 'RANGE': {gsi.sk_attribute!r}}}"
            )
        wanted = _wanted_projection(gsi.projection, table.type_attribute)
        have = _live_projection(found)
        if have != wanted:
            problems.append(f"GSI {gsi.name} projects {have}, the schema wants {wanted}")
    problems.extend(f"GSI {name} exists but the schema does not use it" for name in live_gsis)
    return problems


_SAMPLES: dict[str, Any] = {
    "str": None,  # the field name itself reads best: USER#user_id
    "int": 42,
    "bool": True,
    "datetime": dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.timezone.utc),
    "date": dt.date(2024, 5, 1),
    "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
}


def _example(template: KeyTemplate) -> str:
    values: dict[str, Any] = {}
    for segment in template.slots:
        codec = segment.codec
        if codec.enum is not None:
            values[segment.field] = next(iter(codec.enum))
        else:
            sample = _SAMPLES[codec.kind]
            values[segment.field] = segment.field if sample is None else sample
    return template.encode(values)


def access_patterns(schema: CompiledSchema) -> list[dict[str, str]]:
    """One row per access pattern, the table a single-table designer draws."""
    table = schema.table
    rows: list[dict[str, str]] = []
    for compiled in schema.entities.values():
        info = compiled.info
        rows.append(
            {
                "entity": info.name,
                "access": "primary key",
                "index": "table",
                "pk": f"{table.partition_key} = {info.pk.source}",
                "sk": f"{table.sort_key} = {info.sk.source}",
                "example": f"{_example(info.pk)} / {_example(info.sk)}",
            }
        )
        for placed in compiled.indexes.values():
            rows.append(_index_row(info.name, placed))
    return rows


def _index_row(entity: str, placed: CompiledIndex) -> dict[str, str]:
    index = placed.index
    sk_source = index.sk.source if index.sk is not None else str(placed.static_sk)
    sk_example = _example(index.sk) if index.sk is not None else str(placed.static_sk)
    return {
        "entity": entity,
        "access": index.name,
        "index": placed.gsi,
        "pk": f"{placed.pk_attribute} = {index.pk.source}",
        "sk": f"{placed.sk_attribute} = {sk_source}",
        "example": f"{_example(index.pk)} / {sk_example}",
    }


# -- per-index placement: against the schema lock and the live table ----------------------


def _placed_indexes(schema: CompiledSchema) -> dict[str, CompiledIndex]:
    return {
        f"{placed.entity_name}.{placed.index.name}": placed
        for gsi in schema.gsis
        for placed in gsi.indexes
    }


def lock_entries(schema: CompiledSchema) -> dict[str, dict[str, Any]]:
    """The schema lock entries freezing every index where the schema places it."""
    return {
        name: lock_entry(p.gsi, p.pk_attribute, p.sk_attribute, p.index.projection)
        for name, p in sorted(_placed_indexes(schema).items())
    }


def _where(placed: CompiledIndex) -> str:
    projection = placed.index.projection
    shown = f"INCLUDE {list(projection)}" if isinstance(projection, tuple) else projection
    return f"{placed.gsi} ({placed.pk_attribute}, {placed.sk_attribute}, {shown})"


def lock_drift(schema: CompiledSchema, lock: Mapping[str, LockedIndex]) -> list[str]:
    """Per index, how the schema's placement differs from the lock: `+` new, `!` moved
    (or projecting otherwise), `-` no longer declared."""
    placed = _placed_indexes(schema)
    lines: list[str] = []
    for name, p in sorted(placed.items()):
        locked = lock.get(name)
        if locked is None:
            lines.append(f"+ {name} -> {_where(p)}: new, not in the lock")
        elif _normal(locked) != _normal(
            LockedIndex(p.gsi, p.pk_attribute, p.sk_attribute, p.index.projection)
        ):
            why = {
                "pinned": "pinned with gsi=",
                "rule": "by the placement rule",
                "collection": "placed with its collection",
            }.get(p.source)
            lines.append(
                f"! {name}: the lock places it on {locked.describe()}, the schema on "
                f"{_where(p)} ({why})"
            )
    lines += [
        f"- {name} is in the lock on {lock[name].gsi} but no longer declared"
        for name in sorted(set(lock) - set(placed))
    ]
    return lines


def _normal(locked: LockedIndex) -> LockedIndex:
    return dataclasses.replace(locked, projection=normal_projection(locked.projection))


def index_drift(schema: CompiledSchema, live: Mapping[str, Any]) -> list[str]:
    """Per index, whether the live table (a `DescribeTable` `Table`) has its GSI as placed."""
    live_gsis = {g["IndexName"]: g for g in live.get("GlobalSecondaryIndexes", [])}
    name = live.get("TableName", "the live table")
    lines: list[str] = []
    for index, placed in sorted(_placed_indexes(schema).items()):
        found = live_gsis.get(placed.gsi)
        if found is None:
            lines.append(
                f"+ {index} -> {_where(placed)}: {name} has no {placed.gsi}; migrate creates "
                "it and backfills the index's items"
            )
            continue
        keys = {k["KeyType"]: k["AttributeName"] for k in found.get("KeySchema", [])}
        if keys != {"HASH": placed.pk_attribute, "RANGE": placed.sk_attribute}:
            lines.append(
                f"! {index} -> {_where(placed)}: {name}'s {placed.gsi} is keyed on "
                f"({keys.get('HASH')}, {keys.get('RANGE')})"
            )
        elif _live_projection(found) != _wanted_projection(
            normal_projection(placed.index.projection), schema.table.type_attribute
        ):
            lines.append(
                f"! {index} -> {_where(placed)}: {name}'s {placed.gsi} projects "
                f"{_live_projection(found)}"
            )
    return lines


def _wanted_projection(projection: Projection, type_attribute: str) -> dict[str, Any]:
    """`_projection` with its attribute list sorted, to compare with `_live_projection`."""
    wanted = _projection(projection, type_attribute)
    if "NonKeyAttributes" in wanted:
        wanted["NonKeyAttributes"] = sorted(wanted["NonKeyAttributes"])
    return wanted


def _live_projection(gsi: Mapping[str, Any]) -> dict[str, Any]:
    have = dict(gsi.get("Projection", {}))
    if "NonKeyAttributes" in have:
        have["NonKeyAttributes"] = sorted(have["NonKeyAttributes"])
    return have
