"""A failed condition reports the stored item as a decoded entity, never as a raw dict:
for single writes (every error deriving from ConditionFailed) and for each cancelled
action of a transaction (issue 15 item 5)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from blog_models import Post, User

from dynaorm import Session
from dynaorm.errors import (
    ConditionFailed,
    ItemAlreadyExists,
    TransactionCanceled,
    VersionConflict,
)

from .conftest import Recorder
from .factories import post

ALL_OLD = {"ReturnValuesOnConditionCheckFailure": "ALL_OLD"}


def user(n: int = 1, **changes: Any) -> User:
    values: dict[str, Any] = {"user_id": f"u{n}", "email": f"u{n}@example.com", "name": "Ann"}
    return User(**{**values, **changes})


def sent(recorder: Recorder, operation: str) -> dict[str, Any]:
    (params,) = [params for op, params in recorder.calls if op == operation]
    return params


@pytest.mark.parametrize("write", ["put", "create", "update", "delete"])
def test_every_conditional_single_write_asks_for_all_old(
    session: Session, recorder: Recorder, write: str
) -> None:
    session.put(post(likes=5))
    recorder.clear()
    writes = {
        "put": lambda: session.put(post(likes=6), condition=Post.likes > 10),
        "create": lambda: session.create(post(likes=6)),
        "update": lambda: session.update(
            post().get_key(), set={"title": "t"}, condition=Post.likes > 10
        ),
        "delete": lambda: session.delete(post().get_key(), condition=Post.likes > 10),
    }
    with pytest.raises(ConditionFailed) as info:
        writes[write]()
    operation = {"put": "PutItem", "create": "PutItem"}.get(write, f"{write.title()}Item")
    assert sent(recorder, operation)["ReturnValuesOnConditionCheckFailure"] == "ALL_OLD"
    assert type(info.value.item) is Post and info.value.item == post(likes=5)
    assert info.value.stored is not None and info.value.stored["likes"] == {"N": "5"}


def test_an_unconditional_write_does_not_ask_for_all_old(
    session: Session, recorder: Recorder
) -> None:
    session.delete(post().get_key())
    assert "ReturnValuesOnConditionCheckFailure" not in sent(recorder, "DeleteItem")


def test_a_version_conflict_carries_the_stored_entity(session: Session) -> None:
    session.create(user())
    stale = session.get(User, user_id="u1")
    assert stale is not None
    session.update(User.key(user_id="u1"), set={"name": "Bob"})
    stale.name = "Cy"
    with pytest.raises(VersionConflict) as conflict:
        session.put(stale)
    assert type(conflict.value.item) is User and conflict.value.item.name == "Bob"
    assert conflict.value.item.version == 2


def test_a_raw_request_never_reports_a_dict(session: Session) -> None:
    session.put(post(likes=5))
    request = {
        "TableName": session.table_name(Post.__dynaorm__.table),
        "Item": {"PK": {"S": "USER#u1"}, "SK": post().get_key().to_dynamodb()["SK"]},
        "ConditionExpression": "attribute_not_exists(PK)",
        **ALL_OLD,
    }
    with pytest.raises(ConditionFailed) as info:
        session._call("PutItem", request)
    assert info.value.item is None  # no entity is known here: never the raw item
    assert info.value.stored is not None and info.value.stored["likes"] == {"N": "5"}


def test_each_cancelled_transaction_action_reports_its_entity(
    session: Session, recorder: Recorder
) -> None:
    session.create(user())
    session.put(post(1, likes=3))
    recorder.clear()
    uow = session.unit_of_work()
    uow.check(User.key(user_id="u1"), User.version == 7)
    uow.add(post(2))
    uow.add(post(1))  # already stored: its condition fails too
    with pytest.raises(ConditionFailed) as info:
        uow.commit()
    request = sent(recorder, "TransactWriteItems")
    assert [
        next(iter(a.values())).get("ReturnValuesOnConditionCheckFailure")
        for a in request["TransactItems"]
    ] == ["ALL_OLD"] * 3
    assert type(info.value) is ConditionFailed and type(info.value.item) is User
    canceled = info.value.__cause__
    assert isinstance(canceled, TransactionCanceled)
    first, second, third = canceled.items
    assert type(first) is User and first.version == 1
    assert second is None
    assert type(third) is Post and third.likes == 3


def test_a_move_onto_a_stored_key_reports_the_item_in_the_way(session: Session) -> None:
    later = post().created_at + dt.timedelta(hours=1)
    session.put(post())
    session.put(post(created_at=later, title="in the way"))
    uow = session.unit_of_work()
    moving = uow.get(Post, user_id="u1", created_at=post().created_at, post_id="p1")
    assert moving is not None
    moving.created_at = later
    with pytest.raises(ItemAlreadyExists) as info:
        uow.commit()
    assert type(info.value.item) is Post and info.value.item.title == "in the way"
