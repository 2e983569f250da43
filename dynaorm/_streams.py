"""DynamoDB Streams records -> typed changes: decode images, dispatch on the type attribute."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, cast

from dynaorm._codec import AttributeValue, decode_item
from dynaorm._compiler import schema_of
from dynaorm._items import entity_from_item, item_type
from dynaorm.errors import ItemEncodingError

if TYPE_CHECKING:
    from dynaorm._entity import Entity
    from dynaorm._schema import Table

__all__ = ["EventName", "StreamChange", "parse_stream_record"]

EventName = Literal["INSERT", "MODIFY", "REMOVE"]
_EVENT_NAMES: frozenset[str] = frozenset({"INSERT", "MODIFY", "REMOVE"})
# TTL deletions are the only stream records with a userIdentity: the DynamoDB service
# itself, as documented in "Using DynamoDB Streams and Time to Live".
_TTL_PRINCIPAL = "dynamodb.amazonaws.com"


@dataclass(frozen=True)
class StreamChange:
    """One item change read from a DynamoDB stream.

    `old` and `new` are the entities before and after the change: `new` is None for
    REMOVE, `old` is None for INSERT, and both are None when the stream does not carry
    that image (view type KEYS_ONLY, NEW_IMAGE or OLD_IMAGE) or the item is not of an
    entity type the table declares (a unique-guard item, another service's item);
    `type_name` then still says what the item was. `keys` holds the decoded key
    attributes, e.g. `{"PK": "USER#u1", "SK": "PROFILE"}`.
    """

    event_name: EventName
    old: Entity | None
    new: Entity | None
    keys: dict[str, Any]
    type_name: str | None = None
    event_id: str | None = None
    sequence_number: str | None = None
    approximate_creation_time: dt.datetime | None = None
    expired: bool = False
    record: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def entity(self) -> Entity | None:
        """The entity the change is about: `new`, or `old` for a REMOVE."""
        return self.new if self.new is not None else self.old


def parse_stream_record(table: Table, record: Mapping[str, Any]) -> StreamChange:
    """Decode one stream record (an element of a Lambda event's `Records`).

    Accepts AttributeValue JSON as Lambda delivers it (B values as base64 text) and as
    botocore's DynamoDB Streams client returns it (B values as bytes). Raises
    `ItemEncodingError` for a record that is not a DynamoDB Streams record;
    `ItemDecodingError` when an image of a declared type does not fit its entity.
    """
    event_name = record.get("eventName")
    body = record.get("dynamodb")
    if event_name not in _EVENT_NAMES or not isinstance(body, Mapping):
        raise ItemEncodingError(
            "not a DynamoDB Streams record: expected eventName INSERT, MODIFY or REMOVE "
            f"and a 'dynamodb' object, got eventName={event_name!r}"
        )
    schema = schema_of(table)
    images = {name: _image(body, name) for name in ("Keys", "OldImage", "NewImage") if name in body}
    old_image = images.get("OldImage")
    new_image = images.get("NewImage")
    type_name = next(
        (item_type(table, image) for image in (new_image, old_image) if image is not None),
        None,
    )
    identity = record.get("userIdentity")
    return StreamChange(
        event_name=cast(EventName, event_name),
        old=entity_from_item(schema, old_image) if old_image is not None else None,
        new=entity_from_item(schema, new_image) if new_image is not None else None,
        keys=decode_item(images.get("Keys") or _keys_of(table, new_image or old_image)),
        type_name=type_name,
        event_id=_text(record.get("eventID")),
        sequence_number=_text(body.get("SequenceNumber")),
        approximate_creation_time=_timestamp(
            body.get("ApproximateCreationDateTime"),
            body.get("ApproximateCreationDateTimePrecision"),
        ),
        expired=isinstance(identity, Mapping)
        and identity.get("type") == "Service"
        and identity.get("principalId") == _TTL_PRINCIPAL,
        record=record,
    )


def _image(body: Mapping[str, Any], name: str) -> dict[str, AttributeValue]:
    image = body[name]
    if not isinstance(image, Mapping) or not all(isinstance(v, dict) for v in image.values()):
        raise ItemEncodingError(f"stream record field dynamodb.{name} is not an item")
    return dict(image)


def _keys_of(table: Table, image: Mapping[str, AttributeValue] | None) -> dict[str, Any]:
    if image is None:
        return {}
    names = (table.partition_key, table.sort_key)
    return {name: image[name] for name in names if name in image}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _timestamp(value: Any, precision: Any) -> dt.datetime | None:
    """Lambda sends epoch seconds (microseconds when the record says MICROSECOND
    precision, as Kinesis-delivered records may); botocore's streams client a datetime."""
    if isinstance(value, dt.datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=dt.timezone.utc)
    if not isinstance(value, (int, float, Decimal)) or isinstance(value, bool):
        return None
    seconds = float(value) / (1_000_000 if precision == "MICROSECOND" else 1)
    try:
        return dt.datetime.fromtimestamp(seconds, tz=dt.timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None
