"""AsyncSession against a real engine: concurrent tasks, a unit of work, bulk."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from blog_models import Post, User, app

from dynaorm import AsyncSession
from dynaorm.errors import (
    ItemAlreadyExists,
    TransactionCanceled,
    UniqueConstraintViolation,
    VersionConflict,
)
from tests.dynamodb_local import DUMMY_KEY, DUMMY_REGION, Backend

TASKS = 16
_tables = itertools.count()


@asynccontextmanager
async def opened(backend: Backend) -> AsyncIterator[AsyncSession]:
    """An AsyncSession with the blog table under a prefix of its own, dropped after."""
    prefix = f"as{backend.run_id}_{next(_tables)}_"
    if backend.endpoint_url is None:
        session = AsyncSession.in_memory(table_prefix=prefix)
    else:
        session = AsyncSession(
            endpoint_url=backend.endpoint_url,
            table_prefix=prefix,
            region=DUMMY_REGION,
            aws_access_key_id=DUMMY_KEY,
            aws_secret_access_key=DUMMY_KEY,
        )
    async with session:
        await session.create_table(app)
        try:
            yield session
        finally:
            await session.delete_table(app)


@pytest.mark.asyncio
async def test_16_tasks_racing_a_versioned_item_lose_no_update(dynamodb_backend: Backend) -> None:
    async with opened(dynamodb_backend) as session:
        await session.create(User(user_id="u1", email="u1@x", name="0"))
        everyone_read = asyncio.Barrier(TASKS)
        conflicts = 0

        async def increment() -> None:
            nonlocal conflicts
            mine = await session.get(User, user_id="u1", consistent=True)
            await everyone_read.wait()  # all hold version 1: all but one write is stale
            while True:
                assert mine is not None
                try:
                    await session.update(mine, set={"name": str(int(mine.name) + 1)})
                    return
                except VersionConflict:
                    conflicts += 1
                    mine = await session.get(User, user_id="u1", consistent=True)

        await asyncio.gather(*(increment() for _ in range(TASKS)))

        stored = await session.get(User, user_id="u1", consistent=True)
        assert stored is not None
        assert (stored.name, stored.version) == (str(TASKS), TASKS + 1)  # no update lost
        assert conflicts >= TASKS - 1  # every stale write was refused, then retried


@pytest.mark.asyncio
async def test_16_tasks_creating_one_email_give_one_winner(dynamodb_backend: Backend) -> None:
    async with opened(dynamodb_backend) as session:

        async def create(n: int) -> str:
            user = User(user_id=f"u{n}", email="same@x", name=str(n))
            while True:
                try:
                    await session.create(user)
                    return "won"
                except UniqueConstraintViolation:
                    return "taken"
                except TransactionCanceled:
                    pass  # a conflicting transaction held the guard: a plain create does not retry

        outcomes = await asyncio.gather(*(create(n) for n in range(TASKS)))

        assert sorted(outcomes) == ["taken"] * (TASKS - 1) + ["won"]
        winner = outcomes.index("won")
        assert await session.get(User, user_id=f"u{winner}") is not None
        losers = [n for n in range(TASKS) if n != winner]
        assert [await session.get(User, user_id=f"u{n}") for n in losers] == [None] * len(losers)


@pytest.mark.asyncio
async def test_unit_of_work_commits_on_exit_and_sends_nothing_when_the_block_raises(
    dynamodb_backend: Backend,
) -> None:
    async with opened(dynamodb_backend) as session:
        await session.create(User(user_id="u1", email="u1@x", name="Ann"))
        when = datetime(2024, 5, 1, tzinfo=UTC)

        async with session.unit_of_work() as uow:
            user = await uow.get(User, user_id="u1")
            assert user is not None and await uow.get(User, user_id="u1") is user
            user.name = "Anne"
            uow.add(Post(user_id="u1", post_id="p1", title="hello", created_at=when))

        assert user.version == 2  # the committed entity carries its new version
        stored = await session.get(User, user_id="u1")
        assert stored is not None and (stored.name, stored.version) == ("Anne", 2)
        assert await session.get(Post, user_id="u1", post_id="p1", created_at=when) is not None

        with pytest.raises(RuntimeError, match="abandon"):
            await _change_then_fail(session)
        stored = await session.get(User, user_id="u1")
        assert stored is not None and stored.name == "Anne"

        stale = stored.model_copy()
        await session.update(stored, set={"name": "moved on"})
        with pytest.raises(VersionConflict):
            async with session.unit_of_work() as uow:
                await uow.put(stale)


async def _change_then_fail(session: AsyncSession) -> None:
    async with session.unit_of_work() as uow:
        again = await uow.get(User, user_id="u1")
        assert again is not None
        again.name = "never"
        raise RuntimeError("abandon")


@pytest.mark.asyncio
async def test_bulk_runs_bounded_tasks_and_reports_every_item(dynamodb_backend: Backend) -> None:
    async with opened(dynamodb_backend) as session:
        users = [User(user_id=f"u{n}", email=f"u{n}@x", name=str(n)) for n in range(40)]
        await session.create(users[0])
        running, peak = 0, 0
        call = session.transport.call

        async def tracked(operation: str, params: dict[str, Any], **context: Any) -> Any:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            try:
                return await call(operation, params, **context)
            finally:
                running -= 1

        session.transport.call = tracked
        result = await session.bulk(create=users, max_concurrency=4)
        session.transport.call = call

        assert 2 <= peak <= 4
        assert result.written == users[1:]
        assert [(f.item, type(f.error)) for f in result.failed] == [(users[0], ItemAlreadyExists)]
        for user in users:
            assert await session.get(User, user_id=user.user_id) is not None
