"""Batches: chunking, retries of unprocessed work, and nothing lost or dropped."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from blog_models import Post, User

from dynaorm import Session
from dynaorm.errors import BatchIncomplete, DefinitionError, ExpressionError, Throttled

from .conftest import Recorder

UTC = dt.timezone.utc
START = dt.datetime(2024, 1, 1, tzinfo=UTC)


def posts(count: int, user_id: str = "u1") -> list[Post]:
    return [
        Post(
            user_id=user_id,
            post_id=f"p{n:04d}",
            title=f"T{n}",
            created_at=START + dt.timedelta(minutes=n),
        )
        for n in range(count)
    ]


class LeaveOver:
    """Wraps the transport: DynamoDB 'leaves over' part of each batch for `rounds` calls."""

    def __init__(self, session: Session, keep: int, rounds: int) -> None:
        self.real = session.transport.call
        self.keep, self.rounds = keep, rounds
        self.calls = 0
        session.transport.call = self  # type: ignore[method-assign]

    def __call__(self, operation: str, params: dict[str, Any], **context: Any) -> dict[str, Any]:
        if operation not in ("BatchWriteItem", "BatchGetItem") or self.calls >= self.rounds:
            return self.real(operation, params, **context)
        self.calls += 1
        ((table, requests),) = params["RequestItems"].items()
        if operation == "BatchWriteItem":
            sent, left = requests[: self.keep], requests[self.keep :]
            response = self.real(operation, {"RequestItems": {table: sent}}, **context)
            return {**response, "UnprocessedItems": {table: left} if left else {}}
        keys = requests["Keys"]
        sent_keys, left_keys = keys[: self.keep], keys[self.keep :]
        response = self.real(
            operation, {"RequestItems": {table: {**requests, "Keys": sent_keys}}}, **context
        )
        left = {table: {**requests, "Keys": left_keys}} if left_keys else {}
        return {**response, "UnprocessedKeys": left}


def no_sleep(session: Session) -> list[float]:
    delays: list[float] = []
    session._batches.retry.sleep = delays.append
    return delays


def test_batch_write_chunks_by_25(session: Session, recorder: Recorder) -> None:
    session.batch_write(put=posts(60))
    assert recorder.operations() == ["BatchWriteItem"] * 3
    sizes = [len(next(iter(p["RequestItems"].values()))) for _, p in recorder.calls]
    assert sizes == [25, 25, 10]
    assert session.query(Post, user_id="u1").count() == 60


def test_unprocessed_items_are_retried_with_backoff(session: Session) -> None:
    delays = no_sleep(session)
    LeaveOver(session, keep=7, rounds=6)
    written = posts(40)
    session.batch_write(put=written)
    assert session.query(Post, user_id="u1").all() == written
    assert len(delays) >= 3 and all(d >= 0 for d in delays)


def test_batch_incomplete_reports_exactly_what_was_not_written(session: Session) -> None:
    no_sleep(session)
    session._batches.retry.attempts = 2
    LeaveOver(session, keep=5, rounds=100)
    written = posts(20)
    with pytest.raises(BatchIncomplete) as info:
        session.batch_write(put=written)
    stored = session.query(Post, user_id="u1").all()
    assert len(stored) == 10
    assert sorted(p.post_id for p in info.value.unprocessed) == sorted(
        p.post_id for p in written if p not in stored
    )


def test_batch_get_chunks_retries_and_keeps_order(session: Session, recorder: Recorder) -> None:
    written = posts(250)
    session.batch_write(put=written)
    recorder.clear()
    keys = [p.get_key() for p in reversed(written)]
    found = session.batch_get([*keys, Post.key(user_id="u9", created_at=START, post_id="x")])
    assert found == list(reversed(written))
    assert recorder.operations() == ["BatchGetItem"] * 3

    no_sleep(session)
    LeaveOver(session, keep=30, rounds=3)
    assert session.batch_get(keys[:100]) == list(reversed(written))[:100]


def test_batch_get_mixes_entities(session: Session) -> None:
    ann = User(user_id="u1", email="a@x", name="Ann")
    session.create(ann)
    (post,) = posts(1)
    session.put(post)
    assert session.batch_get([post.get_key(), User.key(user_id="u1")]) == [post, ann]


def test_batch_write_refuses_duplicates_and_guarded_entities(session: Session) -> None:
    (post,) = posts(1)
    with pytest.raises(ExpressionError, match="twice"):
        session.batch_write(put=[post], delete=[post.get_key()])
    with pytest.raises(DefinitionError, match="unit of work"):
        session.batch_write(put=[User(user_id="u1", email="a@x", name="Ann")])


def test_batch_delete(session: Session) -> None:
    written = posts(30)
    session.batch_write(put=written)
    session.batch_write(delete=[p.get_key() for p in written[:20]] + written[20:25])
    assert session.query(Post, user_id="u1").all() == written[25:]


def test_throttled_chunks_are_retried_then_reported(session: Session) -> None:
    delays = no_sleep(session)
    real = session.transport.call
    failures = {"left": 3}

    def throttle(operation: str, params: dict[str, Any], **context: Any) -> dict[str, Any]:
        if operation == "BatchWriteItem" and failures["left"]:
            failures["left"] -= 1
            raise Throttled("throttled", operation=operation)
        return real(operation, params, **context)

    session.transport.call = throttle  # type: ignore[method-assign]
    written = posts(30)
    session.batch_write(put=written)
    assert session.query(Post, user_id="u1").all() == written
    assert len(delays) == 3

    failures["left"] = 10_000
    session._batches.retry.attempts = 3
    with pytest.raises(BatchIncomplete) as info:
        session.batch_write(put=posts(30, user_id="u2"))
    assert len(info.value.unprocessed) == 30
    assert session.query(Post, user_id="u2").all() == []
