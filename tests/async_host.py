"""A minimal host for `AsyncReads` until the async session lands: the reads of many items
awaited over a blocking transport run off the event loop.

It has exactly what `AsyncReads` asks of its host (`table_name`, `cursor_secret`,
`_batches`, `_adrive`), and shares the sync session's transport, so a test can read the
same table through both shells and compare what each one sent.
"""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

from dynaorm import Session
from dynaorm._async_reads import AsyncReads
from dynaorm._batch import BatchRunner
from dynaorm._cursor import Secrets
from dynaorm._io import Steps, adrive
from dynaorm._schema import Table
from dynaorm._transport import Transport

T = TypeVar("T")


class Threaded:
    """An async transport: each call runs the blocking transport in a worker thread."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    async def call(self, operation: str, params: dict[str, Any], **context: Any) -> dict[str, Any]:
        # Looked up at call time, so tests that wrap `transport.call` see async calls too.
        return await asyncio.to_thread(self.transport.call, operation, params, **context)


class AsyncHost(AsyncReads):
    """The async twin of `session`: same transport, same cursor secret, same batch budget."""

    def __init__(self, session: Session) -> None:
        self._transport = session.transport
        self._async = Threaded(session.transport)
        self.cursor_secret: Secrets = session.cursor_secret
        self._batches = BatchRunner(self, attempts=session._batches.retry.attempts)

    def table_name(self, table: Table) -> str:
        return self._transport.table_name(table.name)

    async def _adrive(self, steps: Steps[T]) -> T:
        return await adrive(steps, self._async)
