"""What the async peers share: an event loop of their own and N operations per call.

An async library is measured the way an async service uses it: each timed call runs
`OPERATIONS` operations, either one after another (`concurrency=1`: the latency of a
sequential handler) or all at once on the loop (`concurrency=16`: 16 tasks sharing one
connection pool). The end-to-end run divides the time of a call by `OPERATIONS`, so
every row reads as seconds per operation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from benchmarks.peers import BasePeer

__all__ = ["OPERATIONS", "AsyncPeer"]

OPERATIONS = 16

T = TypeVar("T")


class AsyncPeer(BasePeer):
    """An async library; `operations` tells the end-to-end run how many a call does."""

    operations = OPERATIONS

    def __init__(self, concurrency: int) -> None:
        super().__init__()
        if concurrency not in (1, OPERATIONS):
            raise ValueError(f"concurrency is 1 or {OPERATIONS}, not {concurrency}")
        self.concurrency = concurrency
        self.loop = asyncio.new_event_loop()

    def run(self, operation: Callable[[], Awaitable[T]]) -> T:
        """Run `operation` OPERATIONS times on this peer's loop; the first one's result."""
        return self.loop.run_until_complete(self._many(operation))

    async def _many(self, operation: Callable[[], Awaitable[T]]) -> T:
        if self.concurrency == 1:
            results = [await operation() for _ in range(OPERATIONS)]
        else:
            results = list(await asyncio.gather(*(operation() for _ in range(OPERATIONS))))
        return results[0]

    def close(self) -> None:
        self.loop.run_until_complete(self.aclose())
        self.loop.close()

    async def aclose(self) -> None:
        """Close the library's client on the loop."""

    def describe(self, base: str) -> str:
        return base if self.concurrency == 1 else f"{base} x{self.concurrency}"
