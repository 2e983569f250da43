"""Batches: chunking, retries of unprocessed work, and nothing lost or dropped."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from blog_models import Post, User

from dynaorm import Session
from dynaorm.errors import (
    BatchIncomplete,
    DefinitionError,
    ExpressionError,
    ServiceError,
    Throttled,
)

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


class FailChunks:
    """Wraps the transport: batch requests naming any of `poisoned` raise `make()`.

    `times` limits how often (None: every time). Other requests reach the backend.
    """

    def __init__(
        self,
        session: Session,
        poisoned: set[str],
        make: Callable[[str], Exception],
        times: int | None = None,
    ) -> None:
        self.real = session.transport.call
        self.poisoned, self.make, self.times = poisoned, make, times
        self.failed = 0
        self.sent: list[str] = []  # post ids of every batch request, in order
        session.transport.call = self  # type: ignore[method-assign]

    def __call__(self, operation: str, params: dict[str, Any], **context: Any) -> dict[str, Any]:
        if operation in ("BatchWriteItem", "BatchGetItem"):
            named = set(re.findall(r"p\d{4}", json.dumps(params)))
            self.sent.extend(sorted(named))
            if named & self.poisoned and (self.times is None or self.failed < self.times):
                self.failed += 1
                raise self.make(operation)
        return self.real(operation, params, **context)


class LeaveBehind:
    """Wraps the transport: DynamoDB hands back the requests for these posts every time."""

    def __init__(self, session: Session, post_ids: set[str]) -> None:
        self.real = session.transport.call
        self.post_ids = post_ids
        session.transport.call = self  # type: ignore[method-assign]

    def __call__(self, operation: str, params: dict[str, Any], **context: Any) -> dict[str, Any]:
        if operation not in ("BatchWriteItem", "BatchGetItem"):
            return self.real(operation, params, **context)
        ((table, body),) = params["RequestItems"].items()
        requests = body if operation == "BatchWriteItem" else body["Keys"]
        kept = [r for r in requests if not self.left(r)]
        left = [r for r in requests if self.left(r)]
        response: dict[str, Any] = {}
        if kept:
            sent = kept if operation == "BatchWriteItem" else {**body, "Keys": kept}
            response = self.real(operation, {"RequestItems": {table: sent}}, **context)
        if operation == "BatchWriteItem":
            return {**response, "UnprocessedItems": {table: left} if left else {}}
        return {**response, "UnprocessedKeys": {table: {**body, "Keys": left}} if left else {}}

    def left(self, request: dict[str, Any]) -> bool:
        return bool(set(re.findall(r"p\d{4}", json.dumps(request))) & self.post_ids)


def service_error(code: str) -> Callable[[str], Exception]:
    return lambda operation: ServiceError(f"{operation} failed: {code}", aws_code=code)


def test_a_chunk_refused_by_the_service_does_not_stop_later_chunks(session: Session) -> None:
    delays = no_sleep(session)
    written = posts(100)
    failing = FailChunks(session, {"p0030"}, service_error("ValidationException"))

    with pytest.raises(BatchIncomplete) as info:
        session.batch_write(put=written)

    error = info.value
    assert failing.failed == 1 and delays == []  # a refusal is not retried
    assert failing.sent == [p.post_id for p in written]  # every chunk once, in order
    assert (error.operation, error.entity) == ("BatchWriteItem", "Post")
    assert error.written == written[:25] + written[50:]
    assert error.unprocessed == written[25:50]
    assert [type(r) for r in error.reasons] == [ServiceError] * 25
    assert {r.aws_code for r in error.reasons} == {"ValidationException"}
    assert "25 of 100" in str(error) and "ValidationException" in str(error)
    assert session.query(Post, user_id="u1").all() == error.written


def test_transient_service_errors_are_retried_with_backoff(session: Session) -> None:
    delays = no_sleep(session)
    written = posts(60)
    failing = FailChunks(session, {"p0030"}, service_error("InternalServerError"), times=2)
    session.batch_write(put=written)
    assert failing.failed == 2 and len(delays) == 2
    assert session.query(Post, user_id="u1").all() == written

    session._batches.retry.attempts = 3
    lost = FailChunks(session, {"p0010"}, service_error("ConnectionClosedError"))
    with pytest.raises(BatchIncomplete) as info:
        session.batch_write(put=posts(60, user_id="u2"))
    assert lost.failed == 3
    assert [p.post_id for p in info.value.unprocessed] == [f"p{n:04d}" for n in range(25)]
    assert {r.aws_code for r in info.value.reasons} == {"ConnectionClosedError"}
    assert len(info.value.written) == 35


def test_unprocessed_items_carry_a_reason_naming_entity_and_key(session: Session) -> None:
    no_sleep(session)
    session._batches.retry.attempts = 2
    written = posts(25)
    LeaveBehind(session, {p.post_id for p in written[20:]})
    with pytest.raises(BatchIncomplete) as info:
        session.batch_write(put=written)
    assert info.value.unprocessed == written[20:]
    for post, reason in zip(written[20:], info.value.reasons, strict=True):
        assert isinstance(reason, Throttled)
        assert reason.entity == "Post" and reason.key == post.get_key()
        assert "unprocessed" in reason.message and "2 attempts" in reason.message


def test_batch_get_returns_what_it_read_with_the_keys_it_could_not(session: Session) -> None:
    written = posts(250)
    session.batch_write(put=written)
    no_sleep(session)
    session._batches.retry.attempts = 2
    keys = [p.get_key() for p in written]
    LeaveBehind(session, {p.post_id for p in written[89:99]})
    missing = Post.key(user_id="u9", created_at=START, post_id="x")

    with pytest.raises(BatchIncomplete) as info:
        session.batch_get([missing, *keys])

    error = info.value
    assert error.operation == "BatchGetItem"
    assert error.unprocessed == keys[89:99]  # the missing key was read: it is simply absent
    assert error.items == written[:89] + written[99:]
    assert all(isinstance(r, Throttled) for r in error.reasons)
    assert error.written == []


def test_batch_get_keeps_other_chunks_when_one_fails(session: Session) -> None:
    written = posts(250)
    session.batch_write(put=written)
    no_sleep(session)
    FailChunks(session, {"p0150"}, service_error("ValidationException"))
    with pytest.raises(BatchIncomplete) as info:
        session.batch_get([p.get_key() for p in written])
    assert info.value.items == written[:100] + written[200:]
    assert info.value.unprocessed == [p.get_key() for p in written[100:200]]
    assert {r.aws_code for r in info.value.reasons} == {"ValidationException"}


def test_a_bug_in_a_batch_is_not_reported_as_unprocessed(session: Session) -> None:
    bug = KeyError("a bug, not a DynamoDB error")
    FailChunks(session, {"p0000"}, lambda operation: bug)
    with pytest.raises(KeyError) as caught:
        session.batch_write(put=posts(3))
    assert caught.value is bug
