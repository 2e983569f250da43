"""DynamoDB's JSON protocol without I/O: request bodies, responses, errors and retries.

Shared by the blocking transport (`_direct.py`, urllib3) and the async one (`_aio.py`,
aiohttp), and by the botocore transport for the error mapping: one function,
`map_error`, turns what DynamoDB or the network said into the dynaorm error, whichever
transport carried it.

Facts this follows (botocore 1.43's behaviour, which dynaorm's errors were built on):

- A request is `POST /` with `X-Amz-Target: DynamoDB_20120810.<Operation>` and the
  parameters as a JSON object. dynaorm's parameters are already DynamoDB JSON; only binary
  values (`B`, `BS`: bytes) are written as base64 text.
- A 200 answer is a JSON object, blobs base64 text again. An error answer is a JSON object
  whose `__type` ends with `#<Code>` and whose `message` (or `Message`) explains; a body
  that is not JSON gives the HTTP status as the code, as botocore's JSON parser does.
- `x-amz-crc32` carries the CRC32 of the body; a mismatch is retried like a lost answer.
"""

from __future__ import annotations

import json
import os
import random
import threading
import zlib
from base64 import b64decode, b64encode
from collections.abc import Callable, Mapping
from typing import Any

from dynaorm._adaptive import RateLimiter
from dynaorm.errors import (
    ConditionFailed,
    RequestError,
    ServiceError,
    TableNotFound,
    Throttled,
    TransactionCanceled,
)

__all__ = [
    "THROTTLING_CODES",
    "Failure",
    "RetryPolicy",
    "encode_body",
    "map_error",
    "read_response",
    "tables_of",
]

TARGET_PREFIX = "DynamoDB_20120810."

# Reported as `Throttled` once the retries are spent.
THROTTLING_CODES = frozenset(
    {"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"}
)

# What botocore's standard retry mode retries (botocore/retries/standard.py): throttling,
# transient codes and statuses; connection errors and checksum mismatches are added below.
_RETRYABLE_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)
_RETRYABLE_STATUSES = frozenset({500, 502, 503, 504})
_TRANSIENT_CODES = frozenset({"RequestTimeout", "RequestTimeoutException"})
_THROTTLED_CODES = _RETRYABLE_CODES - _TRANSIENT_CODES  # what adaptive mode slows down for


def _base64(value: Any) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return b64encode(value).decode("ascii")
    raise TypeError(f"{type(value).__name__} is not DynamoDB JSON")


_dumps = json.JSONEncoder(separators=(",", ":"), default=_base64).encode


def encode_body(params: Mapping[str, Any]) -> bytes:
    """The request body: `params` as compact JSON, binary values as base64 (ASCII only)."""
    return _dumps(params).encode("ascii")


# -- answers ------------------------------------------------------------------------------


class Failure(Exception):
    """One attempt that did not succeed: an error answer, a lost connection, a bad body.

    `code` is DynamoDB's error code (`ConditionalCheckFailedException`), the HTTP status
    for an answer that is not DynamoDB's JSON, or the name botocore gives a connection
    failure (`EndpointConnectionError`, `ReadTimeoutError`, `ConnectionClosedError`...).
    """

    def __init__(
        self,
        code: str,
        message: str = "",
        *,
        response: dict[str, Any] | None = None,
        status: int | None = None,
        connection: bool = False,
        timeout: bool = False,
    ) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message
        self.response: dict[str, Any] = response if response is not None else {}
        self.status = status
        self.connection = connection  # no answer came back (the request may have applied)
        self.timeout = timeout

    @property
    def retryable(self) -> bool:
        return (
            self.connection
            or self.code in _RETRYABLE_CODES
            or self.status in _RETRYABLE_STATUSES
            or self.code == "CRC32CheckFailed"
        )


def read_response(
    status: int, headers: Mapping[str, str], body: bytes, attempts: int
) -> dict[str, Any]:
    """The parsed answer of a 2xx; `Failure` for anything else.

    `headers` must be readable by lower-case name. `attempts` so far (1 for the first)
    goes into `ResponseMetadata.RetryAttempts` as botocore reports it.
    """
    expected = headers.get("x-amz-crc32")
    if expected is not None and expected.isdigit() and int(expected) != zlib.crc32(body):
        raise Failure("CRC32CheckFailed", "the body does not match x-amz-crc32", status=status)
    metadata = {
        "RequestId": headers.get("x-amzn-requestid", ""),
        "HTTPStatusCode": status,
        "HTTPHeaders": {name.lower(): value for name, value in headers.items()},
        "RetryAttempts": attempts - 1,
    }
    try:
        parsed = json.loads(body) if body else {}
    except ValueError:  # UnicodeDecodeError included
        parsed = None
    if 200 <= status < 300:
        if not isinstance(parsed, dict):
            raise Failure("MalformedResponse", _preview(body), status=status)
        _fix_blobs(parsed, body)
        parsed["ResponseMetadata"] = metadata
        return parsed
    if not isinstance(parsed, dict):
        error: dict[str, Any] = {"Error": {"Code": str(status), "Message": _preview(body)}}
    else:
        _fix_blobs(parsed, body)
        kind = str(parsed.pop("__type", "") or status)
        message = parsed.pop("message", None) or parsed.pop("Message", None) or ""
        error = {**parsed, "Error": {"Code": kind.rsplit("#", 1)[-1], "Message": message}}
    error["ResponseMetadata"] = metadata
    code, message = error["Error"]["Code"], error["Error"]["Message"]
    raise Failure(code, str(message), response=error, status=status)


def _preview(body: bytes) -> str:
    text = body[:300].decode("utf-8", "replace")
    return text + "..." if len(body) > 300 else text


# Where AttributeValues sit in the outputs (and error bodies) of the data plane.
def _fix_blobs(parsed: dict[str, Any], body: bytes) -> None:
    if b'"B"' not in body and b'"BS"' not in body:
        return
    for name in ("Item", "Attributes", "LastEvaluatedKey"):
        if isinstance(parsed.get(name), dict):
            _fix_item(parsed[name])
    for item in parsed.get("Items") or ():
        _fix_item(item)
    responses = parsed.get("Responses")
    if isinstance(responses, dict):  # BatchGetItem: table -> items
        for items in responses.values():
            for item in items:
                _fix_item(item)
    elif isinstance(responses, list):  # TransactGetItems: [{"Item": ...}]
        for entry in responses:
            _fix_item(entry.get("Item") or {})
    for entry in parsed.get("CancellationReasons") or ():
        _fix_item(entry.get("Item") or {})
    for keys in (parsed.get("UnprocessedKeys") or {}).values():
        for key in keys.get("Keys", ()):
            _fix_item(key)
    for requests in (parsed.get("UnprocessedItems") or {}).values():
        for request in requests:
            _fix_item(request.get("PutRequest", {}).get("Item") or {})
            _fix_item(request.get("DeleteRequest", {}).get("Key") or {})
    metrics = parsed.get("ItemCollectionMetrics")
    if isinstance(metrics, dict):
        single = "ItemCollectionKey" in metrics
        entries = [metrics] if single else [e for group in metrics.values() for e in group]
        for entry in entries:
            _fix_item(entry.get("ItemCollectionKey") or {})


def _fix_item(item: dict[str, Any]) -> None:
    for value in item.values():
        _fix_value(value)


def _fix_value(value: dict[str, Any]) -> None:
    if "B" in value:
        value["B"] = b64decode(value["B"])
    elif "BS" in value:
        value["BS"] = [b64decode(blob) for blob in value["BS"]]
    elif "L" in value:
        for element in value["L"]:
            _fix_value(element)
    elif "M" in value:
        _fix_item(value["M"])


# -- retries ------------------------------------------------------------------------------


class RetryPolicy:
    """When to try again, honouring `AWS_MAX_ATTEMPTS` and `AWS_RETRY_MODE` as botocore does.

    Attempts: `1 + max_retry_attempts` when given (the botocore transport's meaning), else
    `AWS_MAX_ATTEMPTS`, else 4 (pynamodb's 3 retries, today's default). Modes:

    - standard (the default): full jitter, `random() * min(2 ** (attempt - 1), 20)`
      seconds; a retry quota of 500 per transport, a retry costing 5 (10 after a
      timeout), a success giving back what its last retry took (1 without retries).
    - legacy: botocore's DynamoDB schedule, `0.05 * 2 ** (attempt - 1)`, no quota.
    - adaptive: standard, plus botocore's client-side rate limiter (`_adaptive`): after
      a throttle, attempts wait for a token of a bucket whose rate adapts (CUBIC).

    `sleep` and `random` are attributes so that tests can record delays instead of waiting.
    """

    INITIAL_QUOTA = 500
    RETRY_COST = 5
    TIMEOUT_RETRY_COST = 10
    NO_RETRY_INCREMENT = 1

    def __init__(self, max_retry_attempts: int | None = None, mode: str | None = None) -> None:
        if max_retry_attempts is not None:
            self.max_attempts = 1 + max(0, max_retry_attempts)
        else:
            self.max_attempts = _env_attempts() or 4
        mode = mode or os.environ.get("AWS_RETRY_MODE") or "standard"
        if mode not in ("legacy", "standard", "adaptive"):
            raise ValueError(f"AWS_RETRY_MODE must be legacy, standard or adaptive: {mode!r}")
        self.mode = mode
        self.limiter = RateLimiter() if mode == "adaptive" else None
        self.random: Callable[[], float] = random.random
        self._quota = self.INITIAL_QUOTA
        self._lock = threading.Lock()

    @property
    def quota(self) -> int:
        return self._quota

    def before_attempt(self) -> float:
        """Seconds to wait before sending an attempt (adaptive mode's rate limit)."""
        return self.limiter.reserve() if self.limiter is not None else 0.0

    def after_attempt(self, failure: Failure | None) -> None:
        """Let adaptive mode's rate follow the answer."""
        if self.limiter is not None:
            self.limiter.record(failure is not None and failure.code in _THROTTLED_CODES)

    def delay(self, failure: Failure, attempt: int) -> float | None:
        """Seconds to wait before attempt `attempt + 1`; None: give up and report it."""
        if not failure.retryable or attempt >= self.max_attempts:
            return None
        if self.mode == "legacy":
            return 0.05 * 2.0 ** (attempt - 1)
        cost = self.TIMEOUT_RETRY_COST if failure.timeout else self.RETRY_COST
        with self._lock:
            if cost > self._quota:
                return None
            self._quota -= cost
        return self.random() * min(2.0 ** (attempt - 1), 20.0)

    def succeeded(self, attempt: int, failure: Failure | None) -> None:
        """Give back quota after a success at `attempt` (`failure`: the last one retried)."""
        if self.mode == "legacy":
            return
        if failure is None:
            refund = self.NO_RETRY_INCREMENT
        else:
            refund = self.TIMEOUT_RETRY_COST if failure.timeout else self.RETRY_COST
        with self._lock:
            self._quota = min(self.INITIAL_QUOTA, self._quota + refund)


def _env_attempts() -> int | None:
    value = os.environ.get("AWS_MAX_ATTEMPTS")
    if not value:
        return None
    try:
        attempts = int(value)
    except ValueError:
        raise ValueError(f"AWS_MAX_ATTEMPTS must be a whole number: {value!r}") from None
    return max(1, attempts)


# -- errors -------------------------------------------------------------------------------


def map_error(
    code: str,
    detail: str,
    response: dict[str, Any],
    operation: str,
    sent: Mapping[str, Any],
    *,
    table: str | None,
    entity: str | None,
    key: Any,
) -> RequestError:
    """The dynaorm error for what DynamoDB or the network said, naming operation, table,
    entity and key; `response` is the error answer (botocore's shape) or {}."""
    table = table or tables_of(sent)
    message = describe(operation, table, entity, key, f"{code}: {detail}" if detail else code)
    context: dict[str, Any] = {"operation": operation, "table": table, "entity": entity, "key": key}
    if code == "ConditionalCheckFailedException":
        failed = ConditionFailed(message, **context)
        failed.stored = response.get("Item")  # decoded by the caller that knows the entity
        failed.retries = int(response.get("ResponseMetadata", {}).get("RetryAttempts", 0))
        return failed
    if code == "ResourceNotFoundException":
        return TableNotFound(message, **context)
    if code in THROTTLING_CODES:
        return Throttled(message, **context)
    if code == "TransactionCanceledException":
        reasons = [_reason(reason) for reason in response.get("CancellationReasons", [])]
        return TransactionCanceled(message, reasons=reasons, **context)
    return ServiceError(message, aws_code=code, **context)


def _reason(reason: dict[str, Any]) -> dict[str, Any] | None:
    """One raw cancellation reason; None for an action that was not at fault."""
    return None if reason.get("Code") in (None, "None") else reason


def tables_of(sent: Mapping[str, Any]) -> str | None:
    """The table(s) a request names, for messages when the caller did not say."""
    if "TableName" in sent:
        return str(sent["TableName"])
    names: list[str] = list(sent.get("RequestItems", {}))
    for action in sent.get("TransactItems", []):
        names.extend(str(body.get("TableName")) for body in action.values())
    return ",".join(dict.fromkeys(names)) or None


def describe(operation: str, table: str | None, entity: str | None, key: Any, why: str) -> str:
    subject = f"{operation} on table {table!r}" if table else operation
    context = [f"entity {entity}"] if entity else []
    if key is not None:
        context.append(f"key {key!r}")
    detail = f" ({', '.join(context)})" if context else ""
    return f"{subject}{detail} failed: {why}"
