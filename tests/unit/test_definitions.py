"""Definitions refused when the class is defined (or its table compiled), never at a write."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import Field

from dynaorm import Entity, Index, Table
from dynaorm._compiler import compile_table
from dynaorm._entity import GUARD_SORT_KEY, GUARD_TYPE
from dynaorm._writes import GUARD_SORT_KEY as WRITTEN_GUARD_SORT_KEY
from dynaorm._writes import GUARD_TYPE as WRITTEN_GUARD_TYPE
from dynaorm._writes import guard_template
from dynaorm.errors import DefinitionError, KeyCollisionError


def test_unique_float_field_is_refused_at_class_definition() -> None:
    with pytest.raises(DefinitionError, match=r"Reading\.celsius.*float") as caught:

        class Reading(Entity, table=Table("defs"), pk="R#{id}", sk="R", unique=("celsius",)):
            id: str
            celsius: float

    assert (caught.value.entity, caught.value.field) == ("Reading", "celsius")
    assert caught.value.value is float


def test_unique_guard_templates_are_built_at_definition() -> None:
    class Account(Entity, table=Table("defs"), pk="A#{id}", sk="A", unique=("email", ("org", "n"))):
        id: str
        email: str
        org: str
        n: int

    guards = Account.__dynaorm__.guards
    assert [g.source for g in guards.values()] == [
        "UNIQUE#Account#email#{email}",
        "UNIQUE#Account#org+n#{org}#{n}",
    ]
    # The writes build their guard keys from the same templates.
    for group, template in guards.items():
        assert guard_template(Account, group).source == template.source
    assert (GUARD_SORT_KEY, GUARD_TYPE) == (WRITTEN_GUARD_SORT_KEY, WRITTEN_GUARD_TYPE)


@pytest.mark.parametrize(
    "name", ["X$", "X Y", "A!", "tab\t", 'q"', "{A}", "A#B", "\ud800", "", "dynaorm.unique"]
)
def test_type_name_obeys_the_literal_segment_rule(name: str) -> None:
    with pytest.raises(DefinitionError, match="type_name") as caught:

        class Bad(Entity, table=Table("defs"), pk="B#{a}", sk="B", type_name=name):
            a: str

    assert caught.value.entity == "Bad"
    assert caught.value.value == name


@given(st.text(min_size=1, max_size=12))
def test_every_accepted_type_name_is_a_literal_key_segment(name: str) -> None:
    # A type name is written as a literal segment (guard keys, index sort values), so the
    # names accepted are exactly the literals templates accept: nothing at or below '$'.
    unsafe = any(ch <= "$" or ch in "{}" or 0xD800 <= ord(ch) <= 0xDFFF for ch in name)
    unsafe = unsafe or name == GUARD_TYPE
    try:

        class Named(Entity, table=Table("defs"), pk="N#{a}", sk="N", type_name=name):
            a: str

    except DefinitionError:
        assert unsafe
    else:
        assert not unsafe


def test_concrete_subclass_of_a_concrete_entity_needs_its_own_keys() -> None:
    table = Table("defs")

    class Parent(Entity, table=table, pk="P#{id}", sk="P"):
        id: str

    with pytest.raises(DefinitionError, match=r"Child.*concrete entity Parent.*pk=") as caught:

        class Child(Parent):
            extra: str

    assert caught.value.entity == "Child"
    assert table.entities == (Parent,)


def test_subclass_with_its_own_keys_is_a_distinct_entity() -> None:
    table = Table("defs")

    class Parent(Entity, table=table, pk="P#{id}", sk="P"):
        id: str

    class Child(Parent, pk="P#{id}", sk="CHILD"):
        extra: str

    assert Child.__dynaorm__.name == "Child"
    assert Child.__dynaorm__ is not Parent.__dynaorm__
    assert table.entities == (Parent, Child)


def test_field_named_like_its_pinned_gsi_key_is_refused() -> None:
    with pytest.raises(DefinitionError, match=r"Post\.ByTopicPK.*ByTopic") as caught:

        class Post(Entity, table=Table("defs"), pk="P#{id}", sk="P"):
            id: str
            topic: str
            ByTopicPK: str = ""

            by_topic = Index(pk="T#{topic}", gsi="ByTopic")

    assert (caught.value.entity, caught.value.field) == ("Post", "ByTopicPK")


def test_field_aliased_to_its_pinned_gsi_key_is_refused() -> None:
    with pytest.raises(DefinitionError, match=r"Post\.topic_sort.*'ByTopicSK'") as caught:

        class Post(Entity, table=Table("defs"), pk="P#{id}", sk="P"):
            id: str
            topic: str
            topic_sort: str = Field("", alias="ByTopicSK")

            by_topic = Index(pk="T#{topic}", gsi="ByTopic")

    assert caught.value.value == "ByTopicSK"


def test_field_named_like_another_entitys_pinned_gsi_key_is_refused() -> None:
    table = Table("defs")

    class Post(Entity, table=table, pk="P#{id}", sk="P"):
        id: str
        topic: str

        by_topic = Index(pk="T#{topic}", gsi="ByTopic")

    class Note(Entity, table=table, pk="N#{id}", sk="N"):
        id: str
        ByTopicSK: str = ""  # would put every Note into Post's index

    with pytest.raises(DefinitionError, match=r"Note\.ByTopicSK.*ByTopic") as caught:
        compile_table(table)
    assert (caught.value.entity, caught.value.field) == ("Note", "ByTopicSK")


def test_entity_in_a_guard_key_space_is_a_collision() -> None:
    table = Table("defs")

    class User(Entity, table=table, pk="USER#{id}", sk="PROFILE", unique=("email",)):
        id: str
        email: str

    class Squatter(Entity, table=table, pk="UNIQUE#{kind}#{field}#{value}", sk="UNIQUE"):
        kind: str
        field: str
        value: str

    with pytest.raises(KeyCollisionError, match=r"User.s unique guard for \[.email.\]") as caught:
        compile_table(table)
    assert set(caught.value.entities) == {"Squatter", "User"}
    assert caught.value.example == ("UNIQUE#User#email#x", "UNIQUE")


def test_guard_key_space_allows_entities_that_cannot_reach_it() -> None:
    table = Table("defs")

    class User(Entity, table=table, pk="USER#{id}", sk="PROFILE", unique=("email",)):
        id: str
        email: str

    class Tag(Entity, table=table, pk="UNIQUE#{kind}", sk="UNIQUE"):  # one segment short
        kind: str

    class Other(Entity, table=table, pk="UNIQUE#{a}#{b}#{c}", sk="TAG"):  # another sk
        a: str
        b: str
        c: str

    assert set(compile_table(table).entities) == {"User", "Tag", "Other"}
