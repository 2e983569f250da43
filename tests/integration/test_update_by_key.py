"""Updating fields that feed an index by key, with the other slot values given in
`composite=` (issue 15 item 4): exactly the missing fields are named, the update is
conditioned on the values given, and a second writer in between is caught."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest

from dynaorm import Entity, Index, Session, Table
from dynaorm.errors import ExpressionError, KeyEncodingError, StaleEntity

from .conftest import Recorder

docs = Table("docs")
AT = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)


class Doc(Entity, table=docs, pk="DOC#{doc_id}", sk="DOC"):
    """Two indexes share `topic`; each needs another field to rebuild its key."""

    doc_id: str
    owner: str
    topic: str
    created_at: dt.datetime
    title: str = ""

    by_topic = Index(pk="TOPIC#{topic}", sk="{created_at}")
    by_owner = Index(pk="OWNER#{owner}", sk="{topic}")


@pytest.fixture
def doc_session(session: Session) -> Iterator[Session]:
    session.create_table(docs)
    session.create(Doc(doc_id="d1", owner="ann", topic="aws", created_at=AT))
    yield session
    session.delete_table(docs)


def _found(session: Session) -> tuple[list[str], list[str]]:
    stored = session.get(Doc, doc_id="d1", consistent=True)
    assert stored is not None
    by_topic = session.query(Doc.by_topic, topic=stored.topic).all()
    by_owner = session.query(Doc.by_owner, owner=stored.owner).all()
    return [d.topic for d in by_topic], [d.topic for d in by_owner]


def test_without_composite_the_refusal_lists_exactly_the_missing_fields(
    doc_session: Session, recorder: Recorder
) -> None:
    recorder.clear()
    key = Doc.key(doc_id="d1")
    with pytest.raises(KeyEncodingError) as info:
        doc_session.update(key, set={"topic": "gcp"})
    assert "pass the stored values of ['created_at', 'owner'] with composite=" in str(info.value)
    assert "created_at feeds by_topic, owner feeds by_owner" in str(info.value)
    assert info.value.field == "created_at"
    with pytest.raises(KeyEncodingError) as partial:
        doc_session.update(key, set={"topic": "gcp"}, composite={"created_at": AT})
    assert "['owner']" in str(partial.value) and "created_at'" not in str(partial.value)
    with pytest.raises(KeyEncodingError) as uow_info:
        doc_session.unit_of_work().update(key, set={"topic": "gcp"})
    assert "['created_at', 'owner']" in str(uow_info.value)
    assert recorder.calls == []


def test_composite_rebuilds_every_index_and_conditions_on_the_values_given(
    doc_session: Session, recorder: Recorder
) -> None:
    recorder.clear()
    updated = doc_session.update(
        Doc.key(doc_id="d1"), set={"topic": "gcp"}, composite={"owner": "ann", "created_at": AT}
    )
    assert updated.topic == "gcp" and updated.owner == "ann"
    ((operation, params),) = recorder.calls
    assert operation == "UpdateItem"
    assert params["Key"] == {"PK": {"S": "DOC#d1"}, "SK": {"S": "DOC"}}
    names, values = params["ExpressionAttributeNames"], params["ExpressionAttributeValues"]
    expression = params["UpdateExpression"]
    for name in names:
        expression = expression.replace(name, names[name])
    for value in values:
        expression = expression.replace(value, str(values[value]))
    assert expression == (
        "SET topic = {'S': 'gcp'}, GSI2PK = {'S': 'TOPIC#gcp'}, "
        "GSI2SK = {'S': '2026-01-02T03:04:05.000000Z'}, GSI1PK = {'S': 'OWNER#ann'}, "
        "GSI1SK = {'S': 'gcp'}"
    )
    condition = params["ConditionExpression"]
    for name in names:
        condition = condition.replace(name, names[name])
    for value in values:
        condition = condition.replace(value, str(values[value]))
    assert condition == (
        "attribute_exists(PK) AND created_at = {'S': '2026-01-02T03:04:05.000000+00:00'} "
        "AND owner = {'S': 'ann'}"
    )
    assert params["ReturnValuesOnConditionCheckFailure"] == "ALL_OLD"
    assert _found(doc_session) == (["gcp"], ["gcp"])


def test_a_second_writer_in_between_is_caught_by_the_composite_condition(
    doc_session: Session,
) -> None:
    doc_session.update(Doc.key(doc_id="d1"), set={"owner": "bob"}, composite={"topic": "aws"})
    with pytest.raises(StaleEntity) as info:
        doc_session.update(
            Doc.key(doc_id="d1"), set={"topic": "gcp"}, composite={"owner": "ann", "created_at": AT}
        )
    assert info.value.fields == {"owner": ("ann", "bob")}
    assert type(info.value.item) is Doc and info.value.item.owner == "bob"
    assert _found(doc_session) == (["aws"], ["aws"])  # both indexes agree with the item


def test_the_unit_of_work_takes_composite_too(doc_session: Session) -> None:
    with doc_session.unit_of_work() as uow:
        uow.update(
            Doc.key(doc_id="d1"), set={"topic": "db"}, composite={"owner": "ann", "created_at": AT}
        )
    assert _found(doc_session) == (["db"], ["db"])


@pytest.mark.parametrize(
    ("changes", "composite", "wrong"),
    [
        ({"title": "t"}, {"owner": "ann"}, "['owner'] are not among them"),
        ({"topic": "x"}, {"owner": "a", "created_at": AT, "title": "t"}, "['title']"),
        ({"topic": "x", "owner": "b"}, {"owner": "a", "created_at": AT}, "['owner']"),
    ],
)
def test_composite_fields_the_update_does_not_need_are_refused(
    doc_session: Session, recorder: Recorder, changes: Any, composite: Any, wrong: str
) -> None:
    recorder.clear()
    with pytest.raises(ExpressionError) as info:
        doc_session.update(Doc.key(doc_id="d1"), set=changes, composite=composite)
    assert wrong in str(info.value)
    assert recorder.calls == []


def test_composite_with_an_entity_is_refused(doc_session: Session) -> None:
    doc = doc_session.get(Doc, doc_id="d1")
    assert doc is not None
    with pytest.raises(ExpressionError, match="composite= is for an update by key"):
        doc_session.update(doc, set={"topic": "x"}, composite={"owner": "ann"})
    with pytest.raises(ExpressionError, match="composite= is for an update by key"):
        doc_session.unit_of_work().update(doc, set={"topic": "x"}, composite={"owner": "ann"})
