"""Queries, pagination cursors, collections and scans on the embedded backend."""

from __future__ import annotations

import datetime as dt

import pytest
from blog_models import Post, User, user_feed

from dynaorm import Session
from dynaorm.errors import ExpressionError, InvalidCursor

from .conftest import Recorder

UTC = dt.timezone.utc
START = dt.datetime(2024, 5, 1, tzinfo=UTC)


def seed(session: Session, count: int = 12, user_id: str = "u1") -> list[Post]:
    posts = [
        Post(
            user_id=user_id,
            post_id=f"p{n:02d}",
            title=f"Post {n}",
            created_at=START + dt.timedelta(days=n),
            likes=n,
            topic="aws" if n % 3 == 0 else None,
        )
        for n in range(count)
    ]
    session.batch_write(put=posts)
    return posts


def test_query_returns_only_the_entity_in_order(session: Session) -> None:
    session.create(User(user_id="u1", email="a@x", name="Ann"))
    posts = seed(session)
    result = session.query(Post, user_id="u1").all()
    assert result == posts
    assert session.query(Post, user_id="u1").reverse().all() == posts[::-1]


def test_query_request_is_exact(session: Session, recorder: Recorder) -> None:
    seed(session, 3)
    recorder.clear()
    session.query(Post, user_id="u1").where(Post.likes >= 1).reverse().all()
    assert recorder.calls == [
        (
            "Query",
            {
                "TableName": session.table_name(Post.__dynaorm__.table),
                "KeyConditionExpression": "#n0 = :v0 AND begins_with(#n1, :v1)",
                "FilterExpression": "#n2 >= :v2",
                "ScanIndexForward": False,
                "ExpressionAttributeNames": {"#n0": "PK", "#n1": "SK", "#n2": "likes"},
                "ExpressionAttributeValues": {
                    ":v0": {"S": "USER#u1"},
                    ":v1": {"S": "POST#"},
                    ":v2": {"N": "1"},
                },
            },
        )
    ]


def test_sort_key_ranges(session: Session) -> None:
    posts = seed(session)
    query = session.query(Post, user_id="u1")
    lo, hi = posts[3].created_at, posts[6].created_at
    assert query.between(created_at=(lo, hi)).all() == posts[3:7]
    assert query.gt(created_at=lo).all() == posts[4:]
    assert query.ge(created_at=lo).all() == posts[3:]
    assert query.lt(created_at=lo).all() == posts[:3]
    assert query.le(created_at=lo).all() == posts[:4]
    assert query.begins_with(created_at="2024-05-0").all() == posts[:9]
    with pytest.raises(ExpressionError, match="one sort-key condition"):
        query.gt(created_at=lo).lt(created_at=hi)


def test_limit_counts_returned_items_and_first_reads_one_page(
    session: Session, recorder: Recorder
) -> None:
    posts = seed(session)
    recorder.clear()
    assert session.query(Post, user_id="u1").limit(5).all() == posts[:5]
    assert recorder.operations() == ["Query"]
    assert recorder.calls[0][1]["Limit"] == 5
    recorder.clear()
    assert session.query(Post, user_id="u1").first() == posts[0]
    assert recorder.operations() == ["Query"]
    # With a filter, limit means matching items returned, however many were read.
    evens = session.query(Post, user_id="u1").where(Post.likes >= 7).limit(3).all()
    assert evens == posts[7:10]


def test_count(session: Session) -> None:
    seed(session)
    assert session.query(Post, user_id="u1").count() == 12
    assert session.query(Post, user_id="u1").where(Post.likes > 9).count() == 2


def test_count_of_a_projected_query(session: Session, recorder: Recorder) -> None:
    # The projection's names must not ride along into a Select=COUNT request: DynamoDB
    # refuses unused ExpressionAttributeNames.
    seed(session)
    recorder.clear()
    query = session.query(Post, user_id="u1").project("title").where(Post.likes > 9)
    assert query.count() == 2
    (operation, params), *_ = recorder.calls
    assert operation == "Query"
    assert "ProjectionExpression" not in params
    assert params["Select"] == "COUNT"
    assert params["ExpressionAttributeNames"] == {"#n0": "PK", "#n1": "SK", "#n2": "likes"}


def test_pages_and_cursors(session: Session) -> None:
    posts = seed(session, 7)
    query = session.query(Post, user_id="u1")
    seen: list[Post] = []
    page = query.page(3)
    pages = 1
    while page.cursor is not None:
        seen += page.items
        page = query.page(3, cursor=page.cursor)
        pages += 1
    seen += page.items
    assert seen == posts
    assert pages == 3


def test_tampered_and_foreign_cursors_are_refused(session: Session) -> None:
    seed(session, 5)
    seed(session, 5, user_id="u2")
    cursor = session.query(Post, user_id="u1").page(2).cursor
    assert cursor is not None
    with pytest.raises(InvalidCursor):
        session.query(Post, user_id="u2").page(2, cursor=cursor)
    with pytest.raises(InvalidCursor):
        session.query(Post, user_id="u1").where(Post.likes > 1).page(2, cursor=cursor)
    tampered = cursor[:-2] + ("A" if cursor[-2] != "A" else "B") + cursor[-1]
    with pytest.raises(InvalidCursor):
        session.query(Post, user_id="u1").page(2, cursor=tampered)
    with pytest.raises(InvalidCursor):
        session.query(Post, user_id="u1").page(2, cursor="not a cursor")


def test_sparse_index_query(session: Session) -> None:
    posts = seed(session)
    on_topic = session.query(Post.by_topic, topic="aws").all()
    assert on_topic == [p for p in posts if p.topic == "aws"]
    newest = session.query(Post.by_topic, topic="aws").reverse().first()
    assert newest == on_topic[-1]
    found = session.query(Post.by_post, post_id="p04").all()
    assert found == [posts[4]]


def test_collection_is_one_query(session: Session, recorder: Recorder) -> None:
    ann = User(user_id="u1", email="a@x", name="Ann")
    session.create(ann)
    posts = seed(session, 4)
    recorder.clear()
    result = session.collection(user_feed, user_id="u1")
    assert recorder.operations() == ["Query"]
    assert result[User] == [ann]
    assert result[Post] == posts


def test_collection_skips_undeclared_types(session: Session) -> None:
    session.create(User(user_id="u1", email="a@x", name="Ann"))
    session.transport.call(
        "PutItem",
        {
            "TableName": session.table_name(User.__dynaorm__.table),
            "Item": {"PK": {"S": "USER#u1"}, "SK": {"S": "ZZZ"}, "_type": {"S": "Legacy"}},
        },
    )
    result = session.collection(user_feed, user_id="u1")
    assert len(result[User]) == 1 and result[Post] == []


def test_scan_filters_on_type_and_runs_segments(session: Session) -> None:
    session.create(User(user_id="u1", email="a@x", name="Ann"))
    posts = seed(session, 9)
    scanned = session.scan(Post).all()
    assert sorted(scanned, key=lambda p: p.post_id) == posts
    parallel = session.scan(Post).segments(3).where(Post.likes > 4).all()
    assert sorted(p.post_id for p in parallel) == [p.post_id for p in posts[5:]]
    assert [type(u) for u in session.scan(User)] == [User]


def test_iteration_is_lazy(session: Session, recorder: Recorder) -> None:
    seed(session, 3)
    recorder.clear()
    iterator = iter(session.query(Post, user_id="u1"))
    assert recorder.calls == []
    next(iterator)
    assert recorder.operations() == ["Query"]


def test_query_needs_partition_slots(session: Session) -> None:
    with pytest.raises(Exception, match="user_id"):
        session.query(Post).all()


def test_projection_returns_dicts(session: Session, recorder: Recorder) -> None:
    seed(session, 2)
    recorder.clear()
    rows = session.query(Post, user_id="u1").project(Post.title, "likes").all()
    assert rows == [{"title": "Post 0", "likes": 0}, {"title": "Post 1", "likes": 1}]
    assert recorder.calls[0][1]["ProjectionExpression"] == "#n2, #n3, #n0, #n1"
    first = session.query(Post, user_id="u1").project("title").page(1)
    assert first.items == [{"title": "Post 0"}]
    assert first.cursor is not None
    second = session.query(Post, user_id="u1").project("title").page(1, cursor=first.cursor)
    assert second.items == [{"title": "Post 1"}]
