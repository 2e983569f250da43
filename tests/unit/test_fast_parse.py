"""The fast response path: json.loads instead of botocore's shape walk, same results.

Every test answers from a canned HTTP response in a `before-send` hook and compares what
a Transport returns with what a plain botocore client (same configuration, no fast
path) makes of the very same bytes.
"""

from __future__ import annotations

import json
import time
from binascii import crc32
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import botocore.session
import pytest
from botocore.awsrequest import AWSResponse, HeadersDict
from botocore.config import Config

from dynaorm._transport import Transport
from dynaorm.errors import ConditionFailed, ServiceError, Throttled

ENDPOINT = "http://127.0.0.1:9"  # closed: a request that escaped the fake would fail
B64_HELLO = "aGVsbG8="  # b"hello"
ITEM: dict[str, Any] = {
    "s": {"S": "text é"},
    "n": {"N": "-12.50"},
    "b": {"B": B64_HELLO},
    "t": {"BOOL": True},
    "z": {"NULL": True},
    "ss": {"SS": ["a", "b"]},
    "ns": {"NS": ["1", "2.5"]},
    "bs": {"BS": ["AAE=", "/w=="]},
    "l": {"L": [{"B": "AA=="}, {"L": [{"BS": ["AQ=="]}]}, {"M": {"x": {"B": "Ag=="}}}]},
    "m": {"M": {"inner": {"M": {"deep": {"B": B64_HELLO}, "n": {"N": "1"}}}}},
}
KEY = {"PK": {"B": B64_HELLO}, "SK": {"S": "k"}}
CAPACITY = {"TableName": "t", "CapacityUnits": 1.5}
COLLECTION_METRICS = {"ItemCollectionKey": KEY, "SizeEstimateRangeGB": [0.0, 1.0]}

# One realistic 200 response per operation the fast path handles, binaries everywhere
# an AttributeValue can appear.
RESPONSES: dict[str, dict[str, Any]] = {
    "GetItem": {"Item": ITEM, "ConsumedCapacity": CAPACITY},
    "Query": {"Items": [ITEM, KEY], "Count": 2, "ScannedCount": 3, "LastEvaluatedKey": KEY},
    "Scan": {"Items": [ITEM], "Count": 1, "ScannedCount": 1},
    "BatchGetItem": {
        "Responses": {"t": [ITEM, KEY]},
        "UnprocessedKeys": {"t": {"Keys": [KEY], "ConsistentRead": True}},
        "ConsumedCapacity": [CAPACITY],
    },
    "TransactGetItems": {"Responses": [{"Item": ITEM}, {}]},
    "PutItem": {"Attributes": ITEM, "ItemCollectionMetrics": COLLECTION_METRICS},
    "UpdateItem": {"Attributes": ITEM},
    "DeleteItem": {"Attributes": ITEM},
    "BatchWriteItem": {
        "UnprocessedItems": {
            "t": [{"PutRequest": {"Item": ITEM}}, {"DeleteRequest": {"Key": KEY}}]
        },
        "ItemCollectionMetrics": {"t": [COLLECTION_METRICS]},
    },
    "TransactWriteItems": {
        "ConsumedCapacity": [CAPACITY],
        "ItemCollectionMetrics": {"t": [COLLECTION_METRICS]},
    },
}


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


class Server:
    """Answers requests from a queue of (status, body[, crc32]) and counts them."""

    def __init__(self) -> None:
        self.answers: list[tuple[int, bytes, int | None]] = []
        self.sent = 0

    def queue(self, status: int, body: bytes | dict[str, Any], crc: int | None = None) -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.answers.append((status, raw, crc))

    def __call__(self, request: Any, **_: Any) -> AWSResponse:
        status, body, crc = self.answers[min(self.sent, len(self.answers) - 1)]
        self.sent += 1
        headers = HeadersDict(
            {
                "x-amzn-requestid": "REQUEST",
                "content-type": "application/x-amz-json-1.0",
                "x-amz-crc32": str(crc if crc is not None else crc32(body) & 0xFFFFFFFF),
            }
        )
        return AWSResponse(request.url, status, headers, _Raw(body))


@pytest.fixture(autouse=True)
def _no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    # botocore's retry loop sleeps between attempts (endpoint.py `_needs_retry`).
    monkeypatch.setattr(time, "sleep", lambda seconds: None)


@pytest.fixture
def server() -> Server:
    return Server()


@pytest.fixture
def transport(server: Server) -> Iterator[Transport]:
    with Transport(
        region="us-east-1",
        endpoint_url=ENDPOINT,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        max_retry_attempts=2,
    ) as transport:
        transport.botocore_client.meta.events.register("before-send.dynamodb.*", server)
        yield transport


@pytest.fixture
def plain(server: Server) -> Any:
    """A botocore client configured like pynamodb's, without the fast path."""
    client = botocore.session.get_session().create_client(
        "dynamodb",
        region_name="us-east-1",
        endpoint_url=ENDPOINT,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(
            parameter_validation=False, retries={"total_max_attempts": 3, "mode": "standard"}
        ),
    )
    client.meta.events.register("before-send.dynamodb.*", server)
    return client


def _both(transport: Transport, plain: Any, operation: str) -> tuple[Any, Any]:
    params = {"TableName": "t"} if "Batch" not in operation and "Transact" not in operation else {}
    fast = transport.call(operation, {**params, **_minimal_request(operation)})
    slow = plain._make_api_call(operation, {**params, **_minimal_request(operation)})
    return fast, slow


def _minimal_request(operation: str) -> dict[str, Any]:
    """Enough of a request for botocore to serialize it (the fake ignores it)."""
    key = {"PK": {"S": "k"}}
    return {
        "GetItem": {"Key": key},
        "Query": {
            "KeyConditionExpression": "PK = :k",
            "ExpressionAttributeValues": {":k": key["PK"]},
        },
        "Scan": {},
        "BatchGetItem": {"RequestItems": {"t": {"Keys": [key]}}},
        "TransactGetItems": {"TransactItems": [{"Get": {"TableName": "t", "Key": key}}]},
        "PutItem": {"Item": key},
        "UpdateItem": {"Key": key},
        "DeleteItem": {"Key": key},
        "BatchWriteItem": {"RequestItems": {"t": [{"PutRequest": {"Item": key}}]}},
        "TransactWriteItems": {"TransactItems": [{"Put": {"TableName": "t", "Item": key}}]},
        "DescribeTable": {},
    }[operation]


@pytest.mark.parametrize("operation", sorted(RESPONSES))
def test_every_attribute_value_type_parses_as_botocore_does(
    transport: Transport, plain: Any, server: Server, operation: str
) -> None:
    server.queue(200, RESPONSES[operation])
    fast, slow = _both(transport, plain, operation)
    assert fast == slow
    assert server.sent == 2


def test_binaries_arrive_as_bytes_everywhere(transport: Transport, server: Server) -> None:
    server.queue(200, RESPONSES["Query"])
    response = transport.call("Query", {"TableName": "t", **_minimal_request("Query")})
    item = response["Items"][0]
    assert item["b"] == {"B": b"hello"}
    assert item["bs"] == {"BS": [b"\x00\x01", b"\xff"]}
    assert item["l"]["L"][1] == {"L": [{"BS": [b"\x01"]}]}
    assert item["m"]["M"]["inner"]["M"]["deep"] == {"B": b"hello"}
    assert response["LastEvaluatedKey"]["PK"] == {"B": b"hello"}
    assert item["n"] == {"N": "-12.50"}  # numbers stay DynamoDB's text


def test_response_metadata_is_kept(transport: Transport, server: Server) -> None:
    server.queue(200, RESPONSES["GetItem"])
    response = transport.call("GetItem", {"TableName": "t", **_minimal_request("GetItem")})
    metadata = response["ResponseMetadata"]
    assert metadata["RequestId"] == "REQUEST"
    assert metadata["HTTPStatusCode"] == 200
    assert metadata["RetryAttempts"] == 0
    assert metadata["HTTPHeaders"]["content-type"] == "application/x-amz-json-1.0"


def test_unmodeled_members_and_nulls_are_dropped_like_botocore(
    transport: Transport, plain: Any, server: Server
) -> None:
    server.queue(200, {"Item": {"a": {"S": "x"}}, "Surprise": 1, "ConsumedCapacity": None})
    fast, slow = _both(transport, plain, "GetItem")
    assert fast == slow
    assert "Surprise" not in fast
    assert "ConsumedCapacity" not in fast


@pytest.mark.parametrize(
    "body",
    [b"<html><body>Service Unavailable</body></html>", b"", b"[1, 2]", b"\xff\xfe"],
    ids=["html", "empty", "json-array", "not-utf8"],
)
def test_bodies_that_are_not_dynamodb_json_are_left_to_botocore(
    transport: Transport, plain: Any, server: Server, body: bytes
) -> None:
    server.queue(200, body)
    request = {"TableName": "t", **_minimal_request("GetItem")}
    try:
        slow = plain._make_api_call("GetItem", dict(request))
    except Exception as error:  # botocore's own parser fails on some: so must we
        with pytest.raises(ServiceError, match=type(error).__name__):
            transport.call("GetItem", request)
        return
    assert transport.call("GetItem", request) == slow


def test_a_failed_condition_is_still_mapped_with_its_item(
    transport: Transport, server: Server
) -> None:
    server.queue(
        400,
        {
            "__type": "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException",
            "message": "The conditional request failed",
            "Item": {"PK": {"S": "k"}, "b": {"B": B64_HELLO}},
        },
    )
    with pytest.raises(ConditionFailed) as caught:
        transport.call("PutItem", {"TableName": "t", **_minimal_request("PutItem")})
    # The modeled error field went through botocore's parser: its binary is decoded.
    assert caught.value.stored == {"PK": {"S": "k"}, "b": {"B": b"hello"}}
    assert caught.value.item is None  # no entity known at the transport: never a dict


def test_throttling_is_retried_then_reported(transport: Transport, server: Server) -> None:
    server.queue(
        400,
        {
            "__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
            "message": "slow down",
        },
    )
    with pytest.raises(Throttled):
        transport.call("Query", {"TableName": "t", **_minimal_request("Query")})
    assert server.sent == 3  # 1 + max_retry_attempts


def test_throttling_then_success_returns_the_fast_parsed_response(
    transport: Transport, server: Server
) -> None:
    server.queue(400, {"__type": "ThrottlingException", "message": "slow down"})
    server.queue(200, RESPONSES["GetItem"])
    response = transport.call("GetItem", {"TableName": "t", **_minimal_request("GetItem")})
    assert response["Item"]["b"] == {"B": b"hello"}
    assert response["ResponseMetadata"]["RetryAttempts"] == 1


def test_a_corrupted_body_is_still_caught_by_the_crc32_check(
    transport: Transport, server: Server
) -> None:
    server.queue(200, RESPONSES["GetItem"], crc=12345)  # the checksum does not match
    server.queue(200, RESPONSES["GetItem"])
    response = transport.call("GetItem", {"TableName": "t", **_minimal_request("GetItem")})
    assert server.sent == 2
    assert response["Item"]["s"] == {"S": "text é"}


def test_operations_with_timestamps_keep_botocore_parser(
    transport: Transport, server: Server
) -> None:
    server.queue(200, {"Table": {"TableName": "t", "CreationDateTime": 1714564800.5}})
    response = transport.call("DescribeTable", {"TableName": "t"})
    assert isinstance(response["Table"]["CreationDateTime"], datetime)
