"""session.bulk (issue 15 item 6): many versioned or unique items, each written with its
own conditions, concurrently, with a per-item outcome and nothing lost under throttling.

Faults come from `test_faults.Faults` (botocore's `before-send` event), on both backends.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import botocore.retries.standard
import pytest
from blog_models import User
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dynaorm import BulkResult, Entity, Session, Table
from dynaorm.errors import (
    DefinitionError,
    DynaormError,
    ExpressionError,
    ItemAlreadyExists,
    Throttled,
    UniqueConstraintViolation,
    VersionConflict,
)
from tests.dynamodb_local import Backend

from .conftest import Recorder
from .test_faults import THROTTLE, Faults

tasks = Table("tasks")


class Task(Entity, table=tasks, pk="PROJECT#{project}", sk="TASK#{task_id}", version="version"):
    project: str
    task_id: int
    title: str = ""
    version: int = 0


@pytest.fixture
def session(botocore_session: Session) -> Session:
    """Faults hook botocore's events, so these tests run on the botocore transport
    whatever `--transport` says."""
    return botocore_session


@pytest.fixture(autouse=True)
def _no_botocore_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore's standard retry mode sleeps up to ~1 s per throttled attempt: not here."""
    monkeypatch.setattr(
        botocore.retries.standard.ExponentialBackoff, "delay_amount", lambda self, context: 0
    )


@pytest.fixture
def task_session(session: Session) -> Iterator[Session]:
    session.create_table(tasks)
    session._batches.retry.sleep = lambda _: None  # dynaorm's per-item backoff: no waiting
    yield session
    session.delete_table(tasks)


@pytest.fixture
def faults(task_session: Session, dynamodb_backend: Backend) -> Iterator[Faults]:
    injector = Faults(task_session, dynamodb_backend, seed=20241202)
    yield injector
    injector.close()


def make_tasks(count: int, project: str = "p1", title: str = "new") -> list[Task]:
    return [Task(project=project, task_id=n, title=title) for n in range(count)]


def stored(session: Session, project: str = "p1") -> dict[int, Task]:
    return {t.task_id: t for t in session.query(Task, project=project).consistent().all()}


def throttled_calls(session: Session, operation: str) -> int:
    return int(session.stats.snapshot().get(operation, {}).get("errors", 0))


def test_300_versioned_tasks_created_each_with_its_condition(
    task_session: Session, recorder: Recorder
) -> None:
    created = make_tasks(300)

    result = task_session.bulk(create=created, max_concurrency=8)

    assert result.ok and result.failed == []
    assert result.written == created  # in the order given
    assert all(t.version == 1 for t in created)  # each entity carries its stored version
    assert {n: t.version for n, t in stored(task_session).items()} == dict.fromkeys(range(300), 1)
    puts = [params for op, params in recorder.calls if op == "PutItem"]
    assert recorder.operations().count("PutItem") == 300 == len(puts)
    first = next(p for p in puts if p["Item"]["task_id"] == {"N": "0"})
    assert first == {
        "TableName": task_session.table_name(tasks),
        "Item": {
            "project": {"S": "p1"},
            "task_id": {"N": "0"},
            "title": {"S": "new"},
            "version": {"N": "1"},
            "_type": {"S": "Task"},
            "PK": {"S": "PROJECT#p1"},
            "SK": {"S": "TASK#00000000000000000000"},
        },
        "ConditionExpression": "attribute_not_exists(#n0)",
        "ExpressionAttributeNames": {"#n0": "PK"},
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }


def test_each_item_gets_its_own_outcome_and_a_failure_stops_nothing(
    task_session: Session,
) -> None:
    existing = make_tasks(4, title="old")
    task_session.bulk(create=existing)
    other = task_session.get(Task, project="p1", task_id=1)
    assert other is not None
    task_session.update(other, set={"title": "second writer"})  # existing[1] is now stale
    again = Task(project="p1", task_id=0, title="dup")
    fresh = make_tasks(6)[4:]

    result = task_session.bulk(
        create=[again, *fresh], put=[existing[1], existing[2]], delete=[existing[3]]
    )

    assert result.written == [*fresh, existing[2], existing[3]]
    assert [(item, type(error)) for item, error in result.failed] == [
        (again, ItemAlreadyExists),
        (existing[1], VersionConflict),
    ]
    assert not result.ok
    table = stored(task_session)
    assert table[0].title == "old"  # the duplicate create wrote nothing
    assert table[1].title == "second writer"  # the stale put did not overwrite
    assert table[2].version == 2 == existing[2].version
    assert 3 not in table and {4, 5} <= set(table)
    assert repr(result) == "BulkResult(written=4, failed=2)"


def test_unique_entities_keep_their_guards(task_session: Session) -> None:
    concurrency = 3
    users = [
        User(user_id="u1", email="ann@example.com", name="Ann"),
        User(user_id="u2", email="ann@example.com", name="Imposter"),
        User(user_id="u3", email="bob@example.com", name="Bob"),
    ]

    result = task_session.bulk(create=users, max_concurrency=concurrency)

    assert len(result.written) == 2 and len(result.failed) == 1
    loser, error = result.failed[0]
    assert isinstance(error, UniqueConstraintViolation) and error.field == "email"
    winner = next(u for u in users[:2] if u is not loser)
    assert task_session.get(User, user_id=loser.user_id) is None
    assert task_session.get(User, user_id=winner.user_id) is not None

    gone = task_session.bulk(delete=[winner, users[2]])
    assert gone.ok
    # The guards were released with the items: the emails are free again.
    assert task_session.bulk(create=[loser]).ok


def test_throttled_items_are_retried_until_written_and_nothing_is_lost(
    task_session: Session, faults: Faults
) -> None:
    # botocore retries a throttled request itself until its retry quota is spent; past
    # that, each throttle reaches dynaorm, which retries the item within its budget.
    task_session._batches.retry.attempts = 30
    faults.add("PutItem", THROTTLE, probability=0.5)
    created = make_tasks(300)

    result = task_session.bulk(create=created, max_concurrency=8)

    figures = {
        "throttles injected": faults.rules[0].hits,
        "Throttled reaching dynaorm (retried per item)": throttled_calls(task_session, "PutItem"),
    }
    faults.clear()
    assert result.ok, (figures, result.failed[:3])
    assert len(result.written) == 300
    assert set(stored(task_session)) == set(range(300))
    assert figures["Throttled reaching dynaorm (retried per item)"] > 0, figures


def test_items_throttled_past_the_budget_are_reported_and_not_written(
    task_session: Session, faults: Faults
) -> None:
    task_session._batches.retry.attempts = 1
    faults.add("PutItem", THROTTLE, probability=0.7)

    result = task_session.bulk(create=make_tasks(60), max_concurrency=4)

    faults.clear()
    assert len(result.written) + len(result.failed) == 60
    assert result.failed and result.written
    assert all(isinstance(error, Throttled) for _, error in result.failed)
    table = stored(task_session)
    assert {t.task_id for t in result.written} == set(table)  # type: ignore[union-attr]
    # A failed item can simply be submitted again.
    retry = task_session.bulk(create=[item for item, _ in result.failed])
    assert retry.ok and set(stored(task_session)) == set(range(60))


BULK = settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
_example = iter(range(10**6))


@BULK
@given(
    share=st.sampled_from([0.0, 0.3, 0.7, 0.95]),
    attempts=st.integers(1, 3),
    plan=st.lists(st.sampled_from(["create", "put", "delete"]), min_size=1, max_size=30),
)
def test_bulk_under_throttling_loses_nothing(
    task_session: Session, faults: Faults, share: float, attempts: int, plan: list[str]
) -> None:
    """written + failed == submitted, and the table agrees with every outcome."""
    project = f"prop{next(_example)}"
    before = {n: Task(project=project, task_id=n, title="old") for n, op in enumerate(plan)}
    assert task_session.bulk(create=[t for n, t in before.items() if plan[n] != "create"]).ok
    chosen = {
        op: [
            Task(project=project, task_id=n, title="new", version=before[n].version)
            for n, o in enumerate(plan)
            if o == op
        ]
        for op in ("create", "put", "delete")
    }
    task_session._batches.retry.attempts = attempts
    faults.add("PutItem DeleteItem", THROTTLE, probability=share)

    result: BulkResult = task_session.bulk(**chosen, max_concurrency=4)

    faults.clear()
    submitted = [t for op in ("create", "put", "delete") for t in chosen[op]]
    outcomes = result.written + [item for item, _ in result.failed]
    assert sorted(id(t) for t in outcomes) == sorted(id(t) for t in submitted)
    assert all(isinstance(error, Throttled) for _, error in result.failed)
    written = {id(t) for t in result.written}
    table = stored(task_session, project)
    for op, items in chosen.items():
        for item in items:
            assert isinstance(item, Task)
            n, ok = item.task_id, id(item) in written
            if op == "delete":
                assert (n not in table) == ok, (op, n, ok)
            elif op == "create":
                assert (n in table) == ok, (op, n, ok)
            else:
                assert table[n].title == ("new" if ok else "old"), (op, n, ok)


def test_concurrency_is_bounded(task_session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    running, peak, lock = 0, 0, threading.Lock()
    call = task_session.transport.call

    def tracked(operation: str, params: dict[str, Any], **context: Any) -> dict[str, Any]:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        try:
            time.sleep(0.02)
            return call(operation, params, **context)
        finally:
            with lock:
                running -= 1

    # Counted where requests leave the session: one in flight per item being written.
    monkeypatch.setattr(task_session.transport, "call", tracked)

    assert task_session.bulk(create=make_tasks(40), max_concurrency=4).ok
    assert 2 <= peak <= 4


def test_bad_requests_are_refused_before_anything_is_sent(
    task_session: Session, recorder: Recorder
) -> None:
    one = Task(project="p1", task_id=1)
    with pytest.raises(ExpressionError, match="twice"):
        task_session.bulk(create=[one], delete=[Task.key(project="p1", task_id=1)])
    with pytest.raises(ExpressionError, match="max_concurrency"):
        task_session.bulk(create=[one], max_concurrency=0)
    assert recorder.calls == []
    assert task_session.bulk() == BulkResult()


def test_batch_write_refusal_names_the_bulk_api(task_session: Session) -> None:
    with pytest.raises(DefinitionError, match=r"session\.bulk\(create=") as refused:
        task_session.batch_write(put=make_tasks(2))
    assert isinstance(refused.value, DynaormError) and refused.value.entity == "Task"
