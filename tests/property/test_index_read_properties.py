"""Key fields read from a KEYS_ONLY index equal the stored attributes, for hostile values."""

from __future__ import annotations

import datetime as dt
import uuid
from enum import Enum

from hypothesis import given
from hypothesis import strategies as st

from dynaorm import Entity, Index, Table
from dynaorm._compiler import schema_of
from dynaorm._ddl import create_table_request, describe_drift
from dynaorm._index_reads import key_field_attributes, key_from_item
from dynaorm._items import entity_to_item

UTC = dt.timezone.utc


class Kind(Enum):
    A = "a"
    HASH = "#"


table = Table("index-reads")


class Event(Entity, table=table, pk="T#{tenant}#{day}", sk="E#{at}#{seq}#{event_id}"):
    tenant: str
    day: dt.date
    at: dt.datetime
    seq: int
    event_id: uuid.UUID
    kind: Kind
    flag: bool
    body: str = ""

    by_kind = Index(pk="K#{kind}#{flag}", sk="T#{tenant}", projection="KEYS_ONLY")


zones = st.sampled_from([UTC, dt.timezone(dt.timedelta(hours=5, minutes=30)), dt.timezone.min])
events = st.builds(
    Event,
    tenant=st.text(),
    day=st.dates(),
    at=st.datetimes(
        min_value=dt.datetime(2, 1, 1), max_value=dt.datetime(9998, 1, 1), timezones=zones
    ),
    seq=st.integers(-(10**20) + 1, 10**20 - 1),
    event_id=st.uuids(),
    kind=st.sampled_from(Kind),
    flag=st.booleans(),
    body=st.text(),
)


@given(events)
def test_key_fields_decoded_from_keys_equal_the_stored_attributes(event: Event) -> None:
    item = entity_to_item(event)
    placed = schema_of(table).entity("Event").indexes["by_kind"]
    # What a KEYS_ONLY index holds: the table's and the index's keys, and the type.
    keys_only = {
        name: item[name] for name in ("PK", "SK", placed.pk_attribute, placed.sk_attribute, "_type")
    }
    rebuilt = key_field_attributes(
        Event.by_kind, keys_only, (placed.pk_attribute, placed.sk_attribute)
    )
    fields = ("tenant", "day", "at", "seq", "event_id", "kind", "flag")
    assert rebuilt == {name: item[name] for name in fields}
    assert key_from_item(Event.__dynaorm__, keys_only) == event.get_key()
    only = key_field_attributes(
        Event.by_kind, keys_only, (placed.pk_attribute, placed.sk_attribute), frozenset({"seq"})
    )
    assert only == {"seq": item["seq"]}


def test_drift_reports_a_gsi_created_without_the_type_attribute() -> None:
    schema = schema_of(table)
    live = create_table_request(schema, "index-reads")
    assert describe_drift(schema, live) == []
    gsi = live["GlobalSecondaryIndexes"][0]
    # What dynaorm created for KEYS_ONLY before every GSI projected the type attribute.
    gsi["Projection"] = {"ProjectionType": "KEYS_ONLY"}
    assert describe_drift(schema, live) == [
        f"GSI {gsi['IndexName']} projects {{'ProjectionType': 'KEYS_ONLY'}}, the schema "
        "wants {'ProjectionType': 'INCLUDE', 'NonKeyAttributes': ['_type']}"
    ]
