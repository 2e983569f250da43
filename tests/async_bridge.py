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
from collections.abc import Coroutine
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
        if not inspect.iscoroutinefunction(value):
            return value

        def blocking(*args: Any, **kwargs: Any) -> Any:
            return _loop().run(value(*args, **kwargs))

        return blocking

    def __setattr__(self, name: str, value: Any) -> None:
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
        """The blocking transport under the async one (listeners, fault hooks, close)."""
        return self._target.transport.sync

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
