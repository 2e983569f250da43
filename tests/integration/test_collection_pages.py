"""Collections in either order, bounded, lazily iterated and paged with bound cursors."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import itertools
import json
from collections.abc import Iterator
from typing import Any

import pytest
from blog_models import Post, User, user_feed
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dynaorm import Collection, CollectionQuery, Entity, Session
from dynaorm.errors import ExpressionError, InvalidCursor
from tests.dynamodb_local import Backend

from .conftest import Recorder
from .test_queries import START, seed

IO = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture
def unsigned(dynamodb_backend: Backend, session: Session) -> Iterator[Session]:
    """A second session on the same tables, without a cursor secret."""
    other = dynamodb_backend.session(table_prefix=session.transport.table_prefix)
    yield other
    other.transport.close()


def _foreign(session: Session, sort_key: str, user_id: str = "u1") -> None:
    """An item of a type the table does not declare, inside the collection's key range."""
    session.transport.call(
        "PutItem",
        {
            "TableName": session.table_name(User.__dynaorm__.table),
            "Item": {
                "PK": {"S": f"USER#{user_id}"},
                "SK": {"S": sort_key},
                "_type": {"S": "Legacy"},
            },
        },
    )


def _sort_key(entity: Entity) -> str:
    return type(entity).__dynaorm__.sk.encode(vars(entity))


def _world(session: Session, posts: int = 9) -> list[Entity]:
    """u1's feed (a user, posts, foreign items among them) and a neighbour partition u2."""
    ann = User(user_id="u1", email="a@x", name="Ann")
    session.create(ann)
    written = seed(session, posts)
    seed(session, 3, user_id="u2")
    _foreign(session, _sort_key(written[posts // 2]) + "#legacy")
    _foreign(session, "PZZ")
    members: list[Entity] = [ann, *written]
    return sorted(members, key=_sort_key)


def _payload(cursor: str) -> dict[str, Any]:
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    payload: dict[str, Any] = json.loads(raw)
    return payload


def _edited(cursor: str, **key: Any) -> str:
    payload = _payload(cursor)
    payload["k"].update(key)
    raw = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_paging_at_any_size_equals_reading_whole_in_both_directions(session: Session) -> None:
    expected = _world(session)
    whole = session.collection(user_feed, user_id="u1")
    assert whole[User] == [e for e in expected if isinstance(e, User)]
    assert whole[Post] == [e for e in expected if isinstance(e, Post)]

    @IO
    @given(size=st.integers(1, 12), reverse=st.booleans())
    def check(size: int, reverse: bool) -> None:
        query = session.collection_query(user_feed, user_id="u1")
        if reverse:
            query = query.reverse()
        read: list[Entity] = []
        cursor: str | None = None
        for _ in range(len(expected) + 2):
            page = query.page(size, cursor)
            assert len(page.items) <= size
            assert page.result[User] + page.result[Post] == sorted(
                page.items, key=lambda e: isinstance(e, Post)
            )
            read.extend(page.items)
            cursor = page.cursor
            if cursor is None:
                break
        assert cursor is None
        assert read == (expected[::-1] if reverse else expected)
        assert list(query) == read

    check()


def test_reverse_page_payloads(session: Session, recorder: Recorder) -> None:
    members = _world(session, posts=4)
    recorder.clear()
    page = session.collection_query(user_feed, user_id="u1").reverse().page(2)
    assert page.items == members[::-1][:2] and page.cursor is not None
    table = session.table_name(User.__dynaorm__.table)
    request = {
        "TableName": table,
        "KeyConditionExpression": "#n0 = :v0 AND begins_with(#n1, :v1)",
        "ScanIndexForward": False,
        "Limit": 2,
        "ExpressionAttributeNames": {"#n0": "PK", "#n1": "SK"},
        "ExpressionAttributeValues": {":v0": {"S": "USER#u1"}, ":v1": {"S": "P"}},
    }
    # Newest first the foreign "PZZ" comes first: skipped, so one more item is asked for.
    resumed = {
        **request,
        "Limit": 1,
        "ExclusiveStartKey": {"PK": {"S": "USER#u1"}, "SK": {"S": "PROFILE"}},
    }
    assert recorder.calls == [("Query", request), ("Query", resumed)]


def test_limit_counts_members_and_iteration_is_lazy(session: Session, recorder: Recorder) -> None:
    members = _world(session, posts=4)
    recorder.clear()
    query = session.collection_query(user_feed, user_id="u1").reverse().limit(2)
    iterator = iter(query)
    assert recorder.calls == []
    # Reversed, the first item read is the foreign "PZZ": it is skipped, not counted.
    assert list(iterator) == members[::-1][:2]
    assert [params.get("Limit") for _, params in recorder.calls] == [2, 1]
    result = query.all()
    assert result[User] == [members[-1]] and result[Post] == [members[-2]]
    assert len(result) == 2


def test_single_member_collection_reads_only_its_prefix(
    session: Session, recorder: Recorder
) -> None:
    posts_only = Collection(Post, name="posts")
    members = _world(session, posts=3)
    recorder.clear()
    page = session.collection_query(posts_only, user_id="u1").page(10)
    assert page.items == [m for m in members if isinstance(m, Post)] and page.cursor is None
    (_, params), *_ = recorder.calls
    assert params["ExpressionAttributeValues"][":v1"] == {"S": "POST#"}


def test_cursor_is_bound_to_collection_partition_and_direction(session: Session) -> None:
    _world(session)
    seed(session, 1, user_id="u2")
    query = session.collection_query(user_feed, user_id="u1")
    cursor = query.page(3).cursor
    assert cursor is not None
    others = [
        session.collection_query(user_feed, user_id="u2"),
        query.reverse(),
        session.collection_query(Collection(Post, User), user_id="u1").reverse().reverse(),
    ]
    for other in others[:2]:
        with pytest.raises(InvalidCursor, match="different query or partition"):
            other.page(3, cursor)
    # Same members in another order: the same collection, the cursor resumes.
    assert others[2].page(3, cursor).items == query.page(6).items[3:]
    post_cursor = session.query(Post, user_id="u1").page(2).cursor
    assert post_cursor is not None
    with pytest.raises(InvalidCursor):
        query.page(3, post_cursor)
    with pytest.raises(InvalidCursor, match="altered, forged"):
        query.page(3, cursor[:-2] + ("A" if cursor[-2] != "A" else "B") + cursor[-1])


def test_unsigned_cursor_is_bound_to_the_partition_and_member_keys(unsigned: Session) -> None:
    members = _world(unsigned)
    query = unsigned.collection_query(user_feed, user_id="u1")
    first = query.page(3)
    assert first.cursor is not None
    with pytest.raises(InvalidCursor, match="another partition"):
        query.page(3, _edited(first.cursor, PK={"S": "USER#u2"}))
    with pytest.raises(InvalidCursor, match="outside collection"):
        query.page(3, _edited(first.cursor, SK={"S": "A"}))
    with pytest.raises(InvalidCursor, match="not the key of any member"):
        query.page(3, _edited(first.cursor, SK={"S": "PZZ"}))
    with pytest.raises(InvalidCursor, match="string attributes"):
        query.page(3, _edited(first.cursor, SK={"N": "1"}))
    # An edit that stays on a member key of the range only moves within the collection.
    moved = _edited(first.cursor, SK={"S": _sort_key(members[5])})
    assert query.page(2, moved).items == members[6:8]


def test_second_writer_between_pages(session: Session, unsigned: Session) -> None:
    members = _world(session, posts=6)
    query = session.collection_query(user_feed, user_id="u1")
    first = query.page(3)
    assert first.items == members[:3] and first.cursor is not None
    # Another writer deletes the item the cursor points at and adds one after it.
    unsigned.delete(members[2])
    late = Post(user_id="u1", post_id="late", title="Late", created_at=START + dt.timedelta(30))
    unsigned.put(late)
    rest: list[Entity] = []
    cursor: str | None = first.cursor
    while cursor is not None:
        page = query.page(3, cursor)
        rest.extend(page.items)
        cursor = page.cursor
    assert rest == sorted([*members[3:], late], key=_sort_key)


def test_bad_arguments_are_refused_before_sending(session: Session, recorder: Recorder) -> None:
    query = session.collection_query(user_feed, user_id="u1")
    with pytest.raises(ExpressionError, match="positive size"):
        query.page(0)
    with pytest.raises(ExpressionError, match="positive count"):
        query.limit(0)
    with pytest.raises(ExpressionError, match="post_id"):
        session.collection_query(user_feed, user_id="u1", post_id="p1").page(1)
    with pytest.raises(InvalidCursor):
        query.page(2, "not a cursor")
    assert recorder.calls == []


def test_foreign_items_after_the_last_member_cost_one_empty_page(session: Session) -> None:
    members = _world(session, posts=2)
    query = session.collection_query(user_feed, user_id="u1")
    page = query.page(len(members))
    # DynamoDB stopped at the page's Limit, before the foreign "PZZ": it cannot tell the
    # partition ends there, so the page carries a cursor and the next page is empty.
    assert page.items == members and page.cursor is not None
    last = query.page(len(members), page.cursor)
    assert last.items == [] and last.cursor is None


def test_declared_types_outside_the_collection_are_skipped(session: Session) -> None:
    members = _world(session, posts=3)
    query = session.collection_query(Collection(Post), user_id="u1")
    plan = query.plan()
    # A plan whose key range also holds User items (as a GSI collection's plan can).
    (member,) = plan.members
    wide = dataclasses.replace(plan, members=(dataclasses.replace(member, sk_prefix=""),))
    query.__dict__["_plan"] = wide
    assert query.to_request()["KeyConditionExpression"] == "#n0 = :v0"
    posts = [m for m in members if isinstance(m, Post)]
    assert list(query) == posts
    page = query.page(len(posts))
    assert page.items == posts and page.result[Post] == posts


def test_paging_any_partition_equals_an_in_memory_oracle(session: Session) -> None:
    partitions = itertools.count()
    foreign_keys = st.lists(st.sampled_from(["A", "POST#", "POST#~", "PROFILE#x", "PZ", "Q"]))

    @IO
    @given(
        posts=st.integers(0, 6),
        with_user=st.booleans(),
        foreign=foreign_keys,
        size=st.integers(1, 4),
        reverse=st.booleans(),
    )
    def check(posts: int, with_user: bool, foreign: list[str], size: int, reverse: bool) -> None:
        user_id = f"p{next(partitions)}"
        members: list[Entity] = list(seed(session, posts, user_id=user_id)) if posts else []
        if with_user:
            user = User(user_id=user_id, email=f"{user_id}@x", name="N")
            session.create(user)
            members.append(user)
        for sort_key in foreign:
            _foreign(session, sort_key, user_id=user_id)
        oracle = sorted(members, key=_sort_key, reverse=reverse)
        query = session.collection_query(user_feed, user_id=user_id)
        query = query.reverse() if reverse else query
        read: list[Entity] = []
        page = query.page(size)
        read.extend(page.items)
        while page.cursor is not None:
            page = query.page(size, page.cursor)
            read.extend(page.items)
        assert read == oracle
        assert list(query.limit(size)) == oracle[:size]

    check()


def test_consistent_reads_on_the_base_table_only(session: Session, recorder: Recorder) -> None:
    members = _world(session, posts=2)
    recorder.clear()
    query = session.collection_query(user_feed, user_id="u1").consistent()
    assert query.page(2).items == members[:2]
    assert [params.get("ConsistentRead") for _, params in recorder.calls] == [True]
    on_index = session.collection_query(user_feed, user_id="u1")
    on_index.__dict__["_plan"] = dataclasses.replace(on_index.plan(), index_name="gsi1")
    with pytest.raises(ExpressionError, match="gsi1"):
        on_index.consistent()


def test_a_response_longer_than_asked_is_cut_at_the_page_size(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    members = _world(session, posts=5)
    original = CollectionQuery.to_request

    def unbounded(query: CollectionQuery, **options: Any) -> dict[str, Any]:
        return original(query, **{**options, "limit": None})

    monkeypatch.setattr(CollectionQuery, "to_request", unbounded)
    query = session.collection_query(user_feed, user_id="u1")
    first = query.page(2)
    assert first.items == members[:2] and first.cursor is not None
    assert query.page(10, first.cursor).items == members[2:]
    assert list(query.limit(3)) == members[:3]
