"""DynamoDB's JSON protocol without I/O: bodies, answers, the error mapping and retries."""

from __future__ import annotations

import json
import zlib
from typing import Any

import botocore.exceptions
import pytest

from dynaorm._adaptive import RateLimiter
from dynaorm._transport import _translate
from dynaorm._wire import Failure, RetryPolicy, encode_body, map_error, read_response
from dynaorm.errors import (
    ConditionFailed,
    ServiceError,
    TableNotFound,
    Throttled,
    TransactionCanceled,
)

HEADERS = {"x-amzn-requestid": "r1"}


def answer(status: int, body: Any, headers: dict[str, str] | None = None) -> dict[str, Any]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return read_response(status, {**HEADERS, **(headers or {})}, raw, attempts=1)


def test_bodies_are_compact_json_with_binary_as_base64() -> None:
    params = {"TableName": "app", "Item": {"b": {"B": b"\xff"}, "s": {"S": "é"}}}
    assert (
        encode_body(params) == b'{"TableName":"app","Item":{"b":{"B":"/w=="},"s":{"S":"\\u00e9"}}}'
    )


def test_a_value_that_is_not_dynamodb_json_is_a_bug_not_a_service_error() -> None:
    with pytest.raises(TypeError, match="object is not DynamoDB JSON"):
        encode_body({"Item": {"x": {"S": object()}}})


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"Item": {"a": {"B": "AQ=="}}}, ("Item", "a")),
        ({"Items": [{"a": {"B": "AQ=="}}]}, ("Items", 0, "a")),
        ({"Attributes": {"a": {"L": [{"B": "AQ=="}]}}}, ("Attributes", "a", "L", 0)),
        (
            {"LastEvaluatedKey": {"a": {"M": {"x": {"B": "AQ=="}}}}},
            ("LastEvaluatedKey", "a", "M", "x"),
        ),
        ({"Responses": {"t": [{"a": {"B": "AQ=="}}]}}, ("Responses", "t", 0, "a")),
        ({"Responses": [{"Item": {"a": {"B": "AQ=="}}}]}, ("Responses", 0, "Item", "a")),
        (
            {"UnprocessedKeys": {"t": {"Keys": [{"a": {"B": "AQ=="}}]}}},
            ("UnprocessedKeys", "t", "Keys", 0, "a"),
        ),
        (
            {"UnprocessedItems": {"t": [{"PutRequest": {"Item": {"a": {"B": "AQ=="}}}}]}},
            ("UnprocessedItems", "t", 0, "PutRequest", "Item", "a"),
        ),
        (
            {"ItemCollectionMetrics": {"ItemCollectionKey": {"a": {"B": "AQ=="}}}},
            ("ItemCollectionMetrics", "ItemCollectionKey", "a"),
        ),
        (
            {"ItemCollectionMetrics": {"t": [{"ItemCollectionKey": {"a": {"B": "AQ=="}}}]}},
            ("ItemCollectionMetrics", "t", 0, "ItemCollectionKey", "a"),
        ),
        (
            {"CancellationReasons": [{"Code": "X", "Item": {"a": {"B": "AQ=="}}}]},
            ("CancellationReasons", 0, "Item", "a"),
        ),
    ],
)
def test_blobs_are_decoded_wherever_items_appear(
    body: dict[str, Any], path: tuple[Any, ...]
) -> None:
    value: Any = answer(200, body)
    for step in path:
        value = value[step]
    assert value == {"B": b"\x01"}


def test_binary_sets_are_decoded() -> None:
    assert answer(200, {"Item": {"a": {"BS": ["AQ==", "Ag=="]}}})["Item"]["a"] == {
        "BS": [b"\x01", b"\x02"]
    }


def test_response_metadata_is_botocores() -> None:
    metadata = read_response(200, HEADERS, b"{}", attempts=3)["ResponseMetadata"]
    assert metadata == {
        "RequestId": "r1",
        "HTTPStatusCode": 200,
        "HTTPHeaders": {"x-amzn-requestid": "r1"},
        "RetryAttempts": 2,
    }


def test_an_error_answer_becomes_a_failure_shaped_like_botocores() -> None:
    body = {
        "__type": "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException",
        "message": "failed",
        "Item": {"a": {"B": "AQ=="}},
    }
    with pytest.raises(Failure) as raised:
        answer(400, body)
    failure = raised.value
    assert (failure.code, failure.message, failure.status) == (
        "ConditionalCheckFailedException",
        "failed",
        400,
    )
    assert failure.response["Item"] == {"a": {"B": b"\x01"}}
    assert failure.response["Error"] == {
        "Code": "ConditionalCheckFailedException",
        "Message": "failed",
    }
    assert not failure.retryable


def test_an_error_that_is_not_json_is_named_by_its_status() -> None:
    with pytest.raises(Failure) as raised:
        answer(503, b"<html>unavailable</html>")
    assert (raised.value.code, raised.value.message) == ("503", "<html>unavailable</html>")
    assert raised.value.retryable


def test_a_body_that_fails_its_checksum_is_retryable() -> None:
    with pytest.raises(Failure) as raised:
        answer(200, b"{}", {"x-amz-crc32": str(zlib.crc32(b"{}") + 1)})
    assert raised.value.code == "CRC32CheckFailed"
    assert raised.value.retryable
    assert answer(200, b"{}", {"x-amz-crc32": str(zlib.crc32(b"{}"))})["ResponseMetadata"]


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("ConditionalCheckFailedException", ConditionFailed),
        ("ResourceNotFoundException", TableNotFound),
        ("ProvisionedThroughputExceededException", Throttled),
        ("ThrottlingException", Throttled),
        ("RequestLimitExceeded", Throttled),
        ("TransactionCanceledException", TransactionCanceled),
        ("ValidationException", ServiceError),
        ("ConnectionClosedError", ServiceError),
    ],
)
def test_both_transports_map_a_code_to_the_same_error(code: str, kind: type) -> None:
    response = {
        "Error": {"Code": code, "Message": "why"},
        "Item": {"a": {"S": "x"}},
        "CancellationReasons": [{"Code": "None"}, {"Code": "ConditionalCheckFailed"}],
        "ResponseMetadata": {"RetryAttempts": 2},
    }
    sent = {"TableName": "app"}
    direct = map_error(code, "why", response, "PutItem", sent, table=None, entity="User", key="k")
    client_error = botocore.exceptions.ClientError(response, "PutItem")
    botocore_side = _translate(client_error, "PutItem", sent, table=None, entity="User", key="k")
    assert type(direct) is type(botocore_side) is kind
    assert str(direct) == str(botocore_side)
    assert str(direct).endswith(
        f"PutItem on table 'app' (entity User, key 'k') failed: {code}: why"
    )
    assert vars(direct) == vars(botocore_side)


def test_standard_retries_use_full_jitter_and_a_quota(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_MAX_ATTEMPTS", raising=False)
    monkeypatch.delenv("AWS_RETRY_MODE", raising=False)
    policy = RetryPolicy()
    policy.random = lambda: 1.0
    throttled = Failure("ThrottlingException", status=400)
    assert policy.max_attempts == 4
    assert [policy.delay(throttled, n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, None]
    assert policy.quota == 500 - 3 * 5
    timeout = Failure("ReadTimeoutError", connection=True, timeout=True)
    assert policy.delay(timeout, 1) == 1.0
    assert policy.quota == 500 - 3 * 5 - 10
    policy.succeeded(2, timeout)
    assert policy.quota == 500 - 3 * 5
    policy.succeeded(1, None)
    assert policy.quota == 500 - 3 * 5 + 1
    assert policy.delay(Failure("ValidationException", status=400), 1) is None


def test_an_empty_quota_stops_retrying() -> None:
    policy = RetryPolicy(max_retry_attempts=10, mode="standard")
    policy.random = lambda: 0.0
    throttled = Failure("ThrottlingException", status=400)
    delays = [policy.delay(throttled, 1) for _ in range(101)]
    assert delays[:100] == [0.0] * 100
    assert delays[100] is None  # 500 / 5 retries, then none until successes refill it


def test_legacy_mode_is_botocores_dynamodb_schedule_without_quota() -> None:
    policy = RetryPolicy(max_retry_attempts=9, mode="legacy")
    throttled = Failure("ProvisionedThroughputExceededException", status=400)
    assert [policy.delay(throttled, n) for n in (1, 2, 3)] == [0.05, 0.1, 0.2]
    assert policy.delay(throttled, 10) is None
    assert policy.quota == 500


def test_attempts_and_mode_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "7")
    monkeypatch.setenv("AWS_RETRY_MODE", "adaptive")
    policy = RetryPolicy()
    assert (policy.max_attempts, policy.mode) == (7, "adaptive")
    assert RetryPolicy(max_retry_attempts=0).max_attempts == 1  # the argument wins
    monkeypatch.setenv("AWS_RETRY_MODE", "fast")
    with pytest.raises(ValueError, match="AWS_RETRY_MODE must be legacy, standard or adaptive"):
        RetryPolicy()
    monkeypatch.setenv("AWS_RETRY_MODE", "standard")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "many")
    with pytest.raises(ValueError, match="AWS_MAX_ATTEMPTS must be a whole number"):
        RetryPolicy()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_adaptive_mode_waits_only_after_a_throttle_then_paces_attempts() -> None:
    clock = Clock()
    limiter = RateLimiter(clock)
    for _ in range(40):  # 20 requests a second, all answered
        assert limiter.reserve() == 0.0
        limiter.record(throttled=False)
        clock.now += 0.05
    assert not limiter.enabled
    assert limiter.measured_rate > 10
    limiter.record(throttled=True)
    assert limiter.enabled
    rate = limiter.fill_rate
    assert rate == pytest.approx(min(limiter.measured_rate * 0.7, 2 * limiter.measured_rate))
    # The bucket filled while sending freely (up to `rate` tokens, as botocore's does):
    # a burst spends them, then each attempt waits one more 1/rate.
    waits = [limiter.reserve() for _ in range(int(rate) + 4)]
    assert waits[0] == 0.0
    assert waits[-1] > 0
    assert waits[-1] - waits[-2] == pytest.approx(1 / rate)
    assert waits[-2] - waits[-3] == pytest.approx(1 / rate)


def test_adaptive_rate_grows_back_after_the_throttle() -> None:
    clock = Clock()
    limiter = RateLimiter(clock)
    for _ in range(40):
        limiter.record(throttled=False)
        clock.now += 0.05
    limiter.record(throttled=True)
    cut = limiter.fill_rate
    rates = []
    for _ in range(60):  # keep sending at the cut rate, every answer a success
        clock.now += 1 / cut
        limiter.record(throttled=False)
        rates.append(limiter.fill_rate)
    assert max(rates) > cut
    assert rates[-1] >= rates[len(rates) // 2]


def test_adaptive_transports_pace_attempts_after_a_throttle() -> None:
    policy = RetryPolicy(mode="adaptive")
    assert policy.before_attempt() == 0.0
    policy.after_attempt(Failure("ProvisionedThroughputExceededException", status=400))
    assert policy.limiter is not None and policy.limiter.enabled
    assert policy.before_attempt() > 0
    assert RetryPolicy(mode="standard").limiter is None
