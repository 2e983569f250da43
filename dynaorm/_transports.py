"""The transport seam: what a session needs of a transport, and which one to build.

- "direct" (the default): dynaorm speaks DynamoDB's JSON protocol itself (`_direct`, on
  urllib3; `_aio`, on aiohttp), signed by `_sigv4`; no botocore on the request path.
- "botocore": requests go through pynamodb's `Connection` (`_transport.Transport`), as
  before; the in-memory backend (moto, patching botocore) needs it. `AsyncSession` runs it
  on worker threads (`ThreadedTransport`), so moto and botocore stay usable from a loop.

The options of both factories are `Transport`'s keywords: region, endpoint_url,
table_prefix, aws_access_key_id, aws_secret_access_key, aws_session_token,
max_retry_attempts, connect_timeout, read_timeout.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from dynaorm._reporting import AttemptWatcher, Listener, RequestEvent, SendHook, Stats

if TYPE_CHECKING:
    from dynaorm._aio import AsyncDirectTransport
__all__ = [
    "TRANSPORT_KINDS",
    "AsyncTransportLike",
    "ThreadedTransport",
    "TransportLike",
    "async_transport",
    "sync_transport",
]

TRANSPORT_KINDS = ("direct", "botocore")


class TransportLike(Protocol):
    """The surface every blocking transport offers (and `Session` uses)."""

    @property
    def region(self) -> str: ...

    @property
    def endpoint_url(self) -> str | None: ...

    @property
    def table_prefix(self) -> str: ...

    @property
    def stats(self) -> Stats: ...

    def table_name(self, logical: str) -> str: ...

    def call(
        self,
        operation: str,
        params: dict[str, Any],
        *,
        table: str | None = None,
        entity: str | None = None,
        key: Any = None,
    ) -> dict[str, Any]: ...

    def add_listener(self, listener: Listener) -> None: ...

    def remove_listener(self, listener: Listener) -> None: ...

    def add_observer(self, observer: Callable[[RequestEvent], None]) -> None: ...

    def remove_observer(self, observer: Callable[[RequestEvent], None]) -> None: ...

    def set_send_hook(self, hook: SendHook | None) -> None: ...

    def watch_attempts(self, watcher: AttemptWatcher) -> None: ...

    def close(self) -> None: ...


class AsyncTransportLike(Protocol):
    """The surface every async transport offers: `TransportLike` with `call` and `close`
    awaited."""

    @property
    def region(self) -> str: ...

    @property
    def endpoint_url(self) -> str | None: ...

    @property
    def table_prefix(self) -> str: ...

    @property
    def stats(self) -> Stats: ...

    def table_name(self, logical: str) -> str: ...

    async def call(
        self,
        operation: str,
        params: dict[str, Any],
        *,
        table: str | None = None,
        entity: str | None = None,
        key: Any = None,
    ) -> dict[str, Any]: ...

    def add_listener(self, listener: Listener) -> None: ...

    def remove_listener(self, listener: Listener) -> None: ...

    def add_observer(self, observer: Callable[[RequestEvent], None]) -> None: ...

    def remove_observer(self, observer: Callable[[RequestEvent], None]) -> None: ...

    def set_send_hook(self, hook: SendHook | None) -> None: ...

    def watch_attempts(self, watcher: AttemptWatcher) -> None: ...

    async def close(self) -> None: ...


def sync_transport(kind: str | None = None, **options: Any) -> TransportLike:
    """A blocking transport: "direct" (also for None) or "botocore"."""
    if kind in (None, "direct"):
        from dynaorm._direct import DirectTransport  # noqa: PLC0415  (imports urllib3)

        return DirectTransport(**options)
    if kind == "botocore":
        from dynaorm._transport import Transport  # noqa: PLC0415  (imports botocore)

        return Transport(**options)
    raise ValueError(f"transport must be one of {', '.join(TRANSPORT_KINDS)}: {kind!r}")


def async_transport(kind: str | None = None, **options: Any) -> AsyncTransportLike:
    """An async transport: "direct" (also for None), on aiohttp, or "botocore" on threads."""
    if kind in (None, "direct"):
        try:
            from dynaorm._aio import AsyncDirectTransport  # noqa: PLC0415  (imports aiohttp)
        except ImportError as error:
            if error.name != "aiohttp":
                raise
            raise ImportError(
                'the async transport needs aiohttp: pip install "dynaorm[async]"'
            ) from error
        return AsyncDirectTransport(**options)
    if kind == "botocore":
        from dynaorm._transport import Transport  # noqa: PLC0415  (imports botocore)

        return ThreadedTransport(Transport(**options))
    raise ValueError(f"transport must be one of {', '.join(TRANSPORT_KINDS)}: {kind!r}")


class ThreadedTransport:
    """A blocking transport made awaitable: each request runs on a worker thread.

    The event loop never blocks on botocore; concurrency is bounded by asyncio's default
    thread pool. Everything but `call` and `close` is the wrapped transport's own.
    """

    def __init__(self, transport: TransportLike) -> None:
        self.sync = transport

    @property
    def region(self) -> str:
        return self.sync.region

    @property
    def endpoint_url(self) -> str | None:
        return self.sync.endpoint_url

    @property
    def table_prefix(self) -> str:
        return self.sync.table_prefix

    @property
    def stats(self) -> Stats:
        return self.sync.stats

    def table_name(self, logical: str) -> str:
        return self.sync.table_name(logical)

    async def call(
        self,
        operation: str,
        params: dict[str, Any],
        *,
        table: str | None = None,
        entity: str | None = None,
        key: Any = None,
    ) -> dict[str, Any]:
        import asyncio  # noqa: PLC0415 - loaded by the running loop; not at import

        return await asyncio.to_thread(
            self.sync.call, operation, params, table=table, entity=entity, key=key
        )

    def add_listener(self, listener: Listener) -> None:
        self.sync.add_listener(listener)

    def remove_listener(self, listener: Listener) -> None:
        self.sync.remove_listener(listener)

    def add_observer(self, observer: Callable[[RequestEvent], None]) -> None:
        self.sync.add_observer(observer)

    def remove_observer(self, observer: Callable[[RequestEvent], None]) -> None:
        self.sync.remove_observer(observer)

    def set_send_hook(self, hook: SendHook | None) -> None:
        """The hook wraps the blocking sends, on the worker thread; `asyncio.to_thread`
        carries the caller's context there, so spans nest as expected."""
        self.sync.set_send_hook(hook)

    def watch_attempts(self, watcher: AttemptWatcher) -> None:
        self.sync.watch_attempts(watcher)

    async def close(self) -> None:
        import asyncio  # noqa: PLC0415 - loaded by the running loop; not at import

        await asyncio.to_thread(self.sync.close)


if TYPE_CHECKING:  # mypy proves each transport offers its surface
    from dynaorm._direct import DirectTransport
    from dynaorm._transport import Transport

    _DIRECT: type[TransportLike] = DirectTransport
    _BOTOCORE: type[TransportLike] = Transport
    _ASYNC: type[AsyncTransportLike] = AsyncDirectTransport
    _THREADED: type[AsyncTransportLike] = ThreadedTransport
