"""Lost responses (issue 12, defect 4): a conditional write that was applied but whose
answer was lost is resent by botocore, fails its own condition, and must still report
success, because the stored item is exactly what it wrote.

Faults come from `test_faults.Faults` (botocore's `before-send` event): the backend applies
the request and the client sees a read timeout. On moto the backend is called under one
lock, so its check-then-write is atomic per request, as DynamoDB's is.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.exceptions import ReadTimeoutError

from dynaorm import Entity, Session, Table
from dynaorm.errors import VersionConflict, WriteOutcomeUnknown
from tests.dynamodb_local import Backend

from .test_concurrency import run_together
from .test_faults import Faults

counters = Table("counters")


class Counter_(Entity, table=counters, pk="COUNTER#{name}", sk="COUNTER", version="version"):
    name: str
    value: int = 0
    recent: list[str] = []  # ids of the last writes: two writers never store one item
    version: int = 0


def _timeout(url: str) -> Exception:
    return ReadTimeoutError(endpoint_url=url, error="injected read timeout")


class _Share:
    """A `Faults.lose` entry that loses a share of the responses, chosen at random."""

    def __init__(self, faults: Faults, share: float) -> None:
        self.faults, self.share = faults, share

    def __bool__(self) -> bool:
        return True

    def pop(self, _: int) -> Callable[[str], Exception] | None:
        return _timeout if self.faults.rng.random() < self.share else None


class LockedFaults(Faults):
    """Faults whose moto backend answers one request at a time (DynamoDB serialises
    conditional writes on an item; moto 5 does not)."""

    def __init__(self, session: Session, backend: Backend) -> None:
        super().__init__(session, backend, seed=20241202)
        if self.moto is not None:
            moto, lock = self.moto, threading.Lock()

            def serialised(**kwargs: Any) -> Any:
                with lock:
                    return moto(**kwargs)

            self.moto = serialised

    def close(self) -> None:
        for event, handler in self._hooks:
            self.client.meta.events.unregister(event, handler)
        if self.moto is not None:
            from moto.core.models import botocore_stubber  # noqa: PLC0415  (memory only)

            self.client.meta.events.register("before-send", botocore_stubber)


@pytest.fixture
def session(botocore_session: Session) -> Session:
    """Faults hook botocore's events, so these tests run on the botocore transport
    whatever `--transport` says."""
    return botocore_session


@pytest.fixture
def counter_session(session: Session) -> Iterator[Session]:
    session.create_table(counters)
    yield session
    session.delete_table(counters)


@pytest.fixture
def faults(counter_session: Session, dynamodb_backend: Backend) -> Iterator[LockedFaults]:
    injector = LockedFaults(counter_session, dynamodb_backend)
    yield injector
    injector.close()


def _stored(session: Session) -> Counter_:
    found = session.get(Counter_, name="c", consistent=True)
    assert found is not None
    return found


def test_versioned_put_whose_response_was_lost_succeeds_once(
    counter_session: Session, faults: LockedFaults
) -> None:
    session = counter_session
    session.create(Counter_(name="c"))
    counter = _stored(session)
    counter.value = 1
    faults.lose["PutItem"] = [_timeout]

    session.put(counter)

    assert faults.counts["PutItem: response lost"] == 1
    assert len(faults.sent("PutItem")) == 3  # create, the lost put, botocore's resend
    assert counter.version == 2
    stored = _stored(session)
    assert (stored.value, stored.version) == (1, 2)


def test_versioned_update_whose_response_was_lost_succeeds_once(
    counter_session: Session, faults: LockedFaults
) -> None:
    session = counter_session
    session.create(Counter_(name="c"))
    counter = _stored(session)
    faults.lose["UpdateItem"] = [_timeout]

    result = session.update(counter, set={"value": 7})

    assert faults.counts["UpdateItem: response lost"] == 1
    assert (result.value, result.version) == (7, 2)
    assert (counter.value, counter.version) == (7, 2)
    assert (_stored(session).value, _stored(session).version) == (7, 2)


def test_versioned_delete_whose_response_was_lost_succeeds(
    counter_session: Session, faults: LockedFaults
) -> None:
    session = counter_session
    session.create(Counter_(name="c"))
    counter = _stored(session)
    faults.lose["DeleteItem"] = [_timeout]

    session.delete(counter)

    assert faults.counts["DeleteItem: response lost"] == 1
    assert session.get(Counter_, name="c", consistent=True) is None


def test_a_real_conflict_after_a_resend_is_still_a_version_conflict(
    counter_session: Session, faults: LockedFaults
) -> None:
    session = counter_session
    session.create(Counter_(name="c"))
    mine = _stored(session)
    session.update(_stored(session), set={"value": 5})  # another writer
    mine.value = 6
    faults.lose["PutItem"] = [_timeout]  # not applied? it is: but its condition fails

    with pytest.raises(VersionConflict):
        session.put(mine)
    assert _stored(session).value == 5


THREADS, INCREMENTS, LOST = 8, 50, 0.05


def test_racing_increments_with_5_percent_of_responses_lost_end_exact(
    counter_session: Session, faults: LockedFaults
) -> None:
    session = counter_session
    session.create(Counter_(name="c"))
    faults.lose["PutItem"] = _Share(faults, LOST)  # type: ignore[assignment]
    conflicts: Counter[int] = Counter()
    unknown: Counter[int] = Counter()

    def increment(n: int) -> None:
        for step in range(INCREMENTS):
            mark = f"{n}.{step}"
            while True:
                current = _stored(session)
                current.value += 1
                current.recent = [*current.recent[-15:], mark]
                try:
                    session.put(current)
                    break
                except VersionConflict:
                    conflicts[n] += 1
                except WriteOutcomeUnknown:
                    # Lost, resent, and overwritten since: the item says if it landed.
                    unknown[n] += 1
                    if mark in _stored(session).recent:
                        break

    run_together(THREADS, increment)

    stored = _stored(session)
    lost = faults.counts["PutItem: response lost"]
    figures = (
        f"{lost} responses lost, {sum(unknown.values())} outcomes unknown, "
        f"{sum(conflicts.values())} conflicts retried"
    )
    assert lost > 0, figures
    assert stored.value == THREADS * INCREMENTS, figures
    assert stored.version == 1 + THREADS * INCREMENTS, figures
    print(f"\n{THREADS} x {INCREMENTS} increments: {figures}")


@pytest.fixture(autouse=True)
def _no_botocore_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore's standard retry mode sleeps before resending: not here."""
    import botocore.retries.standard  # noqa: PLC0415

    monkeypatch.setattr(
        botocore.retries.standard.ExponentialBackoff, "delay_amount", lambda self, context: 0
    )
