"""Write-path integrity (issue 12): what a write guarantees when another writer got there
first, when the object passed in was edited locally, and when a response is lost.

Every test runs on moto and on DynamoDB Local.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from blog_models import User

from dynaorm import Entity, Index, Session, Table
from dynaorm.errors import (
    StaleEntity,
    UniqueConstraintViolation,
    VersionConflict,
)

from .conftest import Recorder

shapes = Table("shapes")


class Shape(Entity, table=shapes, pk="SHAPE#{shape_id}", sk="SHAPE"):
    """Unversioned (the default), with an index built from two fields."""

    shape_id: str
    a: str
    b: str
    note: str = ""

    by_ab = Index(pk="AB#{a}", sk="{b}")


@pytest.fixture
def shape_session(session: Session) -> Iterator[Session]:
    session.create_table(shapes)
    yield session
    session.delete_table(shapes)


def _index_agrees(session: Session, shape_id: str) -> None:
    """Every index entry of the item is found by the query its stored fields ask for."""
    stored = session.get(Shape, shape_id=shape_id, consistent=True)
    assert stored is not None
    found = session.query(Shape.by_ab, a=stored.a).all()
    assert [(s.shape_id, s.b) for s in found] == [(shape_id, stored.b)]


# -- defect 1: index keys derived from stale values --------------------------------------


def test_update_from_a_stale_object_refuses_to_rebuild_an_index_from_old_values(
    shape_session: Session,
) -> None:
    session = shape_session
    session.create(Shape(shape_id="s1", a="x", b="1"))
    mine = session.get(Shape, shape_id="s1", consistent=True)
    theirs = session.get(Shape, shape_id="s1", consistent=True)
    assert mine is not None and theirs is not None
    session.update(theirs, set={"b": "2"})

    with pytest.raises(StaleEntity) as info:
        session.update(mine, set={"a": "y"})

    assert info.value.entity == "Shape"
    assert info.value.fields == {"b": ("1", "2")}
    _index_agrees(session, "s1")
    assert session.query(Shape.by_ab, a="y").all() == []


def test_unit_of_work_commit_refuses_an_index_built_from_values_changed_since_get(
    shape_session: Session,
) -> None:
    session = shape_session
    session.create(Shape(shape_id="s1", a="x", b="1"))
    uow = session.unit_of_work()
    mine = uow.get(Shape, shape_id="s1")
    assert mine is not None
    session.update(Shape.key(shape_id="s1"), set={"b": "2", "a": "x"})
    mine.a = "y"

    with pytest.raises(StaleEntity) as info:
        uow.commit()

    assert info.value.fields == {"b": ("1", "2")}
    _index_agrees(session, "s1")


def test_unit_of_work_update_refuses_an_index_built_from_values_changed_since_get(
    shape_session: Session,
) -> None:
    session = shape_session
    session.create(Shape(shape_id="s1", a="x", b="1"))
    uow = session.unit_of_work()
    mine = uow.get(Shape, shape_id="s1")
    assert mine is not None
    session.update(Shape.key(shape_id="s1"), set={"b": "2", "a": "x"})
    uow.update(mine, set={"a": "y"})

    with pytest.raises(StaleEntity):
        uow.commit()

    _index_agrees(session, "s1")


def test_update_of_fields_outside_every_index_needs_no_fresh_object(
    shape_session: Session, recorder: Recorder
) -> None:
    session = shape_session
    session.create(Shape(shape_id="s1", a="x", b="1"))
    mine = session.get(Shape, shape_id="s1", consistent=True)
    assert mine is not None
    session.update(Shape.key(shape_id="s1"), set={"b": "2", "a": "x"})
    recorder.clear()

    session.update(mine, set={"note": "hello"})  # no derived value: nothing stale

    request = recorder.calls[0][1]
    assert request["ConditionExpression"] == "attribute_exists(#n1)"  # it exists; no more
    assert request["ExpressionAttributeNames"] == {"#n0": "note", "#n1": "PK"}
    _index_agrees(session, "s1")


# -- defect 2: a unique guard is released only by its owner -----------------------------


def _two_users(session: Session) -> User:
    session.create(User(user_id="u1", email="a@x", name="Ann"))
    session.create(User(user_id="u2", email="b@x", name="Bob"))
    ann = session.get(User, user_id="u1", consistent=True)
    assert ann is not None
    ann.email = "b@x"  # edited locally, never saved
    return ann


def _email_taken(session: Session, email: str) -> bool:
    try:
        session.create(User(user_id=f"probe-{email}", email=email, name="probe"))
    except UniqueConstraintViolation:
        return True
    session.delete(User.key(user_id=f"probe-{email}"))
    return False


def test_unit_of_work_delete_of_a_locally_edited_entity_releases_its_own_guard(
    session: Session,
) -> None:
    ann = _two_users(session)
    with session.unit_of_work() as uow:
        uow.delete(ann)
    assert session.get(User, user_id="u1", consistent=True) is None
    assert _email_taken(session, "b@x")  # still Bob's
    assert not _email_taken(session, "a@x")  # released, not orphaned


def test_session_delete_of_a_locally_edited_entity_releases_its_own_guard(
    session: Session,
) -> None:
    ann = _two_users(session)
    session.delete(ann)
    assert session.get(User, user_id="u1", consistent=True) is None
    assert _email_taken(session, "b@x")
    assert not _email_taken(session, "a@x")


def test_session_update_of_a_locally_edited_entity_moves_its_own_guard(
    session: Session,
) -> None:
    ann = _two_users(session)
    session.update(ann, set={"email": "c@x"})
    assert _email_taken(session, "b@x")
    assert _email_taken(session, "c@x")
    assert not _email_taken(session, "a@x")


def test_unit_of_work_update_of_a_locally_edited_entity_moves_its_own_guard(
    session: Session,
) -> None:
    ann = _two_users(session)
    with session.unit_of_work() as uow:
        uow.update(ann, set={"email": "c@x"})
    assert _email_taken(session, "b@x")
    assert _email_taken(session, "c@x")
    assert not _email_taken(session, "a@x")


def test_every_guard_release_is_conditioned_on_its_owner(
    session: Session, recorder: Recorder
) -> None:
    session.create(User(user_id="u1", email="a@x", name="Ann"))
    recorder.clear()
    session.delete(User.key(user_id="u1"))
    operation, request = recorder.calls[-1]
    assert operation == "TransactWriteItems"
    guard = request["TransactItems"][1]["Delete"]
    assert guard["Key"]["PK"] == {"S": "UNIQUE#User#email#a@x"}
    condition = guard["ConditionExpression"]
    names = guard["ExpressionAttributeNames"]
    values = guard["ExpressionAttributeValues"]
    assert {names[n] for n in names} == {"owner_pk", "owner_sk"}
    assert sorted(v["S"] for v in values.values()) == ["PROFILE", "USER#u1"]
    assert condition.count("=") == 2


def test_delete_whose_version_matched_but_values_moved_is_not_a_version_conflict(
    session: Session,
) -> None:
    # A unit of work deletes what it read; another writer changed the unique value
    # with a raw write that left the version alone: not a version conflict.
    session.create(User(user_id="u1", email="a@x", name="Ann"))
    uow = session.unit_of_work()
    ann = uow.get(User, user_id="u1")
    assert ann is not None
    session.transport.call(
        "UpdateItem",
        {
            "TableName": session.table_name(User.__dynaorm__.table),
            "Key": User.key(user_id="u1").to_dynamodb(),
            "UpdateExpression": "SET email = :e",
            "ExpressionAttributeValues": {":e": {"S": "z@x"}},
        },
    )
    uow.delete(ann)
    with pytest.raises(StaleEntity) as info:
        uow.commit()
    assert not isinstance(info.value, VersionConflict)
    assert info.value.fields == {"email": ("a@x", "z@x")}


# -- defect 3: after an update the object passed in is the stored item ------------------


def test_update_refreshes_the_object_passed_in(session: Session) -> None:
    session.create(User(user_id="u1", email="a@x", name="Ann"))
    ann = session.get(User, user_id="u1", consistent=True)
    assert ann is not None
    session.update(User.key(user_id="u1"), set={"name": "Other"})  # a second writer
    ann = session.get(User, user_id="u1", consistent=True)
    assert ann is not None

    session.update(ann, set={"name": "Z"})
    assert (ann.name, ann.version) == ("Z", 3)
    session.put(ann)  # must not restore an old name

    stored = session.get(User, user_id="u1", consistent=True)
    assert stored is not None and (stored.name, stored.version) == ("Z", 4)


def test_update_with_guards_refreshes_the_object_passed_in(session: Session) -> None:
    session.create(User(user_id="u1", email="a@x", name="Ann"))
    ann = session.get(User, user_id="u1", consistent=True)
    assert ann is not None
    session.update(ann, set={"email": "c@x", "name": "Z"})
    assert (ann.email, ann.name, ann.version) == ("c@x", "Z", 2)


def test_unit_of_work_update_refreshes_the_object_passed_in(shape_session: Session) -> None:
    session = shape_session
    session.create(User(user_id="u1", email="a@x", name="Ann"))
    with session.unit_of_work() as uow:
        ann = uow.get(User, user_id="u1")
        assert ann is not None
        uow.update(ann, set={"name": "Z"})
    assert (ann.name, ann.version) == ("Z", 2)
    session.put(ann)
    stored = session.get(User, user_id="u1", consistent=True)
    assert stored is not None and (stored.name, stored.version) == ("Z", 3)


# -- defect 6: deleting what is not there ------------------------------------------------


def test_delete_of_a_missing_unique_entity_is_no_error(session: Session) -> None:
    session.delete(User(user_id="ghost", email="g@x", name="Ghost"))
    session.delete(User(user_id="ghost", email="g@x", name="Ghost", version=3))
    with session.unit_of_work() as uow:
        uow.delete(User(user_id="ghost", email="g@x", name="Ghost"))
    assert not _email_taken(session, "g@x")
