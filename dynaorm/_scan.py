"""Scans of one entity type, optionally parallel: steps written once, sync and async shells."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from dynaorm._conditions import Condition, and_, build_condition
from dynaorm._entity import Entity
from dynaorm._expressions import Path, Placeholders
from dynaorm._io import Steps
from dynaorm._pages import Pages, ReadHost, decode_as, drain, fetch_page
from dynaorm.errors import ExpressionError

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self from Python 3.11

    from dynaorm._async_reads import AsyncReads
    from dynaorm._session import Session

__all__ = ["MAX_SCAN_SEGMENTS", "AsyncScan", "Scan"]

E = TypeVar("E", bound=Entity)
MAX_SCAN_SEGMENTS = 1_000_000  # DynamoDB's TotalSegments upper bound
MAX_PARALLEL_SEGMENTS = 16  # segments read at once; the others wait their turn


@dataclass(frozen=True)
class _ScanCore(Generic[E]):
    """What a Scan is, whichever shell sends it: builders, requests and read steps."""

    session: ReadHost = field(repr=False)
    entity: type[E]
    filter: Condition | None = None
    max_items: int | None = None
    total_segments: int = 1
    consistent_read: bool = False

    def where(self, condition: Condition) -> Self:
        return dataclasses.replace(self, filter=and_(self.filter, condition))

    def limit(self, count: int) -> Self:
        if count < 1:
            raise ExpressionError(f".limit() needs a positive count, got {count}")
        return dataclasses.replace(self, max_items=count)

    def consistent(self) -> Self:
        return dataclasses.replace(self, consistent_read=True)

    def segments(self, total: int) -> Self:
        """Read `total` segments in parallel (DynamoDB's parallel scan)."""
        if not 1 <= total <= MAX_SCAN_SEGMENTS:
            raise ExpressionError(f".segments() takes 1 to {MAX_SCAN_SEGMENTS}, got {total}")
        return dataclasses.replace(self, total_segments=total)

    def to_request(
        self, *, segment: int | None = None, exclusive_start_key: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        table = self.entity.__dynaorm__.table
        ph = Placeholders()
        condition = and_(Path(table.type_attribute) == self.entity.__dynaorm__.name, self.filter)
        assert condition is not None
        request: dict[str, Any] = {
            "TableName": self.session.table_name(table),
            "FilterExpression": build_condition(condition, ph),
        }
        if self.total_segments > 1 and segment is not None:
            request["Segment"] = segment
            request["TotalSegments"] = self.total_segments
        if self.consistent_read:
            request["ConsistentRead"] = True
        if exclusive_start_key is not None:
            request["ExclusiveStartKey"] = dict(exclusive_start_key)
        request.update(ph.to_request())
        return request

    # -- steps (shared by the sync and the async shell) ----------------------------------

    def _pages(self, segment: int | None = None, want: int | None = None) -> Pages[E]:
        """The read of one segment (None: the whole table, as one segment)."""

        def fetch(
            key: Mapping[str, Any] | None, _: int | None
        ) -> Steps[tuple[list[dict[str, Any]], Any]]:
            # No Limit: the type filter counts evaluated items, so a Limit would only
            # add round trips.
            request = self.to_request(segment=segment, exclusive_start_key=key)
            return fetch_page("Scan", request, self.entity.__dynaorm__.name)

        return Pages(fetch, self._decode, want)

    def _decode(self, item: dict[str, Any]) -> E:
        return decode_as(self.entity, item, None)  # type: ignore[return-value]

    def _segment_steps(self, segment: int) -> Steps[list[E]]:
        """A whole segment of a parallel scan (each is read to its end)."""
        return drain(self._pages(segment))

    def _limited(self, entities: list[E]) -> list[E]:
        return entities if self.max_items is None else entities[: self.max_items]


@dataclass(frozen=True)
class Scan(_ScanCore[E]):
    """A Scan of one entity type (filtered on the type attribute), optionally parallel."""

    session: Session = field(repr=False)

    def _read_segment(self, segment: int) -> list[E]:
        return self.session._drive(self._segment_steps(segment))

    def __iter__(self) -> Iterator[E]:
        """Lazily yields typed entities; one segment is read page by page."""
        if self.total_segments == 1:
            pages = self._pages(want=self.max_items)
            while not pages.done:
                yield from self.session._drive(pages.next())
            return
        # Each segment is read to completion in its own thread, so a parallel scan holds
        # whole segments in memory; iterate a single-segment scan to stream page by page.
        returned = 0
        from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415 - on use

        with ThreadPoolExecutor(min(self.total_segments, MAX_PARALLEL_SEGMENTS)) as pool:
            futures = [
                pool.submit(self._read_segment, segment) for segment in range(self.total_segments)
            ]
            for future in futures:
                for entity in future.result():
                    yield entity
                    returned += 1
                    if self.max_items is not None and returned >= self.max_items:
                        return

    def all(self) -> list[E]:
        return list(self)


@dataclass(frozen=True)
class AsyncScan(_ScanCore[E]):
    """`Scan` for an async session: the same builders; `await .all()` or `async for`.

    Segments of a parallel scan are read concurrently as tasks on the event loop, at most
    16 at a time.
    """

    session: AsyncReads = field(repr=False)

    async def __aiter__(self) -> AsyncIterator[E]:
        """Lazily yields typed entities; one segment is read page by page."""
        if self.total_segments == 1:
            pages = self._pages(want=self.max_items)
            while not pages.done:
                for entity in await self.session._adrive(pages.next()):
                    yield entity
            return
        for entity in await self.all():
            yield entity

    async def all(self) -> list[E]:
        if self.total_segments == 1:
            return await self.session._adrive(drain(self._pages(want=self.max_items)))
        import asyncio  # noqa: PLC0415 - loaded by the running loop; not at import

        gate = asyncio.Semaphore(MAX_PARALLEL_SEGMENTS)

        async def read(segment: int) -> list[E]:
            async with gate:
                return await self.session._adrive(self._segment_steps(segment))

        segments = await asyncio.gather(*(read(s) for s in range(self.total_segments)))
        return self._limited([entity for segment in segments for entity in segment])
