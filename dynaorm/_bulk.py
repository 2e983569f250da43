"""Bulk writes that keep every guarantee: each item its own planned write, run concurrently
(threads for `Session`, tasks for `AsyncSession`; the retry loop is steps, written once)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from dynaorm._entity import Entity, Key
from dynaorm._io import Steps
from dynaorm._retry import Backoff
from dynaorm.errors import DynaormError, ExpressionError, Throttled

__all__ = ["BulkFailure", "BulkResult", "arun_bulk", "attempt", "run_bulk"]

Target = Entity | Key
WriteSteps = Callable[[], Steps[None]]  # a fresh generator per attempt


class BulkFailure(NamedTuple):
    """An item `session.bulk` could not write, and the dynaorm error that says why."""

    item: Target
    error: DynaormError


@dataclass
class BulkResult:
    """Per-item outcomes of `session.bulk`, each list in the order the items were given.

    Every item submitted is in exactly one of `written` and `failed`.
    """

    written: list[Target] = field(default_factory=list)
    failed: list[BulkFailure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every item was written."""
        return not self.failed

    def __repr__(self) -> str:
        return f"BulkResult(written={len(self.written)}, failed={len(self.failed)})"


def run_bulk(
    jobs: Sequence[tuple[Target, WriteSteps]],
    *,
    max_concurrency: int,
    retry: Backoff,
    drive: Callable[[Steps[DynaormError | None]], DynaormError | None],
) -> BulkResult:
    """Run each job (an item and the steps that write it) on a bounded thread pool."""
    _check(jobs, max_concurrency)
    if not jobs:
        return BulkResult()
    workers = min(max_concurrency, len(jobs))
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415 - on use

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dynaorm-bulk") as pool:
        outcomes = list(pool.map(lambda job: drive(attempt(job[1], retry)), jobs))
    return _result(jobs, outcomes)


async def arun_bulk(
    jobs: Sequence[tuple[Target, WriteSteps]],
    *,
    max_concurrency: int,
    retry: Backoff,
    adrive: Callable[[Steps[DynaormError | None]], Awaitable[DynaormError | None]],
) -> BulkResult:
    """Run each job as an asyncio task, at most `max_concurrency` at a time."""
    _check(jobs, max_concurrency)
    import asyncio  # noqa: PLC0415 - loaded by the running loop; not at import

    gate = asyncio.Semaphore(max_concurrency)

    async def one(write: WriteSteps) -> tuple[DynaormError | None]:
        async with gate:  # a 1-tuple: an error returned as an outcome, never raised
            return (await adrive(attempt(write, retry)),)

    # Every task runs to its end even when one fails with a bug, as on the thread pool.
    done = await asyncio.gather(*(one(write) for _, write in jobs), return_exceptions=True)
    outcomes: list[DynaormError | None] = []
    for outcome in done:
        if isinstance(outcome, BaseException):
            raise outcome
        outcomes.append(outcome[0])
    return _result(jobs, outcomes)


def attempt(write: WriteSteps, retry: Backoff) -> Steps[DynaormError | None]:
    """Write one item; None when written, else the error of its last attempt.

    A job is retried with backoff only while it is throttled: a throttled request was
    refused, never applied, so sending the item's write again cannot write it twice. Any
    other dynaorm error is that item's outcome; the other items go on regardless.
    """
    for number in range(1, retry.attempts + 1):
        try:
            yield from write()
        except Throttled as error:
            if number == retry.attempts:
                return error
        except DynaormError as error:
            return error
        else:
            return None
        yield retry.wait(number)
    raise AssertionError("unreachable: the last attempt returns")


def _check(jobs: Sequence[tuple[Target, WriteSteps]], max_concurrency: int) -> None:
    if max_concurrency < 1:
        raise ExpressionError(f"bulk needs max_concurrency >= 1, got {max_concurrency!r}")
    _refuse_duplicates([item for item, _ in jobs])


def _result(
    jobs: Sequence[tuple[Target, WriteSteps]], outcomes: list[DynaormError | None]
) -> BulkResult:
    result = BulkResult()
    for (item, _), error in zip(jobs, outcomes, strict=True):
        if error is None:
            result.written.append(item)
        else:
            result.failed.append(BulkFailure(item, error))
    return result


def _refuse_duplicates(items: list[Target]) -> None:
    """Two writes of one item would race each other: the outcome would be arbitrary."""
    seen: set[tuple[str, str, str]] = set()
    for item in items:
        key = item.get_key() if isinstance(item, Entity) else item
        ident = (key.entity.__dynaorm__.table.name, key.pk, key.sk)
        if ident in seen:
            raise ExpressionError(
                f"bulk names {key!r} twice; two concurrent writes of one item would race, "
                "so give each item once",
                entity=key.entity.__dynaorm__.name,
                key=key,
            )
        seen.add(ident)
