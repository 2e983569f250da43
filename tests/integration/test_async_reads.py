"""Reads of many items through the async shell, on both backends: the same results and
requests as the sync session, pages and cursors across shells, batches with leftovers."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator
from contextlib import aclosing
from typing import Any

import pytest
from blog_models import Post, User, user_feed

from dynaorm import AsyncSession, Entity, Session
from dynaorm.errors import InvalidCursor, Throttled
from tests.async_host import async_twin
from tests.dynamodb_local import Backend

from .conftest import Recorder
from .test_batches import LeaveOver, posts
from .test_index_collections import Account, Issue, Repository, owned, vc
from .test_queries import seed

pytestmark = pytest.mark.asyncio


@pytest.fixture
def host(session: Session, dynamodb_backend: Backend) -> AsyncSession:
    if dynamodb_backend.transport == "async":
        pytest.skip("compares Session with AsyncSession: under --transport=async both are async")
    return async_twin(session)


@pytest.fixture
def vc_table(session: Session) -> Iterator[None]:
    session.create_table(vc)
    yield
    session.delete_table(vc)


async def test_queries_read_what_the_sync_session_reads(
    session: Session, host: AsyncSession, recorder: Recorder
) -> None:
    written = seed(session, 12)
    recorder.clear()
    synced = session.query(Post, user_id="u1").where(Post.likes >= 2).reverse().all()
    sync_calls, recorder.calls = list(recorder.calls), []

    read = await host.query(Post, user_id="u1").where(Post.likes >= 2).reverse().all()

    assert read == synced == written[2:][::-1]
    assert recorder.calls == sync_calls
    assert await host.query(Post, user_id="u1").count() == 12
    assert await host.query(Post, user_id="u1").first() == written[0]
    assert await host.query(Post, user_id="u2").first() is None
    keys = await host.query(Post.by_topic, topic="aws").keys()
    assert keys == [p.get_key() for p in written if p.topic == "aws"]
    assert await host.batch_get(keys) == [p for p in written if p.topic == "aws"]


async def test_pages_and_cursors_cross_shells(session: Session, host: AsyncSession) -> None:
    written = seed(session, 12)
    seen: list[Post] = []
    cursor: str | None = None
    for turn in range(3):
        if turn % 2:
            page = session.query(Post, user_id="u1").page(5, cursor=cursor)
        else:
            page = await host.query(Post, user_id="u1").page(5, cursor=cursor)
        seen += page.items
        cursor = page.cursor

    assert seen == written and cursor is None
    first = await host.query(Post, user_id="u1").page(5)
    assert first.cursor is not None
    with pytest.raises(InvalidCursor):  # another partition
        await host.query(Post, user_id="u2").page(5, cursor=first.cursor)
    with pytest.raises(InvalidCursor):  # another query
        session.query(Post, user_id="u1").reverse().page(5, cursor=first.cursor)


async def test_async_iteration_reads_a_page_at_a_time(
    session: Session, host: AsyncSession, recorder: Recorder
) -> None:
    written = seed(session, 3)
    recorder.clear()

    async with aclosing(host.query(Post, user_id="u1").__aiter__()) as entities:
        first = await anext(entities)

    assert first == written[0]
    assert recorder.operations() == ["Query"]
    assert [p async for p in host.query(Post.by_topic, topic="aws")] == [written[0]]


async def test_scans_in_segments(session: Session, host: AsyncSession) -> None:
    session.create(User(user_id="u1", email="a@x", name="Ann"))
    written = seed(session, 9)

    parallel = await host.scan(Post).segments(3).where(Post.likes > 4).all()
    streamed = [p async for p in host.scan(Post)]

    assert sorted(p.post_id for p in parallel) == [p.post_id for p in written[5:]]
    assert sorted(streamed, key=lambda p: p.post_id) == written
    assert [type(u) async for u in host.scan(User)] == [User]


async def test_collections_page_across_shells(session: Session, host: AsyncSession) -> None:
    ann = User(user_id="u1", email="a@x", name="Ann")
    session.create(ann)
    written = seed(session, 7)
    seed(session, 2, user_id="u2")

    whole = await host.collection(user_feed, user_id="u1")
    first = await host.collection_query(user_feed, user_id="u1").reverse().page(4)
    rest = session.collection_query(user_feed, user_id="u1").reverse().page(4, first.cursor)
    members = [e async for e in host.collection_query(user_feed, user_id="u1").limit(3)]

    assert whole[User] == [ann] and whole[Post] == written
    assert first.items + rest.items == [ann, *written[::-1]]
    # DynamoDB hands back a LastEvaluatedKey when a Limit ends exactly on the last item:
    # then the cursor leads to an empty last page.
    if rest.cursor is not None:
        end = await host.collection_query(user_feed, user_id="u1").reverse().page(4, rest.cursor)
        assert end.items == [] and end.cursor is None
    assert members == written[:3]  # POST# sorts before PROFILE


async def test_collections_on_a_gsi(session: Session, host: AsyncSession, vc_table: None) -> None:
    ann = Account(owner="ann", name="Ann")
    repos = [Repository(owner="ann", repo=name) for name in ("a", "b")]
    start = dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc)
    issues = [
        Issue(repo_owner="bob", repo="x", number=n, owner="ann", opened=start + dt.timedelta(n))
        for n in (1, 2)
    ]
    strangers: list[Entity] = [Account(owner="bo", name="Bo"), Repository(owner="bob", repo="a")]
    session.batch_write(put=[ann, *repos, *issues, *strangers])

    result = await host.collection(owned, owner="ann")
    page = await host.collection_query(owned, owner="ann").page(2)
    rest = await host.collection_query(owned, owner="ann").page(9, cursor=page.cursor)

    assert result[Account] == [ann] and result[Repository] == repos and result[Issue] == issues
    assert len(page.items) == 2 and len(rest.items) == 3 and rest.cursor is None  # no Limit hit
    assert session.collection(owned, owner="ann")[Issue] == result[Issue]


async def test_batches_retry_leftovers(session: Session, host: AsyncSession) -> None:
    delays: list[float] = []
    host._batches.retry.sleep = delays.append
    written = posts(60)
    LeaveOver(session, keep=10, rounds=4)

    await host.batch_write(put=written)
    found = await host.batch_get([p.get_key() for p in written[:30]])

    assert await host.query(Post, user_id="u1").count() == 60
    assert found == written[:30]
    assert delays  # leftovers were waited for with the runner's backoff, then resent
    await host.batch_write(delete=written)
    assert await host.query(Post, user_id="u1").all() == []


async def test_concurrent_readers_each_get_their_own_partition(
    session: Session, host: AsyncSession
) -> None:
    written = {f"u{n}": seed(session, 3 + n % 4, user_id=f"u{n}") for n in range(16)}

    async def read(user_id: str) -> list[Post]:
        return [p async for p in host.query(Post, user_id=user_id)]

    results = await asyncio.gather(*(read(user_id) for user_id in written))
    pages = await asyncio.gather(*(host.query(Post, user_id=u).page(2) for u in written))

    assert dict(zip(written, results, strict=True)) == written
    assert [page.items for page in pages] == [posts[:2] for posts in written.values()]


async def test_a_throttled_batch_is_resent_after_a_pause(
    session: Session, host: AsyncSession
) -> None:
    delays: list[float] = []
    host._batches.retry.sleep = delays.append
    real = session.transport.call
    throttled: list[str] = []

    def call(operation: str, params: dict[str, Any], **context: Any) -> dict[str, Any]:
        if operation == "BatchWriteItem" and not throttled:
            throttled.append(operation)
            raise Throttled("slow down", operation=operation)
        return real(operation, params, **context)

    session.transport.call = call  # type: ignore[method-assign]
    await host.batch_write(put=posts(5))

    assert throttled and len(delays) == 1
    assert await host.query(Post, user_id="u1").count() == 5
