"""Issue 13 section 4: every value round-trips or is refused before sending, on both backends.

"Refused" means a dynaorm error and an empty recorder. A read never raises pydantic's
`ValidationError`: an item that does not fit its entity is an `ItemDecodingError`.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from blog_models import User
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field, ValidationError, computed_field

from dynaorm import Collection, Entity, Session, Table
from dynaorm.errors import (
    ExpressionError,
    ItemDecodingError,
    ItemEncodingError,
    KeyEncodingError,
    UniqueConstraintViolation,
)
from dynaorm.testing.strategies import entities

from .conftest import Recorder

codec = Table("codec")


class Reviewer(BaseModel):
    name: str
    score: int = 0
    badges: set[str] = set()
    nick: str = Field("", serialization_alias="n")


class Doc(Entity, table=codec, pk="DOC#{doc_id}", sk="DOC"):
    doc_id: str
    tags: set[str]  # required: no default
    maybe: set[str] | None = None
    counts: dict[str, set[int]] = {}
    reviewers: dict[str, Reviewer] = {}
    title: str = Field("", serialization_alias="t")
    body: str = Field("", validation_alias="b")
    both: str = Field("", alias="bo", serialization_alias="bs")
    extra: dict[str, Any] = {}


class Note(Entity, table=codec, pk="DOC#{doc_id}", sk="NOTE#{note_id}"):
    doc_id: str
    note_id: str
    text: str
    size: int = 0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def length(self) -> int:
        return len(self.text)


doc_notes = Collection(Doc, Note)


@pytest.fixture
def table(session: Session) -> Iterator[Table]:
    session.create_table(codec)
    yield codec
    session.delete_table(codec)


def raw_put(session: Session, item: dict[str, Any]) -> None:
    session.transport.call("PutItem", {"TableName": session.table_name(codec), "Item": item})


def test_required_empty_set_reads_back_in_get_query_and_collection(
    session: Session, table: Table
) -> None:
    doc = Doc(doc_id="d1", tags=set())
    session.put(doc)
    assert session.get(Doc, doc_id="d1", consistent=True) == doc
    assert session.query(Doc, doc_id="d1").all() == [doc]
    assert session.collection(doc_notes, doc_id="d1")[Doc] == [doc]
    assert session.scan(Doc).all() == [doc]
    assert session.batch_get([Doc.key(doc_id="d1")]) == [doc]


def test_empty_set_that_would_read_back_as_none_is_refused(
    session: Session, table: Table, recorder: Recorder
) -> None:
    recorder.clear()
    with pytest.raises(ItemEncodingError, match=r"Doc\.maybe") as caught:
        session.put(Doc(doc_id="d1", tags={"a"}, maybe=set()))
    assert caught.value.field == "maybe"
    assert recorder.calls == []


def test_nested_empty_sets_round_trip(session: Session, table: Table) -> None:
    doc = Doc(
        doc_id="d1",
        tags={"x"},
        counts={"none": set(), "some": {1, 2}},
        reviewers={"bob": Reviewer(name="Bob")},  # badges=set() inside a model
    )
    session.put(doc)
    assert session.get(Doc, doc_id="d1", consistent=True) == doc


@pytest.mark.parametrize("bad", ["", "lone\ud800"])
def test_empty_and_surrogate_map_keys_are_refused(
    session: Session, table: Table, recorder: Recorder, bad: str
) -> None:
    recorder.clear()
    with pytest.raises(ItemEncodingError, match="map key") as caught:
        session.put(Doc(doc_id="d1", tags={"x"}, extra={"ok": {bad: 1}}))
    assert caught.value.entity == "Doc"
    assert caught.value.field == "extra.ok"
    assert caught.value.value == bad
    with pytest.raises(ExpressionError, match="map key"):
        session.update(Doc.key(doc_id="d1"), set={"extra": {bad: 1}})
    assert recorder.calls == []


def test_aliases_are_written_and_read_under_the_same_names(
    session: Session, table: Table, recorder: Recorder
) -> None:
    doc = Doc(
        doc_id="d1",
        tags={"x"},
        title="T",
        b="B",
        bo="S",
        reviewers={"ann": Reviewer(name="Ann", nick="A")},
    )
    recorder.clear()
    session.put(doc)
    item = recorder.calls[0][1]["Item"]
    assert item["t"] == {"S": "T"}
    assert item["body"] == {"S": "B"}
    assert item["bs"] == {"S": "S"}
    assert item["reviewers"]["M"]["ann"]["M"]["n"] == {"S": "A"}
    assert session.get(Doc, doc_id="d1", consistent=True) == doc
    # Conditions and updates address the stored names too.
    updated = session.update(doc, set={"title": "U", "both": "V"}, condition=Doc.title == "T")
    assert (updated.title, updated.both) == ("U", "V")
    assert session.get(Doc, doc_id="d1", consistent=True) == updated


def test_computed_fields_are_not_stored_and_never_break_a_write(
    session: Session, table: Table, recorder: Recorder
) -> None:
    note = Note(doc_id="d1", note_id="n1", text="abc")
    recorder.clear()
    session.put(note)
    assert "length" not in recorder.calls[0][1]["Item"]
    with session.unit_of_work() as uow:
        loaded = uow.get(Note, doc_id="d1", note_id="n1")
        assert loaded is not None
        loaded.text = "abcdef"
    with session.unit_of_work() as uow:
        uow.add(Note(doc_id="d1", note_id="n2", text="x"))
    stored = session.get(Note, doc_id="d1", note_id="n1", consistent=True)
    assert stored is not None
    assert stored.length == 6
    updated = session.update(stored, set={"text": "abcdefgh"})
    assert updated.length == 8


def test_removing_a_required_field_is_refused(
    session: Session, table: Table, recorder: Recorder
) -> None:
    session.put(Note(doc_id="d1", note_id="n1", text="abc"))
    recorder.clear()
    with pytest.raises(ExpressionError, match=r"Note\.text is required") as caught:
        session.update(Note.key(doc_id="d1", note_id="n1"), remove=["text"])
    assert caught.value.field == "text"
    assert recorder.calls == []
    # A required set may go: it reads back as an empty set.
    session.put(Doc(doc_id="d1", tags={"a"}))
    assert session.update(Doc.key(doc_id="d1"), remove=["tags"]).tags == set()
    assert session.update(Doc.key(doc_id="d1"), set={"tags": {"b"}}).tags == {"b"}
    recorder.clear()
    assert session.update(Doc.key(doc_id="d1"), set={"tags": set()}).tags == set()
    assert recorder.calls[0][1]["UpdateExpression"] == "REMOVE #n0"
    assert recorder.calls[0][1]["ExpressionAttributeNames"]["#n0"] == "tags"
    with pytest.raises(ExpressionError, match="empty set"):
        session.update(Doc.key(doc_id="d1"), set={"maybe": set()})


def test_values_at_typed_map_paths_are_validated_and_encoded(
    session: Session, table: Table, recorder: Recorder
) -> None:
    session.put(Doc(doc_id="d1", tags={"a"}))
    key = Doc.key(doc_id="d1")
    recorder.clear()
    updated = session.update(key, set={Doc.reviewers["bob"]: Reviewer(name="Bob", nick="B")})
    assert updated.reviewers == {"bob": Reviewer(name="Bob", nick="B")}
    params = recorder.calls[0][1]
    assert params["UpdateExpression"] == "SET #n0.#n1 = :v0"
    assert params["ExpressionAttributeNames"] == {"#n0": "reviewers", "#n1": "bob", "#n2": "PK"}
    assert params["ExpressionAttributeValues"] == {
        ":v0": {
            "M": {
                "name": {"S": "Bob"},
                "score": {"N": "0"},
                "badges": {"L": []},  # a nested empty set
                "n": {"S": "B"},  # the serialization alias
            }
        }
    }
    updated = session.update(key, set={Doc.reviewers["eve"]: {"name": "Eve", "score": "3"}})
    assert updated.reviewers["eve"] == Reviewer(name="Eve", score=3)
    updated = session.update(key, set={Doc.reviewers["bob"].score: "7"})
    assert updated.reviewers["bob"].score == 7
    recorder.clear()
    for target, wrong in [
        (Doc.reviewers["bob"], {"score": 1}),  # no name
        (Doc.reviewers["bob"].score, "many"),
        (Doc.counts["x"], {"a"}),
    ]:
        with pytest.raises(ExpressionError, match="not a valid value") as caught:
            session.update(key, set={target: wrong})
        assert caught.value.entity == "Doc"
    assert recorder.calls == []
    assert session.get(Doc, doc_id="d1", consistent=True) == updated


def test_any_typed_numbers_follow_the_documented_number_model(
    session: Session, table: Table
) -> None:
    doc = Doc(doc_id="d1", tags={"a"}, extra={"f": 0.1, "w": 2.0, "i": 3})
    session.put(doc)
    loaded = session.get(Doc, doc_id="d1", consistent=True)
    assert loaded is not None
    # An Any-typed value cannot say it was a float: numbers read back as int when
    # integral, else Decimal (docs/guarantees.md, "Numbers").
    assert loaded.extra == {"f": Decimal("0.1"), "w": 2, "i": 3}
    assert type(loaded.extra["w"]) is int


def test_items_that_do_not_fit_raise_item_decoding_error_on_every_read(
    session: Session, table: Table
) -> None:
    raw_put(
        session,
        {
            "PK": {"S": "DOC#d9"},
            "SK": {"S": "NOTE#n9"},
            "_type": {"S": "Note"},
            "doc_id": {"S": "d9"},
            "note_id": {"S": "n9"},
            "text": {"S": "ok"},
            "size": {"S": "not a number"},
        },
    )
    reads = [
        lambda: session.get(Note, doc_id="d9", note_id="n9"),
        lambda: session.query(Note, doc_id="d9").all(),
        lambda: session.scan(Note).all(),
        lambda: session.collection(doc_notes, doc_id="d9"),
        lambda: session.batch_get([Note.key(doc_id="d9", note_id="n9")]),
    ]
    for read in reads:
        with pytest.raises(ItemDecodingError) as caught:
            read()
        error = caught.value
        assert error.entity == "Note"
        assert error.key == ("DOC#d9", "NOTE#n9")
        assert error.field == "size"
        assert error.value == "not a number"
        assert isinstance(error.__cause__, ValidationError)


# -- every field type: equal after put/get, or refused before sending -----------------


class Leaf(BaseModel):
    label: str
    marks: set[int]
    alias_only: str = Field("", serialization_alias="ao")
    inner: dict[str, frozenset[str]] = {}


class Every(Entity, table=codec, pk="EVERY#{every_id}", sk="EVERY"):
    every_id: str
    text: str
    number: int
    ratio: float
    amount: Decimal
    flag: bool
    blob: bytes
    when: dt.datetime
    day: dt.date
    uid: UUID
    span: dt.timedelta
    tags: set[str]
    nums: frozenset[int] = frozenset()
    maybe_tags: set[str] | None = None
    words: list[str] = []
    sets_by_name: dict[str, set[int]] = {}
    list_of_sets: list[set[str]] = []
    leaf: Leaf | None = None
    leaves: dict[str, Leaf] = {}
    pair: tuple[int, set[str]] | None = None
    anything: dict[str, Any] = {}
    titled: str = Field("", serialization_alias="ttl_")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def tag_count(self) -> int:
        return len(self.tags)


# JSON-like values an Any field can hold and read back equal (no floats: see the number
# model), with empty sets and any map keys, empty and lone surrogates included.
map_keys = st.text(max_size=3) | st.sampled_from(["", "\ud800", "k"])
anything = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**20), 10**20) | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(map_keys, inner, max_size=3),
    max_leaves=6,
)
every = entities(
    Every,
    every_id=st.text(st.characters(codec="ascii", categories=["L"]), min_size=1, max_size=4),
    maybe_tags=st.none() | st.sets(st.text(min_size=1, max_size=3), max_size=2),
    sets_by_name=st.dictionaries(map_keys, st.sets(st.integers(-5, 5), max_size=2), max_size=3),
    anything=st.dictionaries(st.text(min_size=1, max_size=3), anything, max_size=3),
)
IO = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def test_every_field_type_round_trips_or_is_refused_before_sending(
    session: Session, table: Table, recorder: Recorder
) -> None:
    outcomes: Counter[str] = Counter()

    @IO
    @given(every)
    def check(entity: Every) -> None:
        recorder.clear()
        try:
            session.put(entity)
        except (ItemEncodingError, KeyEncodingError):
            assert recorder.calls == [], "refused after sending"
            outcomes["refused"] += 1
            return
        loaded = session.get(Every, consistent=True, **entity.get_key().slots)
        assert loaded == entity
        assert [type(v) for v in loaded.tags] == [type(v) for v in entity.tags]
        outcomes["equal"] += 1

    check()
    # Both outcomes happen: the strategy reaches empty sets and bad map keys.
    assert outcomes["equal"] >= 10, outcomes
    assert outcomes["refused"] >= 3, outcomes


def test_a_path_to_a_whole_field_gets_the_checks_of_its_name(session: Session) -> None:
    """`set={User.email: ...}` is `set={"email": ...}`: guards, key and version rules apply."""
    session.create(User(user_id="u1", email="a@x", name="A"))
    second = User(user_id="u2", email="b@x", name="B")
    session.create(second)
    with pytest.raises(UniqueConstraintViolation):
        session.update(second, set={User.email: "a@x"})
    with pytest.raises(KeyEncodingError, match="primary-key fields"):
        session.update(User.key(user_id="u2"), set={User.user_id: "zz"})
    with pytest.raises(ExpressionError, match="version field"):
        session.update(second, set={User.version: 7})
    with pytest.raises(UniqueConstraintViolation), session.unit_of_work() as uow:
        uow.update(second, set={User.email: "a@x"})
    moved = session.update(second, set={User.email: "c@x"})
    assert moved.email == "c@x"
    assert session.query(User.by_email, email="c@x").all() == [moved]
    session.create(User(user_id="u3", email="b@x", name="C"))  # the old value is free
