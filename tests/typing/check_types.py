"""Static typing checks, run by mypy in scripts/test.sh (never executed)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parents[2] / "examples"))

from blog_models import Post, User, user_feed
from typing_extensions import assert_type

from dynaorm import (
    AsyncCollectionQuery,
    AsyncQuery,
    AsyncScan,
    AsyncSession,
    AsyncUnitOfWork,
    CollectionPage,
    CollectionQuery,
    CollectionResult,
    Entity,
    Key,
    Page,
    Query,
    Session,
)


def check(session: Session, post: Post) -> None:
    assert_type(session.get(User, user_id="u1"), User | None)
    assert_type(session.query(Post, user_id="u1"), Query[Post])
    assert_type(session.query(Post, user_id="u1").all(), list[Post])
    assert_type(session.query(Post, user_id="u1").first(), Post | None)
    assert_type(session.query(Post, user_id="u1").page(10), Page[Post])
    assert_type(session.query(Post.by_topic, topic="aws"), Query[Any])
    assert_type(session.query(Post.by_topic, topic="aws").keys(), list[Key])
    assert_type(session.collection(user_feed, user_id="u1"), CollectionResult)
    assert_type(session.collection(user_feed, user_id="u1")[Post], list[Post])
    feed = session.collection_query(user_feed, user_id="u1").reverse().limit(5)
    assert_type(feed, CollectionQuery)
    assert_type(feed.page(10), CollectionPage)
    assert_type(feed.page(10).items, list[Entity])
    assert_type(feed.page(10).result[User], list[User])
    assert_type(next(iter(feed)), Entity)
    assert_type(session.update(post, add={"likes": 1}), Post)


async def check_async_reads(session: AsyncSession, keys: list[Key]) -> None:
    query = session.query(Post, user_id="u1").reverse().limit(3)
    assert_type(query, AsyncQuery[Post])
    assert_type(await query.all(), list[Post])
    assert_type(await query.first(), Post | None)
    assert_type(await query.count(), int)
    assert_type(await query.keys(), list[Key])
    assert_type(await query.page(10), Page[Post])
    assert_type(session.query(Post.by_topic, topic="aws"), AsyncQuery[Any])
    assert_type([post async for post in query], list[Post])
    assert_type(session.scan(Post).segments(4), AsyncScan[Post])
    assert_type(await session.scan(Post).all(), list[Post])
    assert_type(await session.collection(user_feed, user_id="u1"), CollectionResult)
    feed = session.collection_query(user_feed, user_id="u1").reverse().limit(5)
    assert_type(feed, AsyncCollectionQuery)
    assert_type(await feed.page(10), CollectionPage)
    assert_type([entity async for entity in feed], list[Entity])
    assert_type(await session.batch_get(keys), list[Entity])
    assert_type(await session.batch_write(put=[], delete=keys), None)


async def check_async(session: AsyncSession, post: Post) -> None:
    assert_type(await session.get(User, user_id="u1"), User | None)
    assert_type(await session.update(post, set={"title": "x"}), Post)
    assert_type(await session.health_check(), bool)
    async with session.unit_of_work() as uow:
        assert_type(uow, AsyncUnitOfWork)
        assert_type(await uow.get(User, user_id="u1"), User | None)
