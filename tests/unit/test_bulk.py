"""run_bulk and arun_bulk without a backend: retries only throttling, reports every item,
keeps order; the thread pool and the asyncio tasks run the same steps."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from dynaorm import Entity, Table
from dynaorm._bulk import BulkFailure, BulkResult, arun_bulk, run_bulk
from dynaorm._io import Steps, adrive, drive
from dynaorm._retry import Backoff
from dynaorm.errors import ServiceError, Throttled, VersionConflict

notes = Table("unit_bulk")


class Post(Entity, table=notes, pk="USER#{user_id}", sk="POST#{post_id}", version="version"):
    user_id: str
    post_id: str
    version: int = 0


def posts(count: int) -> list[Post]:
    return [Post(user_id="u1", post_id=f"p{n}") for n in range(count)]


class Script:
    """Answers each item's attempts from a script: an error to raise, or None to succeed."""

    def __init__(self, script: dict[str, list[Exception | None]]) -> None:
        self.script = script
        self.attempts: dict[str, int] = {}
        self.lock = threading.Lock()

    def write(self, post: Post) -> None:
        with self.lock:
            self.attempts[post.post_id] = self.attempts.get(post.post_id, 0) + 1
            outcome = self.script.get(post.post_id, [None]).pop(0)
        if outcome is not None:
            raise outcome


class NoTransport:
    """The scripted writes send nothing: any request is a bug in the test."""

    def call(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        raise AssertionError("no request expected")

    async def acall_unused(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        raise AssertionError("no request expected")


def write_steps(script: Script, post: Post) -> Steps[None]:
    script.write(post)
    return
    yield  # a generator of steps that sends nothing


@pytest.fixture(params=["threads", "tasks"])
def run(request: pytest.FixtureRequest) -> Any:
    def runner(items: list[Post], script: Script, attempts: int) -> tuple[BulkResult, list[float]]:
        delays: list[float] = []
        retry = Backoff(attempts=attempts, sleep=delays.append)
        jobs = [(p, lambda p=p: write_steps(script, p)) for p in items]
        if request.param == "threads":
            driver = lambda steps: drive(steps, NoTransport())  # noqa: E731
            return run_bulk(jobs, max_concurrency=3, retry=retry, drive=driver), delays
        adriver = lambda steps: adrive(steps, NoTransport())  # type: ignore[arg-type]  # noqa: E731
        bulk = arun_bulk(jobs, max_concurrency=3, retry=retry, adrive=adriver)
        return asyncio.run(bulk), delays

    return runner


def test_only_throttling_is_retried_and_every_item_has_one_outcome(run: Any) -> None:
    items = posts(5)
    throttled = Throttled("slow down")
    conflict = VersionConflict("moved on")
    server = ServiceError("boom")
    script = Script(
        {
            "p1": [throttled, throttled, None],  # written on its third attempt
            "p2": [conflict],  # not retried
            "p3": [server],  # not retried: it may have landed
            "p4": [throttled, throttled, throttled],  # budget spent
        }
    )

    result, delays = run(items, script, attempts=3)

    assert result.written == [items[0], items[1]]
    assert result.failed == [
        BulkFailure(items[2], conflict),
        BulkFailure(items[3], server),
        BulkFailure(items[4], throttled),
    ]
    assert script.attempts == {"p0": 1, "p1": 3, "p2": 1, "p3": 1, "p4": 3}
    assert len(delays) == 4  # a pause before each retry, none after the last attempt
    assert not result.ok


def test_an_error_that_is_not_a_dynaorm_error_propagates_after_the_others_ran(run: Any) -> None:
    items = posts(6)
    script = Script({"p0": [RuntimeError("bug in a hook")]})

    with pytest.raises(RuntimeError, match="bug in a hook"):
        run(items, script, attempts=2)
    assert set(script.attempts) == {p.post_id for p in items}
