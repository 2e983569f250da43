"""Transports by name: what `Session(transport=...)` and `AsyncSession(transport=...)` take.

"botocore" (and, until the direct transport lands, None) is the pynamodb/botocore
`Transport`. The async shell runs that blocking transport on worker threads, so moto and
botocore's machinery stay usable from an event loop.
"""

from __future__ import annotations

import asyncio
from typing import Any

from dynaorm._transport import Transport
from dynaorm.errors import ExpressionError

__all__ = ["ThreadedTransport", "async_transport", "sync_transport"]

_KINDS = ("botocore",)


def sync_transport(kind: str | None, **options: Any) -> Transport:
    """A blocking transport of this kind, built from the session's options."""
    if kind is None or kind == "botocore":
        return Transport(**options)
    raise ExpressionError(f"unknown transport {kind!r}; choose one of {_KINDS} or None")


def async_transport(kind: str | None, **options: Any) -> ThreadedTransport:
    """An async transport of this kind, built from the session's options."""
    if kind is None or kind == "botocore":
        return ThreadedTransport(Transport(**options))
    raise ExpressionError(f"unknown async transport {kind!r}; choose one of {_KINDS} or None")


class ThreadedTransport:
    """A blocking transport made awaitable: each request runs on a worker thread.

    The event loop never blocks on botocore; concurrency is bounded by asyncio's default
    thread pool. Everything but `call` and `close` is the wrapped transport's own.
    """

    def __init__(self, transport: Transport) -> None:
        self.sync = transport

    async def call(
        self,
        operation: str,
        params: dict[str, Any],
        *,
        table: str | None = None,
        entity: str | None = None,
        key: Any = None,
    ) -> dict[str, Any]:
        return await asyncio.to_thread(
            self.sync.call, operation, params, table=table, entity=entity, key=key
        )

    def table_name(self, logical: str) -> str:
        return self.sync.table_name(logical)

    @property
    def stats(self) -> Any:
        return self.sync.stats

    def add_listener(self, listener: Any) -> None:
        self.sync.add_listener(listener)

    def remove_listener(self, listener: Any) -> None:
        self.sync.remove_listener(listener)

    def add_observer(self, observer: Any) -> None:
        self.sync.add_observer(observer)

    async def close(self) -> None:
        await asyncio.to_thread(self.sync.close)
