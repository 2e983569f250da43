"""Bulk writes that keep every guarantee: each item its own planned write, run concurrently."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import NamedTuple

from dynaorm._entity import Entity, Key
from dynaorm._retry import Backoff
from dynaorm.errors import DynaormError, ExpressionError, Throttled

__all__ = ["BulkFailure", "BulkResult", "run_bulk"]

Target = Entity | Key
Write = Callable[[], None]


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
    jobs: Sequence[tuple[Target, Write]], *, max_concurrency: int, retry: Backoff
) -> BulkResult:
    """Run each job (an item and the call that writes it) on a bounded thread pool.

    A job is retried with backoff only while it is throttled: a throttled request was
    refused, never applied, so sending the item's write again cannot write it twice. Any
    other dynaorm error is that item's outcome; the other items go on regardless.
    """
    if max_concurrency < 1:
        raise ExpressionError(f"bulk needs max_concurrency >= 1, got {max_concurrency!r}")
    _refuse_duplicates([item for item, _ in jobs])
    result = BulkResult()
    if not jobs:
        return result
    workers = min(max_concurrency, len(jobs))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dynaorm-bulk") as pool:
        outcomes = list(pool.map(lambda job: _attempt(job[1], retry), jobs))
    for (item, _), error in zip(jobs, outcomes, strict=True):
        if error is None:
            result.written.append(item)
        else:
            result.failed.append(BulkFailure(item, error))
    return result


def _attempt(write: Write, retry: Backoff) -> DynaormError | None:
    """Write one item; None when written, else the error of its last attempt."""
    for attempt in range(1, retry.attempts + 1):
        try:
            write()
        except Throttled as error:
            if attempt == retry.attempts:
                return error
        except DynaormError as error:
            return error
        else:
            return None
        retry.pause(attempt)
    raise AssertionError("unreachable: the last attempt returns")


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
