"""AsyncSession: the session's steps (see `_core`) awaited on an async transport."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, TypeVar

from dynaorm._async_reads import AsyncReads
from dynaorm._bulk import BulkResult, arun_bulk
from dynaorm._conditions import Condition
from dynaorm._core import Changes, SessionCore
from dynaorm._cursor import Secrets
from dynaorm._entity import Entity, Key
from dynaorm._expressions import Path
from dynaorm._io import AsyncCaller, Steps, adrive
from dynaorm._reporting import RequestEvent
from dynaorm._schema import Table
from dynaorm._telemetry import Telemetry
from dynaorm._transports import AsyncTransportLike, ThreadedTransport, async_transport
from dynaorm._unit_of_work import UnitOfWorkCore, UnitOfWorkState

__all__ = ["AsyncSession", "AsyncUnitOfWork"]

E = TypeVar("E", bound=Entity)
T = TypeVar("T")


class AsyncSession(SessionCore, AsyncReads):
    """`Session` for asyncio: the same operations, options and errors, awaited.

    Every operation runs the very steps `Session` runs (one planner, one codec, one
    retry policy); only the sending is awaited. The default transport is dynaorm's own
    client on aiohttp (extra `async`); "botocore" runs botocore on worker threads. Use
    it as `async with AsyncSession(...) as session:` or call `await session.close()`.
    Safe to share between tasks.
    """

    def __init__(
        self,
        *,
        region: str | None = None,
        endpoint_url: str | None = None,
        table_prefix: str | None = None,
        cursor_secret: Secrets = None,
        aws_access_key_id: str | None = None,
        aws_secret_access_key: str | None = None,
        aws_session_token: str | None = None,
        max_retry_attempts: int | None = None,
        batch_attempts: int = 8,
        on_request: Callable[[RequestEvent], None] | None = None,
        telemetry: Telemetry | bool = False,
        transport: AsyncTransportLike | str | None = None,
    ) -> None:
        self._transport: AsyncTransportLike
        if transport is None or isinstance(transport, str):
            self._transport = async_transport(
                transport,
                region=region,
                endpoint_url=endpoint_url,
                table_prefix=table_prefix,
                aws_access_key_id=aws_access_key_id,
                aws_secret_access_key=aws_secret_access_key,
                aws_session_token=aws_session_token,
                max_retry_attempts=max_retry_attempts,
            )
        else:
            self._transport = transport
        self._attach(
            self._transport,
            cursor_secret=cursor_secret,
            batch_attempts=batch_attempts,
            on_request=on_request,
            telemetry=telemetry,
        )

    @classmethod
    def in_memory(cls, **options: Any) -> AsyncSession:
        """An async session on moto's in-process DynamoDB (extra `memory`), shared with
        `Session.in_memory()`; requests run on worker threads, off the event loop."""
        from dynaorm._transport import Transport  # noqa: PLC0415  (moto patches botocore)

        transport_options = {k: options.pop(k) for k in ("table_prefix", "region") if k in options}
        threaded = ThreadedTransport(Transport.in_memory(**transport_options))
        return cls(transport=threaded, **options)

    # -- plumbing ---------------------------------------------------------------------

    @property
    def transport(self) -> AsyncTransportLike:
        return self._transport

    @property
    def stats(self) -> Any:
        """Calls and consumed capacity per operation."""
        return self._transport.stats

    def table_name(self, table: Table) -> str:
        """The physical name of `table` (with the session's prefix)."""
        name: str = self._transport.table_name(table.name)
        return name

    async def _adrive(self, steps: Steps[T]) -> T:
        """Run steps of the core on this session's transport."""
        caller: AsyncCaller = self._transport
        return await adrive(steps, caller)

    async def close(self) -> None:
        """Release the transport's connections (and threads)."""
        closed = self._transport.close()
        if inspect.isawaitable(closed):
            await closed

    async def __aenter__(self) -> AsyncSession:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    # -- tables -----------------------------------------------------------------------

    async def create_table(
        self, table: Table, *, wait: bool = True, exists_ok: bool = False
    ) -> None:
        """Create `table` from its compiled schema; wait until it and its GSIs are ACTIVE."""
        await self._adrive(self._create_table_steps(table, wait=wait, exists_ok=exists_ok))

    async def delete_table(self, table: Table) -> None:
        await self._adrive(self._delete_table_steps(table))

    async def drift(self, table: Table) -> list[str]:
        """Differences between the compiled schema and the live table (empty: none)."""
        return await self._adrive(self._drift_steps(table))

    async def health_check(self, table: Table | None = None) -> bool:
        """True when the endpoint answers and, if given, `table` is ACTIVE."""
        return await self._adrive(self._health_steps(table))

    # -- single items -----------------------------------------------------------------

    async def get(
        self,
        entity: type[E],
        *,
        consistent: bool = False,
        projection: Iterable[Path | str] | None = None,
        **slots: Any,
    ) -> E | None:
        """The entity with this key, or None. With `projection`, a dict of those attributes."""
        steps = self._get_steps(entity, slots, consistent=consistent, projection=projection)
        return await self._adrive(steps)

    async def put(self, entity: Entity, *, condition: Condition | None = None) -> None:
        """Write the whole item (replacing any), keeping version and unique guarantees."""
        await self._adrive(self._put_steps(entity, create=False, condition=condition))

    async def create(self, entity: Entity, *, condition: Condition | None = None) -> None:
        """Write a new item; `ItemAlreadyExists` if one with the same key exists."""
        await self._adrive(self._put_steps(entity, create=True, condition=condition))

    async def update(
        self,
        target: E | Key,
        *,
        set: Mapping[str | Path, Any] | None = None,
        add: Mapping[str | Path, Any] | None = None,
        remove: Iterable[str | Path] = (),
        append: Mapping[str | Path, Any] | None = None,
        delete: Mapping[str | Path, Any] | None = None,
        if_not_exists: Mapping[str | Path, Any] | None = None,
        condition: Condition | None = None,
        composite: Mapping[str, Any] | None = None,
    ) -> E:
        """Change some attributes of an existing item and return the updated entity."""
        changes = Changes(set, add, remove, append, delete, if_not_exists)
        return await self._adrive(self._update_steps(target, changes, condition, composite))

    async def delete(self, target: Entity | Key, *, condition: Condition | None = None) -> None:
        """Delete the item (no error if it does not exist, unless a condition says so)."""
        await self._adrive(self._delete_steps(target, condition))

    async def bulk(
        self,
        create: Iterable[Entity] = (),
        put: Iterable[Entity] = (),
        delete: Iterable[Entity | Key] = (),
        *,
        max_concurrency: int = 8,
    ) -> BulkResult:
        """`Session.bulk` as asyncio tasks, at most `max_concurrency` writing at a time."""
        jobs = self._bulk_jobs(create, put, delete)
        retry = self._batches.retry
        return await arun_bulk(
            jobs, max_concurrency=max_concurrency, retry=retry, adrive=self._adrive
        )

    def unit_of_work(self) -> AsyncUnitOfWork:
        """A unit of work: `async with session.unit_of_work() as uow:` commits on exit."""
        return AsyncUnitOfWork(self)


class AsyncUnitOfWork(UnitOfWorkCore):
    """`UnitOfWork` for an `AsyncSession`: the same logic, its reads and commit awaited.

    `get`, `get_many`, `put`, `delete`, `update` and `commit` may read or write, so they
    are awaited; `add`, `check` and `rollback` never send anything and are plain calls.
    `async with session.unit_of_work() as uow:` commits on a clean exit and sends
    nothing if the block raises.
    """

    def __init__(self, session: AsyncSession, **options: Any) -> None:
        super().__init__(session, **options)
        self._host = session

    async def __aenter__(self) -> AsyncUnitOfWork:
        self._require_active()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._state is not UnitOfWorkState.ACTIVE:
            return  # committed or rolled back explicitly inside the block
        if exc_type is None:
            await self.commit()
        else:
            self.rollback()

    async def get(self, entity: type[E], **slots: Any) -> E | None:
        """The tracked entity with this key (one consistent read the first time), or None."""
        return await self._host._adrive(self._get_steps(entity, slots))

    async def get_many(self, keys: Iterable[Key]) -> list[Entity]:
        """The entities found for `keys`, in key order, read as one consistent snapshot."""
        return await self._host._adrive(self._get_many_steps(keys))

    async def put(self, entity: Entity, *, condition: Condition | None = None) -> None:
        """Write the whole item at commit (a unique-guarded entity is read first)."""
        await self._host._adrive(self._put_steps(entity, condition))

    async def delete(self, target: Entity | Key, *, condition: Condition | None = None) -> None:
        """Delete the item at commit (with its unique guards; version-checked if loaded)."""
        await self._host._adrive(self._delete_steps(target, condition))

    async def update(
        self,
        target: Entity | Key,
        *,
        set: Mapping[str | Path, Any] | None = None,
        add: Mapping[str | Path, Any] | None = None,
        remove: Iterable[str | Path] = (),
        append: Mapping[str | Path, Any] | None = None,
        delete: Mapping[str | Path, Any] | None = None,
        if_not_exists: Mapping[str | Path, Any] | None = None,
        condition: Condition | None = None,
        composite: Mapping[str, Any] | None = None,
    ) -> None:
        """An explicit update at commit, like `AsyncSession.update`."""
        changes = Changes(set, add, remove, append, delete, if_not_exists)
        await self._host._adrive(self._update_steps(target, changes, condition, composite))

    async def commit(self) -> None:
        """Send every change as one TransactWriteItems (nothing to do: nothing sent)."""
        await self._host._adrive(self._commit_steps())
