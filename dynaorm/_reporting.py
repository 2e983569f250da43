"""What every transport shares: counters, listeners, observers and the send hook.

The botocore transport (`_transport.py`), the direct one (`_direct.py`) and the async one
(`_aio.py`) differ only in how a request reaches DynamoDB; what they report about it
(stats, the `Listener` calls, `RequestEvent`s, debug logging) is written once, here. No
import of botocore or pynamodb.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dynaorm._wire import tables_of
from dynaorm.errors import RequestError

__all__ = [
    "CONSUMED_CAPACITY_OPERATIONS",
    "AttemptWatcher",
    "Listener",
    "Reporting",
    "RequestEvent",
    "SendHook",
    "Stats",
    "capacity_units",
]

logger = logging.getLogger("dynaorm")


@dataclass(frozen=True)
class RequestEvent:
    """What an observer hears after each request: for timing and capacity dashboards."""

    operation: str
    table: str | None
    duration: float  # seconds, including the transport's own retries
    request_id: str | None
    consumed_capacity: float
    error: RequestError | None


Listener = Callable[[str, dict[str, Any], dict[str, Any] | None, Exception | None], None]
"""Called after every request with (operation, params sent, response, error)."""

SendHook = Callable[[str, dict[str, Any], str | None, Callable[[], dict[str, Any]]], dict[str, Any]]
"""Wraps each send: (operation, params, entity, send) -> the response `send()` returned."""

AttemptWatcher = Callable[[str | None], None]
"""Called after every attempt with its error code, None for a success (see `_telemetry`)."""

# The operations that accept ReturnConsumedCapacity (the data plane).
CONSUMED_CAPACITY_OPERATIONS = frozenset(
    {
        "GetItem",
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "Query",
        "Scan",
        "BatchGetItem",
        "BatchWriteItem",
        "TransactGetItems",
        "TransactWriteItems",
        "ExecuteStatement",
        "BatchExecuteStatement",
        "ExecuteTransaction",
    }
)


class Stats:
    """Per-operation call, error and consumed-capacity counters; safe to share across threads.

    Calls and errors are counts (int); capacity units are fractional (float).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._operations: dict[str, dict[str, int | float]] = {}

    def record(self, operation: str, response: dict[str, Any] | None, failed: bool) -> None:
        """Count one request and add the capacity units its response reports."""
        units = capacity_units(response) if response else 0.0
        with self._lock:
            counters = self._operations.setdefault(
                operation, {"calls": 0, "errors": 0, "capacity_units": 0.0}
            )
            counters["calls"] += 1
            counters["errors"] += 1 if failed else 0
            counters["capacity_units"] += units

    def snapshot(self) -> dict[str, dict[str, int | float]]:
        """A copy: `{"PutItem": {"calls": 2, "errors": 0, "capacity_units": 2.0}, ...}`."""
        with self._lock:
            return {name: dict(counters) for name, counters in self._operations.items()}

    def reset(self) -> None:
        """Forget every counter."""
        with self._lock:
            self._operations.clear()


class Reporting:
    """The reporting half of a transport: stats, listeners, observers, the send hook."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self._observers: list[Callable[[RequestEvent], None]] = []
        self._listeners_lock = threading.Lock()
        self._stats = Stats()
        self._send_hook: SendHook | None = None

    @property
    def stats(self) -> Stats:
        return self._stats

    def set_send_hook(self, hook: SendHook | None) -> None:
        """Run every request through `hook(operation, params, entity, send)`; None removes it."""
        self._send_hook = hook

    def add_listener(self, listener: Listener) -> None:
        """Call `listener(operation, params, response, error)` after every request."""
        with self._listeners_lock:
            self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        """Stop calling a listener added with `add_listener`."""
        with self._listeners_lock:
            self._listeners.remove(listener)

    def add_observer(self, observer: Callable[[RequestEvent], None]) -> None:
        """Call `observer(event)` after every request with its timing and capacity."""
        with self._listeners_lock:
            self._observers.append(observer)

    def remove_observer(self, observer: Callable[[RequestEvent], None]) -> None:
        """Stop calling an observer added with `add_observer`."""
        with self._listeners_lock:
            self._observers.remove(observer)

    def _finish(
        self,
        operation: str,
        sent: dict[str, Any],
        response: dict[str, Any] | None,
        error: RequestError | None,
        started: float,
    ) -> None:
        self._stats.record(operation, response, failed=error is not None)
        with self._listeners_lock:
            listeners = list(self._listeners)
            observers = list(self._observers)
        for listener in listeners:
            listener(operation, sent, response, error)
        if not observers and not logger.isEnabledFor(logging.DEBUG):
            return
        event = RequestEvent(
            operation=operation,
            table=tables_of(sent),
            duration=time.perf_counter() - started,
            request_id=(response or {}).get("ResponseMetadata", {}).get("RequestId"),
            consumed_capacity=capacity_units(response) if response else 0.0,
            error=error,
        )
        logger.debug(
            "%s %s: %.1f ms, request id %s, %.1f capacity units%s",
            event.operation,
            event.table,
            event.duration * 1000,
            event.request_id,
            event.consumed_capacity,
            f", failed: {error.code}" if error is not None else "",
        )
        for observer in observers:
            observer(event)


def capacity_units(response: dict[str, Any]) -> float:
    """Sum `ConsumedCapacity.CapacityUnits`: one dict, or a list of them for batches."""
    consumed = response.get("ConsumedCapacity")
    entries = consumed if isinstance(consumed, list) else [consumed] if consumed else []
    return float(sum(entry.get("CapacityUnits", 0) for entry in entries))
