"""Table.parse_stream_record: Lambda-shaped DynamoDB Streams records -> StreamChange."""

from __future__ import annotations

import base64
import datetime as dt
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from dynaorm import Entity, StreamChange, Table
from dynaorm._items import entity_to_item
from dynaorm.errors import ItemDecodingError, ItemEncodingError

sys.path.insert(0, str(Path(__file__).parents[2] / "examples"))

from blog_models import Post, User, app

UTC = dt.timezone.utc
POST = Post(
    user_id="u#1",
    post_id="p1",
    title="Hello",
    created_at=dt.datetime(2024, 5, 1, 9, tzinfo=UTC),
    likes=3,
    tags={"python", "dynamodb"},
    topic="dynamodb",
)
ANN = User(user_id="u#1", email="ann@example.com", name="Ann", version=1)

files = Table("files")


class Blob(Entity, table=files, pk="BLOB#{name}", sk="BLOB"):
    name: str
    data: bytes
    chunks: set[bytes] = set()
    parts: list[bytes] = []


def lambda_json(value: Any) -> Any:
    """AttributeValue JSON as Lambda delivers it: binary values as base64 text."""
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, dict):
        return {k: lambda_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [lambda_json(v) for v in value]
    return value


def record(
    event: str,
    *,
    old: dict[str, Any] | None = None,
    new: dict[str, Any] | None = None,
    keys_only: bool = False,
    **extra: Any,
) -> dict[str, Any]:
    image = new or old
    assert image is not None
    body: dict[str, Any] = {
        "ApproximateCreationDateTime": 1714554000,
        "Keys": {"PK": image["PK"], "SK": image["SK"]},
        "SequenceNumber": "4421584500000000017450439091",
        "SizeBytes": 123,
        "StreamViewType": "KEYS_ONLY" if keys_only else "NEW_AND_OLD_IMAGES",
    }
    if not keys_only:
        if old is not None:
            body["OldImage"] = old
        if new is not None:
            body["NewImage"] = new
    return lambda_json(
        {
            "eventID": "c4ca4238a0b923820dcc509a6f75849b",
            "eventName": event,
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": "eu-west-1",
            "dynamodb": body,
            "eventSourceARN": "arn:aws:dynamodb:eu-west-1:123456789012:table/blog/stream/x",
            **extra,
        }
    )


def test_insert() -> None:
    change = app.parse_stream_record(record("INSERT", new=entity_to_item(POST)))
    assert isinstance(change, StreamChange)
    assert change.event_name == "INSERT"
    assert change.old is None
    assert change.new == POST and change.entity == POST
    assert change.type_name == "Post"
    assert change.keys == {"PK": "USER#u$c1", "SK": "POST#2024-05-01T09:00:00.000000Z#p1"}
    assert change.event_id == "c4ca4238a0b923820dcc509a6f75849b"
    assert change.sequence_number == "4421584500000000017450439091"
    assert change.approximate_creation_time == dt.datetime(2024, 5, 1, 9, tzinfo=UTC)
    assert not change.expired


def test_modify_has_both_images() -> None:
    renamed = ANN.model_copy(update={"name": "Ann B.", "version": 2})
    change = app.parse_stream_record(
        record("MODIFY", old=entity_to_item(ANN), new=entity_to_item(renamed))
    )
    assert (change.old, change.new) == (ANN, renamed)
    assert change.entity == renamed


def test_remove_and_ttl_expiry() -> None:
    ttl = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
    change = app.parse_stream_record(record("REMOVE", old=entity_to_item(POST), userIdentity=ttl))
    assert (change.old, change.new, change.entity) == (POST, None, POST)
    assert change.expired
    by_user = app.parse_stream_record(record("REMOVE", old=entity_to_item(POST)))
    assert not by_user.expired


def test_unique_guard_items_give_no_entity() -> None:
    guard = {
        "PK": {"S": "UNIQUE#User#email#ann@example.com"},
        "SK": {"S": "UNIQUE"},
        "_type": {"S": "dynaorm.unique"},
        "owner_pk": {"S": "USER#u$c1"},
        "owner_sk": {"S": "PROFILE"},
    }
    change = app.parse_stream_record(record("INSERT", new=guard))
    assert (change.old, change.new, change.entity) == (None, None, None)
    assert change.type_name == "dynaorm.unique"
    assert change.keys == {"PK": "UNIQUE#User#email#ann@example.com", "SK": "UNIQUE"}


def test_items_without_a_type_attribute_give_no_entity() -> None:
    foreign = {"PK": {"S": "LEGACY#1"}, "SK": {"S": "X"}, "n": {"N": "1"}}
    change = app.parse_stream_record(record("MODIFY", old=foreign, new=foreign))
    assert (change.old, change.new, change.type_name) == (None, None, None)


def test_keys_only_stream() -> None:
    change = app.parse_stream_record(record("REMOVE", old=entity_to_item(POST), keys_only=True))
    assert (change.old, change.new, change.type_name) == (None, None, None)
    assert change.keys["PK"] == "USER#u$c1"


def test_binary_values_arrive_as_base64() -> None:
    blob = Blob(name="b", data=b"\x00\xff#", chunks={b"a", b"\x01"}, parts=[b"", b"z"])
    change = files.parse_stream_record(record("INSERT", new=entity_to_item(blob)))
    assert change.new == blob


def test_botocore_shape_with_bytes_and_datetime() -> None:
    # boto3's dynamodbstreams client decodes base64 and timestamps itself.
    blob = Blob(name="b", data=b"\x00\xff")
    raw = {
        "eventName": "INSERT",
        "dynamodb": {
            "ApproximateCreationDateTime": dt.datetime(2024, 5, 1, 9),
            "Keys": {"PK": {"S": "BLOB#b"}, "SK": {"S": "BLOB"}},
            "NewImage": entity_to_item(blob),
        },
    }
    change = files.parse_stream_record(raw)
    assert change.new == blob
    assert change.approximate_creation_time == dt.datetime(2024, 5, 1, 9, tzinfo=UTC)
    assert change.event_id is None


def test_microsecond_precision_timestamps() -> None:
    raw = record("INSERT", new=entity_to_item(POST))
    raw["dynamodb"]["ApproximateCreationDateTime"] = 1714554000123456
    raw["dynamodb"]["ApproximateCreationDateTimePrecision"] = "MICROSECOND"
    change = app.parse_stream_record(raw)
    assert change.approximate_creation_time == dt.datetime(2024, 5, 1, 9, 0, 0, 123456, UTC)


@pytest.mark.parametrize(
    "raw",
    [
        {},
        {"eventName": "UPSERT", "dynamodb": {}},
        {"eventName": "INSERT"},
        {"eventName": "INSERT", "dynamodb": {"NewImage": {"PK": "not an attribute value"}}},
        {"eventName": "INSERT", "dynamodb": {"Keys": {"PK": {"N": "one"}}}},
    ],
)
def test_malformed_records(raw: dict[str, Any]) -> None:
    with pytest.raises(ItemEncodingError):
        app.parse_stream_record(raw)


def test_an_image_that_does_not_fit_its_entity_raises() -> None:
    item = entity_to_item(POST)
    del item["title"]
    with pytest.raises(ItemDecodingError, match=r"title: Field required \(missing\)") as caught:
        app.parse_stream_record(record("INSERT", new=item))
    assert (caught.value.entity, caught.value.field) == ("Post", "title")
    assert isinstance(caught.value.__cause__, ValidationError)
