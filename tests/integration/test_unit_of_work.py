"""Unit of work: the exact TransactWriteItems each change sends, and its guarantees."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from blog_models import Post, User

from dynaorm import Session, UnitOfWork
from dynaorm._codec import item_size
from dynaorm._items import entity_to_item_sized
from dynaorm._transaction_plan import plan_commit
from dynaorm._unit_of_work import UnitOfWorkState
from dynaorm.errors import (
    ConditionFailed,
    ExpressionError,
    ItemAlreadyExists,
    ServiceError,
    TransactionCanceled,
    TransactionTooLarge,
    UniqueConstraintViolation,
    UnitOfWorkClosed,
    VersionConflict,
)
from tests.dynamodb_local import Backend

from .conftest import Recorder
from .factories import UTC, post


def user(n: int = 1, email: str | None = None, **changes: Any) -> User:
    return User(user_id=f"u{n}", email=email or f"u{n}@example.com", name=f"User {n}", **changes)


def post_item(n: int = 1) -> dict[str, Any]:
    day = f"2024-05-0{1 + n}T09:30:00.000000"
    return {
        "user_id": {"S": "u1"},
        "post_id": {"S": f"p{n}"},
        "title": {"S": f"Post {n}"},
        "created_at": {"S": f"{day}+00:00"},
        "likes": {"N": "0"},
        "_type": {"S": "Post"},
        "PK": {"S": "USER#u1"},
        "SK": {"S": f"POST#{day}Z#p{n}"},
        "GSI1PK": {"S": f"POST#p{n}"},
        "GSI1SK": {"S": "Post"},
    }


def post_key(n: int = 1) -> dict[str, Any]:
    day = f"2024-05-0{1 + n}T09:30:00.000000Z"
    return {"PK": {"S": "USER#u1"}, "SK": {"S": f"POST#{day}#p{n}"}}


def user_key(n: int = 1) -> dict[str, Any]:
    return {"PK": {"S": f"USER#u{n}"}, "SK": {"S": "PROFILE"}}


def guard_key(email: str) -> dict[str, Any]:
    return {"PK": {"S": f"UNIQUE#User#email#{email}"}, "SK": {"S": "UNIQUE"}}


def guard_release(table: str, email: str, owner: int) -> dict[str, Any]:
    """A guard is deleted only by the item it records as its owner."""
    return {
        "Delete": {
            "TableName": table,
            "Key": guard_key(email),
            "ConditionExpression": "#n0 = :v0 AND #n1 = :v1",
            "ExpressionAttributeNames": {"#n0": "owner_pk", "#n1": "owner_sk"},
            "ExpressionAttributeValues": {
                ":v0": {"S": f"USER#u{owner}"},
                ":v1": {"S": "PROFILE"},
            },
            **ALL_OLD,
        }
    }


def guard_item(email: str, owner: int) -> dict[str, Any]:
    return {
        **guard_key(email),
        "_type": {"S": "dynaorm.unique"},
        "owner_pk": {"S": f"USER#u{owner}"},
        "owner_sk": {"S": "PROFILE"},
    }


ALL_OLD = {"ReturnValuesOnConditionCheckFailure": "ALL_OLD"}  # explains a failed condition
NOT_EXISTS = {"ConditionExpression": "attribute_not_exists(#n0)", **ALL_OLD}
PK_NAME = {"ExpressionAttributeNames": {"#n0": "PK"}}


def written(recorder: Recorder) -> list[dict[str, Any]]:
    """The TransactItems of the single TransactWriteItems recorded."""
    writes = [params for operation, params in recorder.calls if operation == "TransactWriteItems"]
    assert len(writes) == 1, recorder.operations()
    return list(writes[0]["TransactItems"])


def stored(session: Session, entity: type[Any], **slots: Any) -> Any:
    return session.get(entity, consistent=True, **slots)


# -- each kind of change, exactly -------------------------------------------------------------


def test_a_key_field_changed_after_add_writes_the_new_key(session: Session) -> None:
    """The key computed by add() is reused at commit only while its fields are unchanged."""
    later = post(1)
    with session.unit_of_work() as uow:
        uow.add(later)
        later.created_at = later.created_at + dt.timedelta(hours=1)
    stored = session.get(Post, user_id="u1", created_at=later.created_at, post_id="p1")
    assert stored == later
    assert session.get(Post, user_id="u1", created_at=post(1).created_at, post_id="p1") is None


def test_add_sends_put_with_attribute_not_exists_and_guards(
    session: Session, recorder: Recorder
) -> None:
    ann, first = user(), post()
    with session.unit_of_work() as uow:
        uow.add(ann)
        uow.add(first)
        assert recorder.calls == []  # nothing leaves before commit
        assert ann.version == 0
    table = session.table_name(Post.__dynaorm__.table)
    assert recorder.calls == [
        (
            "TransactWriteItems",
            {
                "TransactItems": [
                    {
                        "Put": {
                            "TableName": table,
                            "Item": {
                                "user_id": {"S": "u1"},
                                "email": {"S": "u1@example.com"},
                                "name": {"S": "User 1"},
                                "version": {"N": "1"},
                                "_type": {"S": "User"},
                                "PK": {"S": "USER#u1"},
                                "SK": {"S": "PROFILE"},
                                "GSI1PK": {"S": "EMAIL#u1@example.com"},
                                "GSI1SK": {"S": "User"},
                            },
                            **NOT_EXISTS,
                            **PK_NAME,
                        }
                    },
                    {
                        "Put": {
                            "TableName": table,
                            "Item": guard_item("u1@example.com", owner=1),
                            **NOT_EXISTS,
                            **PK_NAME,
                        }
                    },
                    {"Put": {"TableName": table, "Item": post_item(1), **NOT_EXISTS, **PK_NAME}},
                ],
                "ClientRequestToken": uow.token,
            },
        )
    ]
    assert uow.state is UnitOfWorkState.COMMITTED
    assert ann.version == 1
    assert stored(session, User, user_id="u1") == ann
    assert stored(session, Post, user_id="u1", created_at=first.created_at, post_id="p1") == first


def test_dirty_update_sends_only_changed_fields_with_version_check(
    session: Session, recorder: Recorder
) -> None:
    session.create(user())
    recorder.clear()
    with session.unit_of_work() as uow:
        ann = uow.get(User, user_id="u1")
        assert ann is not None and ann.version == 1
        ann.name = "Ann B."
    assert recorder.operations() == ["GetItem", "TransactWriteItems"]
    assert recorder.calls[0][1]["ConsistentRead"] is True
    assert written(recorder) == [
        {
            "Update": {
                "TableName": session.table_name(User.__dynaorm__.table),
                "Key": user_key(1),
                "UpdateExpression": "SET #n0 = :v0 ADD #n1 :v1",
                "ConditionExpression": "attribute_exists(#n2) AND #n1 = :v2",
                "ExpressionAttributeNames": {"#n0": "name", "#n1": "version", "#n2": "PK"},
                "ExpressionAttributeValues": {
                    ":v0": {"S": "Ann B."},
                    ":v1": {"N": "1"},
                    ":v2": {"N": "1"},
                },
                **ALL_OLD,
            }
        }
    ]
    assert ann.version == 2
    assert stored(session, User, user_id="u1") == ann


def test_dirty_update_recomputes_and_removes_index_keys(
    session: Session, recorder: Recorder
) -> None:
    first = post()
    session.put(first)
    slots = {"user_id": "u1", "created_at": first.created_at, "post_id": "p1"}
    recorder.clear()
    with session.unit_of_work() as uow:
        loaded = uow.get(Post, **slots)
        assert loaded is not None
        loaded.topic = "aws"
        loaded.tags = {"x"}
    assert written(recorder) == [
        {
            "Update": {
                "TableName": session.table_name(Post.__dynaorm__.table),
                "Key": post_key(1),
                "UpdateExpression": "SET #n0 = :v0, #n1 = :v1, #n2 = :v2, #n3 = :v3",
                "ConditionExpression": "attribute_exists(#n4)",
                "ExpressionAttributeNames": {
                    "#n0": "tags",
                    "#n1": "topic",
                    "#n2": "GSI2PK",
                    "#n3": "GSI2SK",
                    "#n4": "PK",
                },
                "ExpressionAttributeValues": {
                    ":v0": {"SS": ["x"]},
                    ":v1": {"S": "aws"},
                    ":v2": {"S": "TOPIC#aws"},
                    ":v3": {"S": "2024-05-02T09:30:00.000000Z"},
                },
                **ALL_OLD,
            }
        }
    ]
    assert [p.post_id for p in session.query(Post.by_topic, topic="aws")] == ["p1"]

    recorder.clear()
    with session.unit_of_work() as uow:
        loaded = uow.get(Post, **slots)
        assert loaded is not None
        loaded.topic = None
        loaded.tags = set()  # an empty set cannot be stored: the attribute goes
    (action,) = written(recorder)
    # A None index slot field is omitted like in a Put, so it is removed with its keys.
    assert action["Update"]["UpdateExpression"] == "REMOVE #n0, #n1, #n2, #n3"
    assert action["Update"]["ExpressionAttributeNames"] == {
        "#n0": "tags",
        "#n1": "topic",
        "#n2": "GSI2PK",
        "#n3": "GSI2SK",
        "#n4": "PK",
    }
    assert session.query(Post.by_topic, topic="aws").all() == []
    assert stored(session, Post, **slots) == post()


def test_key_change_deletes_the_old_item_and_creates_the_new(
    session: Session, recorder: Recorder
) -> None:
    session.put(post(1))
    recorder.clear()
    with session.unit_of_work() as uow:
        moved = uow.get(Post, user_id="u1", created_at=post(1).created_at, post_id="p1")
        assert moved is not None
        moved.post_id, moved.created_at, moved.title = "p2", post(2).created_at, "Post 2"
    table = session.table_name(Post.__dynaorm__.table)
    assert written(recorder) == [
        {"Delete": {"TableName": table, "Key": post_key(1)}},
        {"Put": {"TableName": table, "Item": post_item(2), **NOT_EXISTS, **PK_NAME}},
    ]
    assert session.query(Post, user_id="u1").all() == [post(2)]


def test_key_change_of_a_guarded_entity_hands_its_guard_over(
    session: Session, recorder: Recorder
) -> None:
    session.create(user(1, email="ann@example.com"))
    recorder.clear()
    with session.unit_of_work() as uow:
        ann = uow.get(User, user_id="u1")
        assert ann is not None
        ann.user_id = "u2"
    table = session.table_name(User.__dynaorm__.table)
    put, transfer = written(recorder)[1:]
    assert put["Put"]["Item"]["PK"] == {"S": "USER#u2"}
    assert put["Put"]["Item"]["version"] == {"N": "2"}
    assert written(recorder)[0] == {
        "Delete": {
            "TableName": table,
            "Key": user_key(1),
            "ConditionExpression": "#n0 = :v0 AND #n1 = :v1",
            "ExpressionAttributeNames": {"#n0": "version", "#n1": "email"},
            "ExpressionAttributeValues": {":v0": {"N": "1"}, ":v1": {"S": "ann@example.com"}},
            **ALL_OLD,
        }
    }
    # Release + claim of one guard item would be two actions on it: one owner transfer.
    assert transfer == {
        "Put": {
            "TableName": table,
            "Item": guard_item("ann@example.com", owner=2),
            "ConditionExpression": "#n0 = :v0 AND #n1 = :v1",
            "ExpressionAttributeNames": {"#n0": "owner_pk", "#n1": "owner_sk"},
            "ExpressionAttributeValues": {":v0": {"S": "USER#u1"}, ":v1": {"S": "PROFILE"}},
            **ALL_OLD,
        }
    }
    assert ann.version == 2
    assert stored(session, User, user_id="u1") is None
    assert stored(session, User, user_id="u2") == ann


def test_delete_removes_item_and_guards(session: Session, recorder: Recorder) -> None:
    session.create(user(1, email="ann@example.com"))
    recorder.clear()
    with session.unit_of_work() as uow:
        ann = uow.get(User, user_id="u1")
        assert ann is not None
        ann.name = "changed, then deleted"  # the delete wins: one action for the item
        uow.delete(ann)
        assert uow.get(User, user_id="u1") is None
    table = session.table_name(User.__dynaorm__.table)
    assert written(recorder) == [
        {
            "Delete": {
                "TableName": table,
                "Key": user_key(1),
                # The guard released is the one of the email stored, not of the object.
                "ConditionExpression": "#n0 = :v0 AND #n1 = :v1",
                "ExpressionAttributeNames": {"#n0": "version", "#n1": "email"},
                "ExpressionAttributeValues": {":v0": {"N": "1"}, ":v1": {"S": "ann@example.com"}},
                **ALL_OLD,
            }
        },
        guard_release(table, "ann@example.com", owner=1),
    ]
    assert stored(session, User, user_id="u1") is None
    session.create(user(2, email="ann@example.com"))  # the address is free again


def test_delete_by_key_reads_the_guards_it_must_release(
    session: Session, recorder: Recorder
) -> None:
    session.create(user(1, email="ann@example.com"))
    session.put(post())
    recorder.clear()
    with session.unit_of_work() as uow:
        uow.delete(User.key(user_id="u1"))
        uow.delete(post().get_key())
        uow.delete(User.key(user_id="u9"))  # not stored: nothing to do
    assert recorder.operations() == ["GetItem", "GetItem", "TransactWriteItems"]
    table = session.table_name(User.__dynaorm__.table)
    assert [next(iter(a)) for a in written(recorder)] == ["Delete", "Delete", "Delete"]
    assert written(recorder)[2] == {"Delete": {"TableName": table, "Key": post_key(1)}}
    session.create(user(2, email="ann@example.com"))


def test_check_sends_condition_check(session: Session, recorder: Recorder) -> None:
    session.create(user())
    recorder.clear()
    with session.unit_of_work() as uow:
        uow.check(User.key(user_id="u1"), User.version == 1)
        uow.add(post())
    table = session.table_name(User.__dynaorm__.table)
    assert written(recorder) == [
        {
            "ConditionCheck": {
                "TableName": table,
                "Key": user_key(1),
                "ConditionExpression": "#n0 = :v0",
                "ExpressionAttributeNames": {"#n0": "version"},
                "ExpressionAttributeValues": {":v0": {"N": "1"}},
                **ALL_OLD,
            }
        },
        {"Put": {"TableName": table, "Item": post_item(1), **NOT_EXISTS, **PK_NAME}},
    ]

    uow = session.unit_of_work()
    uow.check(User.key(user_id="u1"), User.version == 7)
    uow.add(post(2))
    with pytest.raises(ConditionFailed) as info:
        uow.commit()
    assert type(info.value) is ConditionFailed
    assert info.value.entity == "User" and info.value.key == ("USER#u1", "PROFILE")
    assert uow.state is UnitOfWorkState.FAILED
    assert session.query(Post, user_id="u1").all() == [post(1)]


def test_explicit_update_like_session_update(session: Session, recorder: Recorder) -> None:
    session.create(user(1, email="ann@example.com"))
    first = post()
    session.put(first)
    recorder.clear()
    with session.unit_of_work() as uow:
        uow.update(first, add={"likes": 2}, set={"title": "New"})
        ann = uow.get(User, user_id="u1")
        assert ann is not None
        uow.update(ann, set={"email": "ann@new.example"})
    update, user_update, release, claim = written(recorder)
    assert update["Update"]["UpdateExpression"] == "SET #n0 = :v0 ADD #n1 :v1"
    assert user_update == {
        "Update": {
            "TableName": ann_table(session),
            "Key": user_key(1),
            "UpdateExpression": "SET #n0 = :v0, #n1 = :v1, #n2 = :v2 ADD #n3 :v3",
            # The guard moves from the email stored: the update requires it still is.
            "ConditionExpression": "attribute_exists(#n4) AND #n3 = :v4 AND #n0 = :v5",
            "ExpressionAttributeNames": {
                "#n0": "email",
                "#n1": "GSI1PK",
                "#n2": "GSI1SK",
                "#n3": "version",
                "#n4": "PK",
            },
            "ExpressionAttributeValues": {
                ":v0": {"S": "ann@new.example"},
                ":v1": {"S": "EMAIL#ann@new.example"},
                ":v2": {"S": "User"},
                ":v3": {"N": "1"},
                ":v4": {"N": "1"},
                ":v5": {"S": "ann@example.com"},
            },
            **ALL_OLD,
        }
    }
    assert release == guard_release(ann_table(session), "ann@example.com", owner=1)
    assert claim["Put"]["Item"] == guard_item("ann@new.example", owner=1)
    assert ann.version == 2
    found = stored(session, Post, user_id="u1", created_at=first.created_at, post_id="p1")
    assert (found.title, found.likes) == ("New", 2)
    assert stored(session, User, user_id="u1").email == "ann@new.example"


def ann_table(session: Session) -> str:
    return session.table_name(User.__dynaorm__.table)


# -- identity map and reads -------------------------------------------------------------------


def test_identity_map_returns_the_same_object_with_one_read(
    session: Session, recorder: Recorder
) -> None:
    session.create(user())
    recorder.clear()
    uow = session.unit_of_work()
    first = uow.get(User, user_id="u1")
    assert first is not None
    assert uow.get(User, user_id="u1") is first
    assert uow.get_many([User.key(user_id="u1")]) == [first]
    assert uow.get_many([User.key(user_id="u1")])[0] is first
    assert uow.get(User, user_id="nobody") is None
    assert recorder.operations() == ["GetItem", "GetItem"]
    uow.commit()
    assert recorder.operations() == ["GetItem", "GetItem"]  # nothing to do: nothing sent


def test_get_many_reads_one_snapshot_in_key_order(session: Session, recorder: Recorder) -> None:
    for n in (1, 2, 3):
        session.create(user(n))
    recorder.clear()
    with session.unit_of_work() as uow:
        two = uow.get(User, user_id="u2")
        keys = [User.key(user_id=f"u{n}") for n in (3, 9, 2, 1)]
        found = uow.get_many(keys)
        assert [u.user_id for u in found] == ["u3", "u2", "u1"]
        assert found[1] is two
        assert uow.get(User, user_id="u3") is found[0]
    table = ann_table(session)
    assert recorder.calls[1] == (
        "TransactGetItems",
        {
            "TransactItems": [
                {"Get": {"TableName": table, "Key": user_key(3)}},
                {"Get": {"TableName": table, "Key": user_key(9)}},
                {"Get": {"TableName": table, "Key": user_key(1)}},
            ]
        },
    )
    assert recorder.operations() == ["GetItem", "TransactGetItems"]


def test_get_many_refuses_more_than_one_transaction(session: Session, recorder: Recorder) -> None:
    uow = session.unit_of_work()
    with pytest.raises(TransactionTooLarge, match="at most 100"):
        uow.get_many([User.key(user_id=f"u{n}") for n in range(101)])
    assert recorder.calls == []


# -- lifecycle --------------------------------------------------------------------------------


def change_then_fail(uow: UnitOfWork) -> None:
    with uow:
        ann = uow.get(User, user_id="u1")
        assert ann is not None
        ann.name = "never stored"
        uow.add(post())
        raise RuntimeError("boom")


def test_exception_inside_the_block_sends_nothing(session: Session, recorder: Recorder) -> None:
    session.create(user())
    recorder.clear()
    uow = session.unit_of_work()
    with pytest.raises(RuntimeError, match="boom"):
        change_then_fail(uow)
    assert recorder.operations() == ["GetItem"]
    assert uow.state is UnitOfWorkState.ROLLED_BACK
    assert stored(session, User, user_id="u1").name == "User 1"


def test_work_after_commit_or_rollback_is_refused(session: Session, recorder: Recorder) -> None:
    uow = session.unit_of_work()
    uow.add(post())
    uow.commit()
    for attempt in (
        lambda: uow.add(post(2)),
        lambda: uow.get(User, user_id="u1"),
        uow.commit,
        uow.rollback,
    ):
        with pytest.raises(UnitOfWorkClosed, match="committed") as info:
            attempt()
        assert info.value.code == "unit-of-work-closed"

    rolled = session.unit_of_work()
    rolled.add(post(3))
    rolled.rollback()
    with pytest.raises(UnitOfWorkClosed, match="rolled back"):
        rolled.commit()
    assert recorder.operations() == ["TransactWriteItems"]


def test_too_many_actions_are_refused_before_sending(session: Session, recorder: Recorder) -> None:
    uow = session.unit_of_work()
    for n in range(101):
        uow.add(post(n % 9, post_id=f"p{n}"))
    with pytest.raises(TransactionTooLarge, match="101 actions"):
        uow.commit()
    assert recorder.calls == []
    assert uow.state is UnitOfWorkState.FAILED

    guarded = session.unit_of_work()  # guards count: 51 users are 102 actions
    for n in range(51):
        guarded.add(user(n))
    with pytest.raises(TransactionTooLarge, match="102 actions"):
        guarded.commit()

    big = session.unit_of_work()
    for n in range(12):
        big.add(post(n, post_id=f"p{n}", title="x" * 390_000))
    with pytest.raises(TransactionTooLarge, match="4 MB"):
        big.commit()
    assert recorder.calls == []


def test_the_4_mb_limit_counts_exactly_when_the_cheap_bound_is_over_it(session: Session) -> None:
    """Eleven items just under 4 MB together: the bound says maybe, the exact count says no."""
    limit = 4 * 1024 * 1024
    probe, bound = entity_to_item_sized(post(0, post_id="p0", title=""))
    overhead, slack = item_size(probe), bound - item_size(probe)
    title = "x" * ((limit - 400) // 11 - overhead)  # 11 conditions count 297 more
    uow = session.unit_of_work()
    for n in range(11):
        uow.add(post(0, post_id=f"p{n}", title=title))
    _, actions = plan_commit(uow._entries)
    exact = sum(item_size(action.params["Item"]) for action in actions)
    assert exact <= limit < sum(action.size or 0 for action in actions)
    assert slack > 0
    uow.add(post(0, post_id="p11", title="x" * 200))
    with pytest.raises(TransactionTooLarge, match="4 MB"):
        plan_commit(uow._entries)


def _eleven_posts(session: Session, counted: int) -> UnitOfWork:
    """A unit of work adding 11 posts whose transaction DynamoDB counts as `counted` bytes:
    item bytes plus, per action, its condition text and attribute names (27 bytes for
    `attribute_not_exists(#n0)` naming `PK`); placeholders and ReturnValues... are free."""
    per_action = len("attribute_not_exists(#n0)") + len("PK")
    empty = sum(
        item_size(entity_to_item_sized(post(0, post_id=f"p{n:02d}", title=""))[0])
        for n in range(11)
    )
    title_bytes = counted - empty - 11 * per_action
    uow = session.unit_of_work()
    for n in range(11):
        share = title_bytes // 11 + (title_bytes % 11 if n == 10 else 0)
        uow.add(post(0, post_id=f"p{n:02d}", title="x" * share))
    return uow


def test_the_4_mb_limit_counts_expression_text_as_dynamodb_does(
    session: Session, dynamodb_backend: Backend
) -> None:
    """Measured on DynamoDB Local: a transaction's size is its items (keys for updates,
    deletes and checks) plus expression text, attribute names and value sizes."""
    limit = 4 * 1024 * 1024
    over = _eleven_posts(session, limit + 1)
    posts = [entry.change.entity for entry in over._entries.values() if entry.change]
    items = sum(item_size(entity_to_item_sized(p)[0]) for p in posts if p is not None)
    assert items == limit + 1 - 297  # items alone are under the limit ...
    with pytest.raises(TransactionTooLarge, match="4,194,305 bytes"):
        over.commit()  # ... but DynamoDB counts the conditions too: refused, nothing sent

    exact = _eleven_posts(session, limit)
    if dynamodb_backend.endpoint_url is None:
        plan_commit(exact._entries)  # moto sizes transactions its own way
        return
    exact.commit()  # accepted by DynamoDB Local at exactly 4,194,304 counted bytes
    assert len(session.query(Post, user_id="u1").all()) == 11


# -- conflicts inside one unit of work ----------------------------------------------------------


def test_two_actions_on_one_item_are_refused(session: Session, recorder: Recorder) -> None:
    session.create(user())
    uow = session.unit_of_work()
    uow.add(post())
    with pytest.raises(ExpressionError, match="pending add") as info:
        uow.delete(post().get_key())
    assert info.value.entity == "Post" and info.value.key == post().get_key()

    ann = uow.get(User, user_id="u1")
    assert ann is not None
    with pytest.raises(ExpressionError, match="was read in this unit of work"):
        uow.add(user())
    ann.name = "dirty"
    with pytest.raises(ExpressionError, match=r"unsaved changes to \['name'\]"):
        uow.update(ann, set={"name": "explicit"})
    ann.name = "User 1"
    uow.update(ann, set={"name": "explicit"})  # clean: the update is the only action
    ann.name = "dirty again"
    with pytest.raises(ExpressionError, match="unsaved changes"):
        uow.commit()
    assert uow.state is UnitOfWorkState.FAILED


def test_one_unique_value_claimed_twice_is_refused_before_sending(
    session: Session, recorder: Recorder
) -> None:
    uow = session.unit_of_work()
    uow.add(user(1, email="same@example.com"))
    uow.add(user(2, email="same@example.com"))
    with pytest.raises(UniqueConstraintViolation, match="claimed twice") as info:
        uow.commit()
    assert info.value.field == "email"
    assert recorder.calls == []


def test_swapping_unique_values_in_one_commit(session: Session) -> None:
    session.create(user(1, email="a@example.com"))
    session.create(user(2, email="b@example.com"))
    with session.unit_of_work() as uow:
        one, two = uow.get_many([User.key(user_id="u1"), User.key(user_id="u2")])
        assert isinstance(one, User) and isinstance(two, User)
        one.email, two.email = two.email, one.email
    assert stored(session, User, user_id="u1").email == "b@example.com"
    assert stored(session, User, user_id="u2").email == "a@example.com"
    with pytest.raises(UniqueConstraintViolation):
        session.create(user(3, email="a@example.com"))
    with pytest.raises(UniqueConstraintViolation):
        session.create(user(3, email="b@example.com"))


# -- optimistic locking and unique constraints ------------------------------------------------


def test_racing_units_of_work_one_wins_one_conflicts(session: Session) -> None:
    session.create(user())
    first, second = session.unit_of_work(), session.unit_of_work()
    mine, theirs = first.get(User, user_id="u1"), second.get(User, user_id="u1")
    assert mine is not None and theirs is not None and mine is not theirs
    mine.name, theirs.name = "Mine", "Theirs"
    first.commit()
    with pytest.raises(VersionConflict) as info:
        second.commit()
    assert info.value.entity == "User" and info.value.key == ("USER#u1", "PROFILE")
    assert (mine.version, theirs.version) == (2, 1)  # the loser's object is untouched
    assert second.state is UnitOfWorkState.FAILED
    assert stored(session, User, user_id="u1") == mine


def test_only_versioned_actions_report_version_conflicts(session: Session) -> None:
    session.create(user())
    session.put(post())
    uow = renamed_user(session)
    uow.add(post())
    with pytest.raises(ItemAlreadyExists) as info:
        uow.commit()
    assert info.value.entity == "Post"
    uow = renamed_user(session)
    uow.put(post(title="x"), condition=Post.likes > 5)
    with pytest.raises(ConditionFailed) as failed:
        uow.commit()
    assert type(failed.value) is ConditionFailed and failed.value.entity == "Post"
    assert stored(session, User, user_id="u1").version == 1


def renamed_user(session: Session) -> UnitOfWork:
    uow = session.unit_of_work()
    ann = uow.get(User, user_id="u1")
    assert ann is not None
    ann.name = "Ann"
    return uow


def test_unique_constraint_create_change_delete_cycle(session: Session) -> None:
    with session.unit_of_work() as uow:
        uow.add(user(1, email="ann@example.com"))
    uow = session.unit_of_work()
    uow.add(user(2, email="ann@example.com"))
    with pytest.raises(UniqueConstraintViolation) as info:
        uow.commit()
    assert (info.value.field, info.value.entity) == ("email", "User")
    assert "ann@example.com" in str(info.value)
    assert stored(session, User, user_id="u2") is None

    with session.unit_of_work() as uow:
        ann = uow.get(User, user_id="u1")
        assert ann is not None
        ann.email = "ann@new.example"
    with session.unit_of_work() as uow:  # the old value is free, the new one taken
        uow.add(user(2, email="ann@example.com"))
    uow = session.unit_of_work()
    uow.add(user(3, email="ann@new.example"))
    with pytest.raises(UniqueConstraintViolation):
        uow.commit()

    with session.unit_of_work() as uow:
        uow.delete(User.key(user_id="u1"))
    with session.unit_of_work() as uow:
        uow.add(user(3, email="ann@new.example"))
        uow.put(user(2, email="bob@example.com", version=1))  # put moves the guard too
    with session.unit_of_work() as uow:
        uow.add(user(4, email="ann@example.com"))


# -- retries ----------------------------------------------------------------------------------


class Conflicts:
    """Wraps the transport: the first `times` TransactWriteItems fail with `error`."""

    def __init__(self, session: Session, times: int, error: Exception) -> None:
        self.real = session.transport.call
        self.times, self.error = times, error
        self.tokens: list[str] = []
        session.transport.call = self  # type: ignore[method-assign]

    def __call__(self, operation: str, params: dict[str, Any], **context: Any) -> dict[str, Any]:
        if operation == "TransactWriteItems":
            self.tokens.append(params["ClientRequestToken"])
            if len(self.tokens) <= self.times:
                raise self.error
        return self.real(operation, params, **context)


def conflict() -> TransactionCanceled:
    return TransactionCanceled(
        "cancelled", reasons=[None, {"Code": "TransactionConflict", "Message": "conflict"}]
    )


def test_transaction_conflict_is_retried_with_the_same_token(session: Session) -> None:
    ann = user()
    session.create(ann)
    injected = Conflicts(session, times=2, error=conflict())
    delays: list[float] = []
    with session.unit_of_work() as uow:
        uow.retry.sleep = delays.append
        loaded = uow.get(User, user_id="u1")
        assert loaded is not None
        loaded.name = "Ann"
        uow.add(post())
    assert len(injected.tokens) == 3 and len(set(injected.tokens)) == 1
    assert injected.tokens[0] == uow.token
    assert len(delays) == 2 and all(0 <= d <= uow.retry.max_delay for d in delays)
    assert loaded.version == 2

    busy = ServiceError("busy", aws_code="TransactionInProgressException")
    injected = Conflicts(session, times=1, error=busy)
    with session.unit_of_work() as again:
        again.retry.sleep = delays.append
        again.add(post(2))
    assert len(injected.tokens) == 2 and injected.tokens[0] == injected.tokens[1] != uow.token


def test_conflicts_beyond_the_budget_raise_and_change_nothing(session: Session) -> None:
    session.create(user())
    injected = Conflicts(session, times=100, error=conflict())
    uow = session.unit_of_work()
    uow.retry.sleep = lambda _: None
    ann = uow.get(User, user_id="u1")
    assert ann is not None
    ann.name = "Ann"
    with pytest.raises(TransactionCanceled) as info:
        uow.commit()
    assert type(info.value) is TransactionCanceled
    assert len(injected.tokens) == uow.retry.attempts == 5
    assert ann.version == 1 and uow.state is UnitOfWorkState.FAILED
    with pytest.raises(UnitOfWorkClosed, match="failed"):
        uow.add(post())


# -- edges ------------------------------------------------------------------------------------


def test_repeated_and_refused_edges(session: Session, recorder: Recorder) -> None:
    session.create(user())
    session.put(post(1))
    recorder.clear()
    with session.unit_of_work() as uow:
        assert uow.get_many([User.key(user_id="u8"), User.key(user_id="u9")]) == []
        second = post(2)
        uow.put(second)
        uow.put(second)  # the same put twice is one put
        uow.delete(post(1).get_key())
        uow.delete(post(1))  # and one delete
        uow.commit()  # explicit commit inside the block: the exit does nothing more
    assert [next(iter(a)) for a in written(recorder)] == ["Put", "Delete"]

    uow = session.unit_of_work()
    with pytest.raises(ConditionFailed, match="does not exist"):
        uow.update(User.key(user_id="u9"), set={"email": "x@example.com"})
    ann = uow.get(User, user_id="u1")
    assert ann is not None
    ann.user_id = "u2"
    with pytest.raises(ExpressionError, match="key fields changed"):
        uow.put(ann)
    ann.user_id, ann.version = "u1", 5
    with pytest.raises(ExpressionError, match="version field"):
        uow.commit()

    moving = session.unit_of_work()
    loaded = moving.get(Post, user_id="u1", created_at=post(2).created_at, post_id="p2")
    assert loaded is not None
    loaded.post_id = "p3"
    moving.add(post(2, post_id="p3"))  # the moved post's new key, claimed twice
    with pytest.raises(ExpressionError, match="both Put and Put"):
        moving.commit()


def test_dirty_ttl_field_is_stored_as_epoch_seconds(session: Session, recorder: Recorder) -> None:
    session.put(post())
    recorder.clear()
    expires = dt.datetime(2030, 1, 1, tzinfo=UTC)
    with session.unit_of_work() as uow:
        loaded = uow.get(Post, user_id="u1", created_at=post().created_at, post_id="p1")
        assert loaded is not None
        loaded.expires_at = expires
    (action,) = written(recorder)
    assert action["Update"]["UpdateExpression"] == "SET #n0 = :v0"
    assert action["Update"]["ExpressionAttributeValues"] == {":v0": {"N": "1893456000"}}
    assert stored(session, Post, user_id="u1", created_at=post().created_at, post_id="p1") == (
        post(expires_at=expires)
    )
