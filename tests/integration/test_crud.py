"""Single-item operations on the embedded backend, with the exact requests they send."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import pytest
from blog_models import Post, User, app

from dynaorm import Entity, RequestEvent, Session, Table
from dynaorm.errors import (
    ConditionFailed,
    ExpressionError,
    ItemAlreadyExists,
    ItemEncodingError,
    ItemTooLarge,
    KeyEncodingError,
    ServiceError,
    TransactionCanceled,
    UniqueConstraintViolation,
    VersionConflict,
)

from .conftest import Recorder
from .factories import AT, UTC, post


def test_put_then_get_round_trips(session: Session, recorder: Recorder) -> None:
    original = post(tags={"a", "b"}, topic="aws")
    session.put(original)
    assert recorder.calls == [
        (
            "PutItem",
            {
                "TableName": session.table_name(Post.__dynaorm__.table),
                "Item": {
                    "user_id": {"S": "u1"},
                    "post_id": {"S": "p1"},
                    "title": {"S": "Post 1"},
                    "created_at": {"S": "2024-05-02T09:30:00.000000+00:00"},
                    "likes": {"N": "0"},
                    "tags": {"SS": ["a", "b"]},
                    "topic": {"S": "aws"},
                    "_type": {"S": "Post"},
                    "PK": {"S": "USER#u1"},
                    "SK": {"S": "POST#2024-05-02T09:30:00.000000Z#p1"},
                    "GSI1PK": {"S": "POST#p1"},
                    "GSI1SK": {"S": "Post"},
                    "GSI2PK": {"S": "TOPIC#aws"},
                    "GSI2SK": {"S": "2024-05-02T09:30:00.000000Z"},
                },
            },
        )
    ]
    loaded = session.get(Post, user_id="u1", created_at=original.created_at, post_id="p1")
    assert loaded == original
    assert session.get(Post, user_id="u1", created_at=AT, post_id="nope") is None


def test_get_consistent_and_projection(session: Session, recorder: Recorder) -> None:
    session.put(post())
    recorder.clear()
    found = session.get(
        Post,
        consistent=True,
        projection=["title", Post.likes],
        user_id="u1",
        created_at=post().created_at,
        post_id="p1",
    )
    assert found == {"title": "Post 1", "likes": 0}
    ((operation, params),) = recorder.calls
    assert operation == "GetItem"
    assert params["ConsistentRead"] is True
    assert params["ProjectionExpression"] == "#n0, #n1"
    assert params["ExpressionAttributeNames"] == {"#n0": "title", "#n1": "likes"}


def test_create_refuses_an_existing_item(session: Session) -> None:
    session.create(post())
    with pytest.raises(ItemAlreadyExists) as info:
        session.create(post(title="again"))
    assert info.value.entity == "Post"
    assert isinstance(info.value.item, Post)
    assert info.value.item.title == "Post 1"


def test_put_with_condition(session: Session) -> None:
    session.put(post(likes=5))
    with pytest.raises(ConditionFailed) as info:
        session.put(post(likes=6), condition=Post.likes > 10)
    assert info.value.item is not None and info.value.item.likes == 5
    session.put(post(likes=6), condition=Post.likes == 5)
    stored = session.get(Post, user_id="u1", created_at=post().created_at, post_id="p1")
    assert stored is not None and stored.likes == 6


def test_update_returns_the_new_entity(session: Session, recorder: Recorder) -> None:
    original = post(tags={"a"})
    session.put(original)
    recorder.clear()
    updated = session.update(
        original,
        set={"title": "New"},
        add={"likes": 2},
        delete={"tags": {"a"}},
        condition=Post.likes < 1000,
    )
    assert (updated.title, updated.likes, updated.tags) == ("New", 2, set())
    ((operation, params),) = recorder.calls
    assert operation == "UpdateItem"
    assert params["UpdateExpression"] == "SET #n0 = :v0 ADD #n1 :v1 DELETE #n2 :v2"
    assert params["ConditionExpression"] == "attribute_exists(#n3) AND #n1 < :v3"
    assert params["ExpressionAttributeNames"] == {
        "#n0": "title",
        "#n1": "likes",
        "#n2": "tags",
        "#n3": "PK",
    }
    assert params["ReturnValues"] == "ALL_NEW"


def test_update_recomputes_and_removes_index_keys(session: Session) -> None:
    original = post()
    session.put(original)
    session.update(original, set={"topic": "aws"})
    assert [p.post_id for p in session.query(Post.by_topic, topic="aws")] == ["p1"]
    session.update(original, remove=["topic"])
    assert session.query(Post.by_topic, topic="aws").all() == []


def test_update_refuses_key_changes_and_half_built_index_keys(session: Session) -> None:
    original = post()
    session.put(original)
    with pytest.raises(KeyEncodingError, match="primary-key fields"):
        session.update(original, set={"post_id": "p9"})
    # by_topic's other slot (created_at) is a key field: the key alone rebuilds it
    session.update(original.get_key(), set={"topic": "aws"})
    assert session.query(Post.by_topic, topic="aws").all() == [post(topic="aws")]
    with pytest.raises(KeyEncodingError, match="index by_topic"):
        session.update(original.get_key(), if_not_exists={"topic": "x"})


def test_update_of_a_missing_item_fails(session: Session) -> None:
    with pytest.raises(ConditionFailed, match="does not exist"):
        session.update(post(), set={"title": "x"})


def test_delete(session: Session) -> None:
    session.put(post())
    session.delete(post().get_key())
    assert session.get(Post, user_id="u1", created_at=post().created_at, post_id="p1") is None
    session.delete(post())  # deleting what is gone is fine


def test_versioned_writes(session: Session) -> None:
    ann = User(user_id="u1", email="ann@example.com", name="Ann")
    session.create(ann)
    assert ann.version == 1
    stale = session.get(User, user_id="u1")
    assert stale is not None
    renamed = session.update(ann, set={"name": "Ann B."})
    assert renamed.version == 2 and ann.version == 2
    with pytest.raises(VersionConflict) as info:
        session.update(stale, set={"name": "Stale"})
    assert info.value.entity == "User"
    with pytest.raises(VersionConflict):
        session.delete(stale)
    with pytest.raises(ExpressionError, match="version field"):
        session.update(ann, set={"version": 9})


def test_unique_guards_follow_the_value(session: Session) -> None:
    ann = User(user_id="u1", email="ann@example.com", name="Ann")
    session.create(ann)
    with pytest.raises(UniqueConstraintViolation) as info:
        session.create(User(user_id="u2", email="ann@example.com", name="Bob"))
    assert info.value.field == "email"
    assert info.value.value == "ann@example.com"
    assert session.get(User, user_id="u2") is None

    session.update(ann, set={"email": "ann@new.example"})
    # The old address is free again, the new one is taken.
    bob = User(user_id="u2", email="ann@example.com", name="Bob")
    session.create(bob)
    with pytest.raises(UniqueConstraintViolation):
        session.create(User(user_id="u3", email="ann@new.example", name="Cy"))

    session.delete(bob)
    session.create(User(user_id="u4", email="ann@example.com", name="Di"))


def test_user_found_by_email_index(session: Session) -> None:
    session.create(User(user_id="u1", email="ann@example.com", name="Ann"))
    found = session.query(User.by_email, email="ann@example.com").first()
    assert found is not None and found.user_id == "u1"


logs = Table("logs")


class Log(Entity, table=logs, pk="LOG#{log_id}", sk="LOG"):
    log_id: str
    lines: list[str] = []
    first_seen: str | None = None


def test_append_and_if_not_exists(session: Session) -> None:
    session.create_table(logs)
    session.put(Log(log_id="l1", lines=["a"]))
    log = session.update(Log.key(log_id="l1"), append={"lines": ["b", "c"]})
    assert log.lines == ["a", "b", "c"]
    log = session.update(log, if_not_exists={"first_seen": "monday"})
    log = session.update(log, if_not_exists={"first_seen": "tuesday"})
    assert log.first_seen == "monday"
    session.delete_table(logs)


def test_oversized_item_is_refused_before_sending(session: Session, recorder: Recorder) -> None:
    recorder.clear()
    with pytest.raises(ItemTooLarge) as info:
        session.put(post(title="x" * 409_600))
    assert info.value.entity == "Post"
    assert info.value.size > 409_600
    assert recorder.calls == []


def test_create_table_exists_ok_and_drift(session: Session) -> None:
    session.create_table(app, exists_ok=True)
    with pytest.raises(ServiceError) as info:
        session.create_table(app)
    assert info.value.aws_code == "ResourceInUseException"
    assert session.drift(app) == []
    assert session.health_check(app)
    assert session.health_check()


def test_ttl_attribute_is_epoch_seconds(session: Session, recorder: Recorder) -> None:
    expires = dt.datetime(2030, 1, 1, tzinfo=UTC)
    session.put(post(expires_at=expires))
    assert recorder.calls[-1][1]["Item"]["expires_at"] == {"N": str(int(expires.timestamp()))}
    loaded = session.get(Post, user_id="u1", created_at=post().created_at, post_id="p1")
    assert loaded is not None and loaded.expires_at == expires
    later = expires + dt.timedelta(days=1)
    updated = session.update(post(), set={"expires_at": later})
    assert recorder.calls[-1][1]["ExpressionAttributeValues"][":v0"] == {
        "N": str(int(later.timestamp()))
    }
    assert updated.expires_at == later
    with pytest.raises(ItemEncodingError, match="naive"):
        session.put(post(expires_at=dt.datetime(2030, 1, 1)))


def test_user_condition_failure_is_not_a_version_conflict(session: Session) -> None:
    ann = User(user_id="u1", email="ann@example.com", name="Ann")
    session.create(ann)
    with pytest.raises(ConditionFailed) as info:
        session.update(ann, set={"name": "B"}, condition=User.name == "Someone else")
    assert not isinstance(info.value, VersionConflict)
    assert isinstance(info.value.item, User)
    assert info.value.item.version == 1


class Account(Entity, table=logs, pk="ACCOUNT#{account_id}", sk="ACCOUNT", unique=("handle",)):
    account_id: str
    handle: str


def test_put_of_unversioned_unique_entity_guards_a_new_item(
    session: Session, recorder: Recorder
) -> None:
    session.create_table(logs)
    recorder.clear()
    session.put(Account(account_id="a1", handle="ann"))
    assert recorder.operations() == ["GetItem", "TransactWriteItems"]
    put, guard = recorder.calls[1][1]["TransactItems"]
    # Nothing was stored when the guards were planned, so the put insists on that.
    assert put["Put"]["ConditionExpression"] == "attribute_not_exists(#n0)"
    assert guard["Put"]["Item"]["PK"] == {"S": "UNIQUE#Account#handle#ann"}
    session.put(Account(account_id="a1", handle="ann2"))
    with pytest.raises(UniqueConstraintViolation):
        session.put(Account(account_id="a2", handle="ann2"))
    session.put(Account(account_id="a2", handle="ann"))  # released by the rename
    session.delete_table(logs)


def test_conditions_on_the_ttl_field_compare_epoch_seconds(session: Session) -> None:
    expires = dt.datetime(2030, 1, 1, tzinfo=UTC)
    session.put(post(expires_at=expires))
    stale = Post.expires_at < expires + dt.timedelta(days=1)
    assert session.query(Post, user_id="u1").where(stale).count() == 1
    assert session.query(Post, user_id="u1").where(Post.expires_at > expires).count() == 0


def test_request_observer_and_debug_log(session: Session, caplog: pytest.LogCaptureFixture) -> None:
    events: list[RequestEvent] = []
    session.transport.add_observer(events.append)
    with caplog.at_level(logging.DEBUG, logger="dynaorm"):
        session.put(post())
        with pytest.raises(ItemAlreadyExists):
            session.create(post())
    session.transport.remove_observer(events.append)
    assert [(e.operation, e.error is None) for e in events] == [
        ("PutItem", True),
        ("PutItem", False),
    ]
    assert events[0].table == session.table_name(app)
    assert events[0].duration > 0
    assert events[0].request_id
    assert "PutItem" in caplog.records[0].getMessage()
    assert "request id" in caplog.records[0].getMessage()
    assert "failed: condition-failed" in caplog.records[1].getMessage()


def test_guarded_writes_retry_transaction_conflicts_with_one_token(session: Session) -> None:
    real = session.transport.call
    tokens: list[str] = []

    def conflict_once(operation: str, params: dict[str, Any], **context: Any) -> dict[str, Any]:
        if operation == "TransactWriteItems":
            tokens.append(params["ClientRequestToken"])
            if len(tokens) == 1:
                reasons = [{"Code": "TransactionConflict"}, None]
                raise TransactionCanceled("conflict", reasons=reasons, operation=operation)
        return real(operation, params, **context)

    session.transport.call = conflict_once  # type: ignore[method-assign]
    session._batches.retry.sleep = lambda _: None
    session.create(User(user_id="u1", email="ann@example.com", name="Ann"))
    assert len(tokens) == 2
    assert tokens[0] == tokens[1]
    assert session.get(User, user_id="u1") is not None


def test_unstorable_values_name_the_entity_and_attribute(session: Session) -> None:
    with pytest.raises(ItemEncodingError) as info:
        session.put(post(likes=10**38 + 1))  # 39 significant digits
    assert info.value.entity == "Post"
    assert info.value.field == "likes"
    assert str(info.value).startswith("[item-encoding] Post: cannot store")
