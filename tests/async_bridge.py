"""AsyncSession seen synchronously, so the integration suite runs through it unchanged.

One event loop runs on a daemon thread for the whole test run; every coroutine method of
the bridged session (or of its unit of work) is sent there and its result awaited from
the calling thread. Tests that write from many threads at once therefore exercise many
concurrent tasks on one loop, as an async application would. Test-only: never a way to
use dynaorm (an application on asyncio awaits `AsyncSession` itself).
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator
from types import TracebackType
from typing import Any, TypeVar

from dynaorm import AsyncSession, AsyncUnitOfWork
from dynaorm._io import Call, Steps

__all__ = ["BridgedSession", "bridged"]

T = TypeVar("T")


class _Loop:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, name="async-bridge", daemon=True).start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()


_LOOP: _Loop | None = None
_LOCK = threading.Lock()


def _loop() -> _Loop:
    global _LOOP  # noqa: PLW0603  (one loop for the run, started on first use)
    with _LOCK:
        if _LOOP is None:
            _LOOP = _Loop()
        return _LOOP


class _Bridged:
    """Coroutine methods of the wrapped object become blocking calls."""

    def __init__(self, target: Any) -> None:
        object.__setattr__(self, "_target", target)

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if inspect.iscoroutinefunction(value):

            def blocking(*args: Any, **kwargs: Any) -> Any:
                return _loop().run(value(*args, **kwargs))

            blocking.awaited = value  # type: ignore[attr-defined]
            return blocking
        if inspect.ismethod(value):

            def building(*args: Any, **kwargs: Any) -> Any:
                return _reader(value(*args, **kwargs))

            return building
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._target, name, value)

    def __delattr__(self, name: str) -> None:
        delattr(self._target, name)

    @property  # type: ignore[misc]
    def __dict__(self) -> dict[str, Any]:  # type: ignore[override]
        """The wrapped object's attributes (tests reach into a query's cached plan)."""
        target_dict: dict[str, Any] = self._target.__dict__
        return target_dict


class BridgedReader(_Bridged):
    """An async query, scan or collection query: awaited methods block, builder methods
    give a bridged builder, and `for` iterates what `async for` yields, page by page."""

    def __iter__(self) -> Iterator[Any]:
        iterator = self._target.__aiter__()
        while True:
            try:
                yield _loop().run(_next(iterator))
            except StopAsyncIteration:
                return


async def _next(iterator: AsyncIterator[T]) -> T:
    return await anext(iterator)


def _reader(value: Any) -> Any:
    """A builder's result, bridged when it is an async reader."""
    return BridgedReader(value) if hasattr(value, "__aiter__") else value


class BridgedTransport(_Bridged):
    """An async transport seen synchronously. A test that replaces `call` with a blocking
    wrapper (to inject faults) gets it run on a worker thread, where the wrapper's own
    calls to the real `call` block on the loop without deadlocking it."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "call" and not inspect.iscoroutinefunction(value):
            awaited = getattr(value, "awaited", None)  # the original, being restored
            if awaited is None:
                replacement = value

                async def awaited(*args: Any, **kwargs: Any) -> Any:
                    return await asyncio.to_thread(replacement, *args, **kwargs)

            value = awaited
        setattr(self._target, name, value)


class BridgedUnitOfWork(_Bridged):
    def __enter__(self) -> BridgedUnitOfWork:
        uow: AsyncUnitOfWork = self._target
        _loop().run(uow.__aenter__())
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        uow: AsyncUnitOfWork = self._target
        _loop().run(uow.__aexit__(exc_type, exc, traceback))


class BridgedSession(_Bridged):
    """An `AsyncSession` with `Session`'s blocking methods."""

    @property
    def asynchronous(self) -> AsyncSession:
        session: AsyncSession = self._target
        return session

    @property
    def transport(self) -> Any:
        """The blocking transport under a threaded one (listeners, fault hooks, close), or
        the async transport itself (aiohttp), whose `close` the bridge makes blocking."""
        transport = self._target.transport
        return getattr(transport, "sync", None) or BridgedTransport(transport)

    def unit_of_work(self) -> BridgedUnitOfWork:
        return BridgedUnitOfWork(self._target.unit_of_work())

    def _call(
        self, operation: str, request: dict[str, Any], *, entity: Any = None, key: Any = None
    ) -> dict[str, Any]:
        name = entity if entity is None or isinstance(entity, str) else entity.__dynaorm__.name
        return _loop().run(self._target._adrive(_one(Call(operation, request, name, key))))

    def _wait_until_active(self, name: str, timeout: float = 300.0, interval: float = 0.2) -> None:
        _loop().run(self._target._adrive(self._target._wait_steps(name, timeout, interval)))


def _one(call: Call) -> Steps[dict[str, Any]]:
    response: dict[str, Any] = yield call
    return response


def bridged(session: AsyncSession) -> Any:
    """`session` with blocking methods, typed loosely: it stands in for a `Session`."""
    return BridgedSession(session)
