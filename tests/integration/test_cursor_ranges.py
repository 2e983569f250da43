"""Unsigned cursors are bound to their query's exact key range; sealed ones to every byte."""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest
from blog_models import Post

from dynaorm import Session
from dynaorm._compiler import schema_of
from dynaorm.errors import InvalidCursor
from tests.dynamodb_local import Backend

from .test_queries import START, seed


@pytest.fixture
def unsigned(dynamodb_backend: Backend, session: Session) -> Iterator[Session]:
    """A second session on the same tables, without a cursor secret."""
    other = dynamodb_backend.session(table_prefix=session.transport.table_prefix)
    yield other
    other.transport.close()


def _payload(cursor: str) -> dict[str, Any]:
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    payload: dict[str, Any] = json.loads(raw)
    return payload


def _edited(cursor: str, **key: Any) -> str:
    """The cursor a client gets by editing the LastEvaluatedKey it can read."""
    payload = _payload(cursor)
    for name, value in key.items():
        if value is None:
            del payload["k"][name]
        else:
            payload["k"][name] = value
    raw = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _post_sk(post: Post) -> dict[str, str]:
    return {"S": Post.__dynaorm__.sk.encode(vars(post))}


def test_unsigned_cursor_outside_the_query_range_is_refused(unsigned: Session) -> None:
    posts = seed(unsigned, 12)
    seed(unsigned, 12, user_id="u2")
    window = (START + dt.timedelta(days=2), START + dt.timedelta(days=6))
    query = unsigned.query(Post, user_id="u1").between(created_at=window)
    page = query.page(2)
    assert page.items == posts[2:4] and page.cursor is not None
    # Editing the sort key past the range would skip to items the query never selects.
    for outside in (posts[9], posts[0]):
        with pytest.raises(InvalidCursor, match="range"):
            query.page(2, cursor=_edited(page.cursor, SK=_post_sk(outside)))
    # Another partition, a key no Post can have, an extra or a missing attribute.
    for edit in (
        {"PK": {"S": "USER#u2"}},
        {"SK": {"S": "POST#x"}},
        {"SK": {"N": "1"}},
        {"GSI1PK": {"S": "x"}},
        {"SK": None},
    ):
        with pytest.raises(InvalidCursor):
            query.page(2, cursor=_edited(page.cursor, **edit))
    # What an unsigned cursor does not refuse: a move inside the query's own range.
    inside = query.page(2, cursor=_edited(page.cursor, SK=_post_sk(posts[4])))
    assert inside.items == posts[5:7]
    assert query.page(2, cursor=page.cursor).items == posts[4:6]


def test_unsigned_index_cursor_is_bound_to_the_index_range(unsigned: Session) -> None:
    posts = [p for p in seed(unsigned, 12) if p.topic == "aws"]
    since = START + dt.timedelta(days=1)
    query = unsigned.query(Post.by_topic, topic="aws").gt(created_at=since)
    page = query.page(1)
    assert page.items == posts[1:2] and page.cursor is not None
    placed = schema_of(Post.__dynaorm__.table).entity("Post").indexes["by_topic"]
    key = _payload(page.cursor)["k"]
    assert sorted(key) == sorted(["PK", "SK", placed.pk_attribute, placed.sk_attribute])
    before = {"S": Post.by_topic.sk.encode(vars(posts[0]))}
    with pytest.raises(InvalidCursor, match="range"):
        query.page(1, cursor=_edited(page.cursor, **{placed.sk_attribute: before}))
    with pytest.raises(InvalidCursor):
        query.page(1, cursor=_edited(page.cursor, PK={"S": "ORDER#u1"}))
    assert query.page(5, cursor=page.cursor).items == posts[2:]


def test_sealed_cursor_hides_the_key_and_refuses_every_edit(
    session: Session, unsigned: Session
) -> None:
    posts = seed(session, 6)
    query = session.query(Post, user_id="u1")
    page = query.page(2)
    assert page.cursor is not None
    raw = base64.urlsafe_b64decode(page.cursor + "=" * (-len(page.cursor) % 4))
    for readable in (b"USER", b"POST", b"p01", b'"k"'):
        assert readable not in raw  # no key value can be read from the URL
    for i in range(len(raw)):
        altered = bytearray(raw)
        altered[i] ^= 0x01
        forged = base64.urlsafe_b64encode(bytes(altered)).rstrip(b"=").decode()
        with pytest.raises(InvalidCursor):
            query.page(2, cursor=forged)
    # A readable cursor, even one holding a key inside the range, is not accepted.
    readable_cursor = unsigned.query(Post, user_id="u1").page(2).cursor
    assert readable_cursor is not None
    with pytest.raises(InvalidCursor, match="not sealed"):
        query.page(2, cursor=_edited(readable_cursor, SK=_post_sk(posts[3])))
    assert query.page(10, cursor=page.cursor).items == posts[2:]


def test_cursor_secrets_rotate_newest_first(dynamodb_backend: Backend, session: Session) -> None:
    posts = seed(session, 6)
    prefix = session.transport.table_prefix

    def with_secret(secret: Any) -> Session:
        return dynamodb_backend.session(table_prefix=prefix, cursor_secret=secret)

    old = with_secret(b"old-secret")
    rotated = with_secret([b"new-secret", b"old-secret"])
    retired = with_secret([b"new-secret"])
    try:
        issued = old.query(Post, user_id="u1").page(2).cursor
        assert issued is not None
        # During the rotation a cursor sealed with the old secret still opens ...
        assert rotated.query(Post, user_id="u1").page(10, cursor=issued).items == posts[2:]
        # ... new cursors are sealed with the newest secret ...
        fresh = rotated.query(Post, user_id="u1").page(2).cursor
        assert fresh is not None
        assert retired.query(Post, user_id="u1").page(10, cursor=fresh).items == posts[2:]
        # ... and once the old secret is dropped, its cursors are refused.
        with pytest.raises(InvalidCursor, match="sealed with a secret no longer configured"):
            retired.query(Post, user_id="u1").page(2, cursor=issued)
    finally:
        for other in (old, rotated, retired):
            other.transport.close()


@pytest.mark.parametrize("secret", [b"", [], [b"a", "b"]])
def test_bad_cursor_secrets_are_refused_when_the_session_is_made(
    dynamodb_backend: Backend, secret: Any
) -> None:
    with pytest.raises(TypeError, match="cursor_secret"):
        dynamodb_backend.session(cursor_secret=secret)


def test_cursor_survives_a_second_writer_deleting_its_last_item(
    session: Session, unsigned: Session
) -> None:
    posts = seed(session, 6)
    query = session.query(Post, user_id="u1")
    page = query.page(2)
    assert page.items == posts[:2] and page.cursor is not None
    # Another writer deletes the item the cursor points at and adds one before it.
    unsigned.delete(posts[1])
    early = posts[0].model_copy(update={"post_id": "p00a"})
    unsigned.put(early)
    rest = query.page(10, cursor=page.cursor)
    assert rest.items == posts[2:] and rest.cursor is None
