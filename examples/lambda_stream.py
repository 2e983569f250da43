"""An AWS Lambda function fed by the blog table's DynamoDB stream.

Each stream record becomes a `StreamChange` whose `old` / `new` are typed entities
(`Post`, `User`), dispatched on the item's type attribute. Items that are not entities,
such as the guard items `unique=` writes, come through with `None` entities. Failed
records are reported back to Lambda one by one (`ReportBatchItemFailures`), so one bad
record does not make Lambda retry the whole batch.

Deploy `handler` with an event source mapping on the table's stream (view type
NEW_AND_OLD_IMAGES). Run this file to feed it a sample event.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from blog_models import Post, User, app

from dynaorm import StreamChange


def describe(change: StreamChange) -> str:
    """What the function does with one change (here: says it)."""
    old, new = change.old, change.new
    if isinstance(new, Post) and change.event_name == "INSERT":
        return f"new post {new.post_id!r} by {new.user_id}: {new.title!r}, tags {sorted(new.tags)}"
    if isinstance(old, User) and isinstance(new, User):
        changed = sorted(
            name for name in User.model_fields if getattr(old, name) != getattr(new, name)
        )
        return f"user {new.user_id} changed {changed}: name {old.name!r} -> {new.name!r}"
    if isinstance(old, Post) and change.event_name == "REMOVE":
        why = "expired (TTL)" if change.expired else "deleted"
        return f"post {old.post_id!r} {why}; drop it from the search index"
    return f"{change.event_name} of a {change.type_name or 'untyped'} item {change.keys}: ignored"


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Lambda entry point: handle each record; report the ones that failed."""
    failures = []
    for record in event.get("Records", []):
        try:
            change = app.parse_stream_record(record)
            print(f"  {change.event_name:<6} {describe(change)}")
        except Exception as error:  # one bad record must not stop the batch
            print(f"  FAILED {record.get('eventID')}: {str(error).splitlines()[0]}")
            failures.append({"itemIdentifier": record["dynamodb"]["SequenceNumber"]})
    return {"batchItemFailures": failures}


# -- a sample event, as Lambda delivers it ------------------------------------------------

ARN = "arn:aws:dynamodb:eu-west-1:123456789012:table/blog/stream/2024-05-01T00:00:00.000"
POST_IMAGE = {
    "PK": {"S": "USER#u1"},
    "SK": {"S": "POST#2024-05-01T09:00:00.000000Z#p1"},
    "_type": {"S": "Post"},
    "GSI1PK": {"S": "POST#p1"},
    "GSI1SK": {"S": "Post"},
    "GSI2PK": {"S": "TOPIC#dynamodb"},
    "GSI2SK": {"S": "2024-05-01T09:00:00.000000Z"},
    "user_id": {"S": "u1"},
    "post_id": {"S": "p1"},
    "title": {"S": "Single-table design in practice"},
    "created_at": {"S": "2024-05-01T09:00:00.000000+00:00"},
    "likes": {"N": "0"},
    "tags": {"SS": ["dynamodb", "python"]},
    "topic": {"S": "dynamodb"},
}
USER_BEFORE = {
    "PK": {"S": "USER#u1"},
    "SK": {"S": "PROFILE"},
    "_type": {"S": "User"},
    "GSI1PK": {"S": "EMAIL#ann@example.com"},
    "GSI1SK": {"S": "User"},
    "user_id": {"S": "u1"},
    "email": {"S": "ann@example.com"},
    "name": {"S": "Ann"},
    "version": {"N": "1"},
}
USER_AFTER = {**USER_BEFORE, "name": {"S": "Ann B."}, "version": {"N": "2"}}
OLD_POST_IMAGE = {
    **POST_IMAGE,
    "SK": {"S": "POST#2023-01-01T00:00:00.000000Z#p0"},
    "GSI1PK": {"S": "POST#p0"},
    "GSI2SK": {"S": "2023-01-01T00:00:00.000000Z"},
    "post_id": {"S": "p0"},
    "title": {"S": "An old announcement"},
    "created_at": {"S": "2023-01-01T00:00:00.000000+00:00"},
    "tags": {"SS": ["news"]},
    "expires_at": {"N": "1704067200"},
}
GUARD_IMAGE = {
    "PK": {"S": "UNIQUE#User#email#bob@example.com"},
    "SK": {"S": "UNIQUE"},
    "_type": {"S": "dynaorm.unique"},
    "owner_pk": {"S": "USER#u2"},
    "owner_sk": {"S": "PROFILE"},
}


def stream_record(
    number: int,
    event_name: str,
    *,
    old: dict[str, Any] | None = None,
    new: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    image = new or old or {}
    body: dict[str, Any] = {
        "ApproximateCreationDateTime": 1714554000 + number,
        "Keys": {"PK": image["PK"], "SK": image["SK"]},
        "SequenceNumber": f"{4421584500000000017450439091 + number}",
        "SizeBytes": 256,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    if old is not None:
        body["OldImage"] = old
    if new is not None:
        body["NewImage"] = new
    return {
        "eventID": f"{number:032x}",
        "eventName": event_name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "eu-west-1",
        "dynamodb": body,
        "eventSourceARN": ARN,
        **extra,
    }


SAMPLE_EVENT = {
    "Records": [
        stream_record(1, "INSERT", new=POST_IMAGE),
        stream_record(2, "MODIFY", old=USER_BEFORE, new=USER_AFTER),
        stream_record(
            3,
            "REMOVE",
            old=OLD_POST_IMAGE,
            userIdentity={"type": "Service", "principalId": "dynamodb.amazonaws.com"},
        ),
        stream_record(4, "INSERT", new=GUARD_IMAGE),
        # A Post whose image lacks a required field: reported, the others still handled.
        stream_record(5, "INSERT", new={k: v for k, v in POST_IMAGE.items() if k != "title"}),
    ]
}


if __name__ == "__main__":
    print(f"The handler saw {len(SAMPLE_EVENT['Records'])} records:")
    result = handler(SAMPLE_EVENT, context=None)
    print(f"It reported {len(result['batchItemFailures'])} failed record(s): {result}")
