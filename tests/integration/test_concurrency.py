"""Concurrency: one session shared by threads racing on one item.

Optimistic locking must turn every lost race into a `VersionConflict` (never a lost
update), and a unique constraint must let exactly one of many racing creates win. The
threads start together behind a `threading.Barrier`.

moto alone is not thread-safe: its DynamoDB backend evaluates a condition and then
writes without any lock. Measured with these very tests on moto 5 before the in-memory
transport serialised its requests: two winners of the unique race, and after 8 x 50
increments the counter at 40-59. `Transport.in_memory` now holds one process-wide lock
per request, so each request is atomic as on DynamoDB and these tests run on both
backends.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

from blog_models import User

from dynaorm import Session
from dynaorm.errors import (
    StaleEntity,
    TransactionCanceled,
    UniqueConstraintViolation,
    VersionConflict,
)

from .test_write_integrity import Shape, shapes

THREADS = 8
INCREMENTS = 50


def run_together(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Run `work(n)` in `count` threads started at once; their results, or re-raise."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            barrier.wait()
            results[n] = work(n)
        except BaseException as error:  # re-raised in the main thread
            errors.append(error)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not any(thread.is_alive() for thread in threads), "a thread hung"
    if errors:
        raise errors[0]
    return results


def test_optimistic_increments_from_8_threads_lose_nothing(session: Session) -> None:
    # The counter is the user's name (User is the versioned entity of the example model):
    # read, add one, write back only if the version is still the one read.
    session.create(User(user_id="c", email="c@x", name="0"))
    conflicts: Counter[int] = Counter()

    def increment(n: int) -> int:
        for _ in range(INCREMENTS):
            while True:
                current = session.get(User, user_id="c", consistent=True)
                assert current is not None
                try:
                    session.update(current, set={"name": str(int(current.name) + 1)})
                    break
                except VersionConflict:
                    conflicts[n] += 1
        return conflicts[n]

    run_together(THREADS, increment)

    stored = session.get(User, user_id="c", consistent=True)
    assert stored is not None
    total = sum(conflicts.values())
    figures = f"{THREADS * INCREMENTS} increments, {total} version conflicts retried"
    assert int(stored.name) == THREADS * INCREMENTS, figures
    assert stored.version == 1 + THREADS * INCREMENTS, figures
    assert total >= 0
    print(f"\noptimistic increments: {figures}; per thread {sorted(conflicts.values())}")


def test_optimistic_increments_through_units_of_work(session: Session) -> None:
    session.create(User(user_id="c", email="c@x", name="0"))
    conflicts: Counter[int] = Counter()

    def increment(n: int) -> None:
        for _ in range(INCREMENTS // 5):
            while True:
                uow = session.unit_of_work()
                current = uow.get(User, user_id="c")
                assert current is not None
                current.name = str(int(current.name) + 1)
                try:
                    uow.commit()
                    break
                except VersionConflict:
                    conflicts[n] += 1

    run_together(THREADS, increment)

    stored = session.get(User, user_id="c", consistent=True)
    assert stored is not None
    total = sum(conflicts.values())
    assert int(stored.name) == THREADS * INCREMENTS // 5, total
    assert stored.version == 1 + THREADS * INCREMENTS // 5, total
    print(f"\nunit-of-work increments: {THREADS * INCREMENTS // 5}, {total} conflicts retried")


def test_8_threads_creating_one_email_give_one_winner(session: Session) -> None:
    conflicts: Counter[int] = Counter()
    reasons: set[str | None] = set()

    def create(n: int) -> str:
        while True:
            try:
                session.create(User(user_id=f"u{n}", email="same@x", name=f"User {n}"))
                return "won"
            except UniqueConstraintViolation:
                return "taken"
            except TransactionCanceled as error:
                # Another transaction held the guard item (DynamoDB: TransactionConflict);
                # a plain create does not retry that, so the caller does.
                reasons.update(reason.get("Code") for reason in error.reasons if reason)
                conflicts[n] += 1

    outcomes = run_together(THREADS, create)

    assert reasons <= {"TransactionConflict"}, reasons

    figures = (
        f"outcomes {sorted(outcomes)}, transaction conflicts retried {sum(conflicts.values())}"
    )
    assert outcomes.count("won") == 1, figures
    assert outcomes.count("taken") == THREADS - 1, figures
    winner = f"u{outcomes.index('won')}"
    assert [u.user_id for u in session.query(User.by_email, email="same@x").all()] == [winner]
    assert [u.user_id for u in session.scan(User).all()] == [winner]
    print(f"\nunique race: {figures}")


def _index_entries(session: Session, shape: Shape) -> list[tuple[str, str]]:
    return [(s.shape_id, s.b) for s in session.query(Shape.by_ab, a=shape.a).all()]


def test_two_writers_racing_on_index_fields_leave_every_index_query_right(
    session: Session,
) -> None:
    # Shape's index is AB#{a} / {b}. Each round both writers read the item, then one
    # sets a and the other b, at once, each from the object it read: one of them builds
    # its index key from a value the other just changed. That update must fail with
    # StaleEntity (then re-read and retry); the index must agree with the item after
    # every round.
    session.create_table(shapes)
    session.create(Shape(shape_id="s1", a="a0", b="b0"))
    stale: Counter[int] = Counter()
    wrong: list[str] = []
    rounds = 25
    barrier = threading.Barrier(2)

    def write(n: int) -> None:
        field = "ab"[n]
        for step in range(1, rounds + 1):
            mine = session.get(Shape, shape_id="s1", consistent=True)
            assert mine is not None
            barrier.wait()  # both have read: both objects are about to be stale
            while True:
                try:
                    session.update(mine, set={field: f"{field}{step}"})
                    break
                except StaleEntity:
                    stale[n] += 1
                    mine = session.get(Shape, shape_id="s1", consistent=True)
                    assert mine is not None
            barrier.wait()  # both wrote
            if n == 0:
                stored = session.get(Shape, shape_id="s1", consistent=True)
                assert stored is not None
                if _index_entries(session, stored) != [("s1", stored.b)]:
                    wrong.append(f"round {step}: {stored!r} -> {_index_entries(session, stored)}")
            barrier.wait()  # checked

    run_together(2, write)

    assert wrong == [], wrong[:3]
    stored = session.get(Shape, shape_id="s1", consistent=True)
    assert stored is not None and (stored.a, stored.b) == (f"a{rounds}", f"b{rounds}")
    assert sum(stale.values()) >= rounds  # every round one of the two was stale
    print(f"\nindex race: {2 * rounds} updates, {sum(stale.values())} stale errors retried")
    session.delete_table(shapes)
