"""A token bucket on consumed write capacity, shared by the threads of one worker."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from dynaorm.errors import ConditionFailed, DefinitionError

if TYPE_CHECKING:
    from dynaorm._session import Session

__all__ = ["Clock", "Sleep", "TokenBucket", "pacing"]

Clock = Callable[[], float]
Sleep = Callable[[float], None]
_WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"})


class TokenBucket:
    """Paces writes to `rate` write capacity units per second, shared by threads.

    `wait` blocks while the bucket is in debt; `charge` takes what a write consumed (known
    only from its response), so one large write can put the bucket in debt and the writes
    after it wait until the rate is repaid. The bucket holds at most `burst` units (default
    one second's worth): an idle worker cannot save capacity for a later burst.
    """

    def __init__(
        self,
        rate: float,
        *,
        burst: float | None = None,
        clock: Clock | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        if not rate > 0:
            raise DefinitionError(f"max_wcu must be a positive number, got {rate}", value=rate)
        self.rate = rate
        self.burst = burst if burst is not None else rate
        # Looked up per bucket, not bound as defaults, so a test can swap the module's clock.
        self._clock = clock or time.monotonic
        self._sleep = sleep or time.sleep
        self._tokens = self.burst
        self._updated = self._clock()
        self._lock = threading.Lock()

    def _refill(self) -> float:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now
        return self._tokens

    def wait(self) -> None:
        """Return once the bucket holds capacity for the next write."""
        while True:
            with self._lock:
                tokens = self._refill()
                if tokens > 0:
                    return
                delay = (1e-9 - tokens) / self.rate
            self._sleep(delay)

    def charge(self, units: float) -> None:
        with self._lock:
            self._refill()
            self._tokens -= units

    def listener(
        self, operation: str, params: Any, response: Mapping[str, Any] | None, error: Any
    ) -> None:
        """A transport listener charging every write sent through the session: what its
        response says it consumed, or one unit for a failed condition (DynamoDB bills
        the write all the same)."""
        if operation not in _WRITES:
            return
        if response is not None:
            consumed = response.get("ConsumedCapacity")
            entries = consumed if isinstance(consumed, list) else [consumed] if consumed else []
            self.charge(sum(float(e.get("CapacityUnits", 0)) for e in entries) or 1.0)
        elif isinstance(error, ConditionFailed):
            self.charge(1.0)


@contextmanager
def pacing(session: Session, max_wcu: float | None) -> Iterator[TokenBucket | None]:
    """A bucket of `max_wcu` units per second charged by every write of `session` while
    the block runs (None: no limit)."""
    if max_wcu is None:
        yield None
        return
    bucket = TokenBucket(max_wcu)
    session.transport.add_listener(bucket.listener)
    try:
        yield bucket
    finally:
        session.transport.remove_listener(bucket.listener)
