"""Automatic timestamps (`created=` / `updated=`): stamped on every write path, in UTC,
rebuilt into a "recently updated" index, never moved by a write that changes nothing."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import Field

import dynaorm._timestamps
from dynaorm import Entity, Index, Session, Table
from dynaorm.errors import ConditionFailed, DefinitionError, ExpressionError, TransactionCanceled
from dynaorm.testing import use_clock
from tests.dynamodb_local import Backend

from .conftest import Recorder

UTC = dt.timezone.utc
T0 = dt.datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
PLUS_TWO = dt.timezone(dt.timedelta(hours=2))

stamps = Table("stamps")


class Doc(
    Entity,
    table=stamps,
    pk="DOC#{doc_id}",
    sk="DOC",
    version="version",
    created="created_at",
    updated="updated_at",
):
    doc_id: str
    title: str
    kind: str = "doc"
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    version: int = 0

    recent = Index(pk="RECENT#{kind}", sk="{updated_at}")


class Note(
    Entity,
    table=stamps,
    pk="DOC#{doc_id}",
    sk="NOTE#{created_at}",
    created="created_at",
    updated="updated_at",
):
    doc_id: str
    text: str
    created_at: dt.datetime
    updated_at: dt.datetime | None = None


class Stamped(Entity, table=stamps, created="created_at", updated="updated_at"):
    """An abstract base: its subclasses inherit the timestamp options."""

    created_at: dt.datetime | None = Field(default=None, alias="createdAt")
    updated_at: dt.datetime | None = Field(default=None, alias="updatedAt")


class Aliased(Stamped, pk="ALIASED#{doc_id}", sk="A"):
    doc_id: str


class Clock:
    """The injected clock: returns `at`, which a test moves (even backwards)."""

    def __init__(self, at: dt.datetime) -> None:
        self.at = at

    def __call__(self) -> dt.datetime:
        return self.at

    def tick(self, seconds: float = 1) -> dt.datetime:
        self.at += dt.timedelta(seconds=seconds)
        return self.at


@pytest.fixture
def clock() -> Iterator[Clock]:
    clock = Clock(T0)
    with use_clock(clock):
        yield clock


_tables = itertools.count()


@pytest.fixture
def db(dynamodb_backend: Backend) -> Iterator[Session]:
    session = dynamodb_backend.session(table_prefix=f"ts{dynamodb_backend.run_id}_{next(_tables)}_")
    session.create_table(stamps)
    yield session
    session.delete_table(stamps)
    session.transport.close()


@pytest.fixture
def calls(db: Session) -> Iterator[Recorder]:
    recorder = Recorder()
    db.transport.add_listener(recorder)
    yield recorder
    db.transport.remove_listener(recorder)


def stored(db: Session, doc_id: str = "d1") -> Doc:
    found = db.get(Doc, consistent=True, doc_id=doc_id)
    assert found is not None
    return found


def recent(db: Session, kind: str = "doc") -> list[tuple[str, dt.datetime | None]]:
    return [(d.doc_id, d.updated_at) for d in db.query(Doc.recent, kind=kind).reverse().all()]


def test_create_stamps_both_fields_in_utc_and_the_index(
    db: Session, calls: Recorder, clock: Clock
) -> None:
    clock.at = dt.datetime(2025, 1, 1, 14, 0, tzinfo=PLUS_TWO)  # 12:00 UTC
    doc = Doc(doc_id="d1", title="a")
    db.create(doc)
    (operation, params), *_ = calls.calls
    item = params["Item"]
    assert operation == "PutItem"
    assert item["created_at"] == {"S": "2025-01-01T12:00:00.000000+00:00"}
    assert item["updated_at"] == {"S": "2025-01-01T12:00:00.000000+00:00"}
    assert item["GSI1PK"] == {"S": "RECENT#doc"}
    assert item["GSI1SK"] == {"S": "2025-01-01T12:00:00.000000Z"}
    assert doc.created_at == doc.updated_at == T0
    assert doc.created_at.tzinfo == UTC  # type: ignore[union-attr]
    assert stored(db) == doc


def test_a_failed_write_leaves_the_object_unstamped(db: Session, clock: Clock) -> None:
    db.create(Doc(doc_id="d1", title="a"))
    again = Doc(doc_id="d1", title="b")
    with pytest.raises(ConditionFailed):
        db.create(again)
    assert again.created_at is None and again.updated_at is None


def test_update_stamps_updated_and_moves_the_item_in_the_recent_index(
    db: Session, calls: Recorder, clock: Clock
) -> None:
    db.create(Doc(doc_id="d1", title="a"))
    db.create(Doc(doc_id="d2", title="b"))
    doc = stored(db)
    t1 = clock.tick()
    calls.clear()
    result = db.update(doc, set={"title": "a2"})
    params = calls.calls[0][1]
    assert calls.operations() == ["UpdateItem"]
    values = params["ExpressionAttributeValues"].values()
    assert {"S": "2025-01-01T12:00:01.000000+00:00"} in values
    assert {"S": "2025-01-01T12:00:01.000000Z"} in values  # the rebuilt GSI1SK
    assert result.updated_at == doc.updated_at == t1
    assert result.created_at == T0  # updates never touch created
    assert recent(db) == [("d1", t1), ("d2", T0)]


def test_update_by_key_stamps_updated(db: Session, clock: Clock) -> None:
    db.create(Note(doc_id="d1", text="a", created_at=T0))
    t1 = clock.tick()
    note = db.update(Note.key(doc_id="d1", created_at=T0), set={"text": "b"})
    assert (note.text, note.created_at, note.updated_at) == ("b", T0, t1)


def test_an_update_with_no_changes_is_still_refused(
    db: Session, calls: Recorder, clock: Clock
) -> None:
    db.create(Note(doc_id="d1", text="a", created_at=T0))
    clock.tick()
    calls.clear()
    with pytest.raises(ExpressionError, match="at least one action"):
        db.update(Note.key(doc_id="d1", created_at=T0))
    assert calls.operations() == []


def test_an_empty_update_of_a_versioned_entity_bumps_and_stamps(db: Session, clock: Clock) -> None:
    db.create(Doc(doc_id="d1", title="a"))
    t1 = clock.tick()
    doc = db.update(stored(db))
    assert (doc.version, doc.updated_at) == (2, t1)


def test_aliased_fields_and_an_abstract_base_carry_the_options(db: Session, clock: Clock) -> None:
    db.create(Aliased(doc_id="d1"))
    item = db.transport.call(
        "GetItem",
        {"TableName": db.table_name(stamps), "Key": Aliased.key(doc_id="d1").to_dynamodb()},
    )["Item"]
    assert item["createdAt"] == item["updatedAt"] == {"S": "2025-01-01T12:00:00.000000+00:00"}
    assert Aliased.__dynaorm__.updated == "updated_at"


def test_an_explicit_updated_value_wins(db: Session, clock: Clock) -> None:
    db.create(Doc(doc_id="d1", title="a"))
    chosen = dt.datetime(2030, 1, 1, tzinfo=UTC)
    assert db.update(stored(db), set={"updated_at": chosen}).updated_at == chosen


def test_a_unit_of_work_without_changes_sends_nothing(
    db: Session, calls: Recorder, clock: Clock
) -> None:
    db.create(Doc(doc_id="d1", title="a"))
    clock.tick()
    calls.clear()
    with db.unit_of_work() as uow:
        uow.get(Doc, doc_id="d1")
    assert "TransactWriteItems" not in calls.operations()
    assert stored(db).updated_at == T0


def test_a_dirty_object_is_stamped_and_reindexed_by_the_unit_of_work(
    db: Session, clock: Clock
) -> None:
    db.create(Doc(doc_id="d1", title="a"))
    db.create(Doc(doc_id="d2", title="b"))
    t1 = clock.tick()
    with db.unit_of_work() as uow:
        doc = uow.get(Doc, doc_id="d1")
        assert doc is not None
        doc.title = "a2"
    assert (doc.created_at, doc.updated_at, doc.version) == (T0, t1, 2)
    assert stored(db) == doc
    assert recent(db) == [("d1", t1), ("d2", T0)]


def test_unit_of_work_add_and_put_stamp(db: Session, clock: Clock) -> None:
    db.create(Doc(doc_id="d1", title="a"))
    t1 = clock.tick()
    replacement = stored(db).model_copy(update={"title": "a2"})
    fresh = Doc(doc_id="d2", title="b")
    with db.unit_of_work() as uow:
        uow.add(fresh)
        uow.put(replacement)
    assert (fresh.created_at, fresh.updated_at) == (t1, t1)
    assert (replacement.created_at, replacement.updated_at) == (T0, t1)
    assert stored(db, "d2") == fresh and stored(db) == replacement


def test_put_keeps_the_created_at_the_object_holds(db: Session, clock: Clock) -> None:
    db.create(Doc(doc_id="d1", title="a"))
    t1 = clock.tick()
    doc = stored(db)
    doc.title = "a2"
    db.put(doc)
    assert (stored(db).created_at, stored(db).updated_at) == (T0, t1)
    # A fresh object holds no created_at: a Put replaces the whole item, so it is stamped
    # now (documented; read the item or use update to keep the stored one).
    t2 = clock.tick()
    db.put(Doc(doc_id="d1", title="a3", version=2))
    assert (stored(db).created_at, stored(db).updated_at) == (t2, t2)


def test_created_as_a_sort_key_slot_keeps_the_given_value(db: Session, clock: Clock) -> None:
    at = dt.datetime(2024, 6, 1, tzinfo=UTC)
    note = Note(doc_id="d1", text="a", created_at=at)
    db.create(note)
    assert (note.created_at, note.updated_at) == (at, T0)
    assert db.get(Note, doc_id="d1", created_at=at) == note


def test_batch_write_stamps_what_it_wrote(db: Session, clock: Clock) -> None:
    notes = [Note(doc_id=f"d{n}", text="a", created_at=T0) for n in range(30)]
    t1 = clock.tick()
    db.batch_write(put=notes)
    assert {n.updated_at for n in notes} == {t1}
    assert db.get(Note, doc_id="d29", created_at=T0) == notes[29]


def test_a_key_move_keeps_created_and_stamps_updated(db: Session, clock: Clock) -> None:
    db.create(Note(doc_id="d1", text="a", created_at=T0))
    t1 = clock.tick()
    moved_to = dt.datetime(2024, 1, 1, tzinfo=UTC)
    with db.unit_of_work() as uow:
        note = uow.get(Note, doc_id="d1", created_at=T0)
        assert note is not None
        note.created_at = moved_to
    assert db.get(Note, doc_id="d1", created_at=T0) is None
    moved = db.get(Note, doc_id="d1", created_at=moved_to)
    assert moved is not None and moved.updated_at == t1 == note.updated_at


def test_a_clock_going_backwards_never_moves_updated_back(db: Session, clock: Clock) -> None:
    db.create(Doc(doc_id="d1", title="a"))
    clock.at = T0 - dt.timedelta(hours=1)
    doc = db.update(stored(db), set={"title": "b"})
    assert doc.updated_at == T0 + dt.timedelta(microseconds=1)


def test_a_second_writer_changing_an_index_source_fails_the_stale_update(
    db: Session, backend_sessions: tuple[Session, Session], clock: Clock
) -> None:
    """updated_at feeds the recent index; rebuilding its key from a stale `kind` must fail."""
    db.create(Doc(doc_id="d1", title="a"))
    first, second = backend_sessions
    mine = first.get(Doc, doc_id="d1", consistent=True)
    theirs = second.get(Doc, doc_id="d1", consistent=True)
    assert mine is not None and theirs is not None
    clock.tick()
    second.update(theirs, set={"kind": "memo"})
    clock.tick()
    with pytest.raises((ConditionFailed, TransactionCanceled)):
        first.update(mine, set={"title": "mine"})
    assert recent(db, "doc") == []
    assert [d for d, _ in recent(db, "memo")] == ["d1"]


@pytest.fixture
def backend_sessions(db: Session, dynamodb_backend: Backend) -> Iterator[tuple[Session, Session]]:
    prefix = db.transport.table_prefix
    pair = (
        dynamodb_backend.session(table_prefix=prefix),
        dynamodb_backend.session(table_prefix=prefix),
    )
    yield pair
    for session in pair:
        session.transport.close()


def test_use_clock_restores_the_system_clock() -> None:
    with use_clock(lambda: T0):
        assert dynaorm._timestamps.now() == T0
    assert dynaorm._timestamps.now() > T0


def test_a_naive_clock_is_refused(db: Session, clock: Clock) -> None:
    clock.at = dt.datetime(2025, 1, 1)  # naive: the point of the test
    with pytest.raises(DefinitionError, match="timezone-aware"):
        db.create(Doc(doc_id="d1", title="a"))


# -- monotone across every write path -------------------------------------------------

WRITES = st.sampled_from(["put", "update", "uow_dirty", "uow_put", "uow_noop"])
STEPS = st.lists(st.tuples(WRITES, st.integers(-3600, 3600)), min_size=1, max_size=8)
_examples = itertools.count()


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=STEPS)
def test_timestamps_are_monotone_per_item_across_write_paths(
    db: Session, clock: Clock, steps: list[tuple[str, int]]
) -> None:
    """Whatever the clock does, each write that changes the item moves updated_at forward,
    a write that changes nothing leaves it, and created_at never changes after create."""
    doc_id = f"m{next(_examples)}"
    clock.at = T0
    db.create(Doc(doc_id=doc_id, title="0"))
    previous = stored(db, doc_id).updated_at
    assert previous is not None
    for n, (write, jump) in enumerate(steps, 1):
        clock.tick(jump)
        _write(db, write, doc_id, str(n))
        now = stored(db, doc_id)
        assert now.created_at == T0
        assert now.updated_at is not None
        if write == "uow_noop":
            assert now.updated_at == previous
        else:
            assert now.updated_at > previous
        previous = now.updated_at


def _write(db: Session, write: str, doc_id: str, title: str) -> None:
    current = stored(db, doc_id)
    if write == "put":
        db.put(current.model_copy(update={"title": title}))
    elif write == "update":
        db.update(current, set={"title": title})
    else:
        with db.unit_of_work() as uow:
            tracked: Any = uow.get(Doc, doc_id=doc_id)
            if write == "uow_dirty":
                tracked.title = title
            elif write == "uow_put":
                uow.put(current.model_copy(update={"title": title}))


# -- definitions ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "annotation", "message"),
    [
        ({"created": "nope"}, dt.datetime, "is not a field"),
        ({"updated": "at"}, str, "must be declared `datetime`"),
        ({"updated": "at"}, dt.date, "must be declared `datetime`"),
        ({"created": "at", "updated": "at"}, dt.datetime, "both name 'at'"),
        ({"updated": "at", "sk": "AT#{at}"}, dt.datetime, "primary-key slot"),
    ],
)
def test_bad_timestamp_options_are_refused_at_class_definition(
    options: dict[str, Any], annotation: Any, message: str
) -> None:
    keys = {"pk": "X#{x}", "sk": "X", **options}
    with pytest.raises(DefinitionError, match=message):

        class Bad(Entity, table=Table("bad"), **keys):  # type: ignore[call-arg]
            x: str
            at: annotation  # type: ignore[valid-type]


def test_the_exact_update_request_sets_updated_at(
    db: Session, calls: Recorder, clock: Clock
) -> None:
    db.create(Note(doc_id="d1", text="a", created_at=T0))
    clock.tick()
    calls.clear()
    db.update(Note.key(doc_id="d1", created_at=T0), set={"text": "b"})
    assert calls.calls == [
        (
            "UpdateItem",
            {
                "TableName": db.table_name(stamps),
                "Key": {"PK": {"S": "DOC#d1"}, "SK": {"S": "NOTE#2025-01-01T12:00:00.000000Z"}},
                "UpdateExpression": "SET #n0 = :v0, #n1 = :v1",
                "ExpressionAttributeNames": {"#n0": "text", "#n1": "updated_at", "#n2": "PK"},
                "ExpressionAttributeValues": {
                    ":v0": {"S": "b"},
                    ":v1": {"S": "2025-01-01T12:00:01.000000+00:00"},
                },
                "ConditionExpression": "attribute_exists(#n2)",
                "ReturnValues": "ALL_NEW",
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            },
        )
    ]
