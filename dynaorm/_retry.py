"""Exponential backoff with full jitter, and which errors are worth a retry."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

from dynaorm._io import Call, Sleep, Steps
from dynaorm.errors import RequestError, ServiceError, Throttled, TransactionCanceled

__all__ = ["Backoff", "send_transaction", "transient"]

_CONFLICT = "TransactionConflict"
_IN_PROGRESS = "TransactionInProgressException"


class Backoff:
    """A retry budget: `attempts` tries, sleeping a jittered, doubling delay between them.

    Full jitter (a uniform draw below the capped exponential delay) is what the AWS SDKs
    use, so many clients retrying at once spread out instead of colliding again.
    `sleep` is a parameter so tests can record delays instead of waiting.
    """

    def __init__(
        self,
        *,
        attempts: int,
        base_delay: float = 0.05,
        max_delay: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.attempts = attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.sleep = sleep

    def delay(self, attempt: int) -> float:
        """A full-jitter delay before retry number `attempt` (1 for the first retry)."""
        return random.uniform(0, min(self.max_delay, self.base_delay * 2**attempt))

    def pause(self, attempt: int) -> None:
        """Sleep before retry number `attempt` (1 for the first retry)."""
        self.sleep(self.delay(attempt))

    def wait(self, attempt: int) -> Sleep:
        """The step that backs off before retry number `attempt`, for the sans-I/O core."""
        return Sleep(self.delay(attempt), self.sleep)


def send_transaction(call: Call, retry: Backoff) -> Steps[dict[str, Any]]:
    """Send a transaction as steps, retrying what DynamoDB says is worth retrying.

    A cancellation caused only by conflicting transactions (no failed condition) and
    TransactionInProgress (the same ClientRequestToken still being applied) are retried
    with backoff; the request is resent unchanged, token included, so it applies once.
    """
    for attempt in range(1, retry.attempts + 1):
        try:
            response: dict[str, Any] = yield call
            return response
        except TransactionCanceled as error:
            if attempt == retry.attempts or not _conflicted(error):
                raise
        except ServiceError as error:
            if attempt == retry.attempts or error.aws_code != _IN_PROGRESS:
                raise
        yield retry.wait(attempt)
    raise AssertionError("unreachable: the last attempt returns or raises")


def _conflicted(error: TransactionCanceled) -> bool:
    codes = {reason.get("Code") for reason in error.reasons if reason}
    return _CONFLICT in codes and "ConditionalCheckFailed" not in codes


# Worth resending unchanged: DynamoDB's 5xx answers and botocore's network failures (named
# by class, as the transport reports them). A resent BatchWriteItem or BatchGetItem is
# harmless: its puts and deletes are idempotent and reads change nothing.
_TRANSIENT_CODES = frozenset(
    {
        "InternalServerError",
        "InternalFailure",
        "ServiceUnavailable",
        "RequestTimeout",
        "RequestTimeoutException",
        "PriorRequestNotComplete",
        "ConnectionError",
        "EndpointConnectionError",
        "ConnectTimeoutError",
        "ProxyConnectionError",
        "HTTPClientError",
        "ConnectionClosedError",
        "ReadTimeoutError",
        "ResponseStreamingError",
        "MalformedResponse",  # a proxy's page or a garbled body: the next answer may be fine
    }
)


def transient(error: RequestError) -> bool:
    """Whether resending the same request later may succeed: throttling, 5xx, network."""
    if isinstance(error, Throttled):
        return True
    return isinstance(error, ServiceError) and error.aws_code in _TRANSIENT_CODES
