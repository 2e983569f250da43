"""The async twin of a sync session, for tests that read one table through both shells.

`async_twin(session)` is an `AsyncSession` on the sync session's own transport (each call
on a worker thread, through `ThreadedTransport`), with its cursor secret and batch budget,
so a test can compare exactly what each shell sent.
"""

from __future__ import annotations

from typing import Any

from dynaorm import AsyncSession, Session
from dynaorm._transports import ThreadedTransport


def async_twin(session: Session) -> AsyncSession:
    """An `AsyncSession` sharing `session`'s transport, cursor secret and batch budget."""
    transport: Any = session.transport  # a real transport or a test's canned one
    return AsyncSession(
        transport=ThreadedTransport(transport),
        cursor_secret=session.cursor_secret,
        batch_attempts=session._batches.retry.attempts,
    )
