"""Entity declarations: class options, validation at definition, field paths, keys."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from pydantic import BaseModel, ValidationError

from dynaorm import Entity, Index, Table
from dynaorm._conditions import build_condition
from dynaorm._expressions import Placeholders
from dynaorm.errors import (
    DefinitionError,
    KeyEncodingError,
    KeyTemplateError,
    UnknownFieldError,
)

UTC = dt.timezone.utc


class Author(BaseModel):
    name: str
    handle: str | None = None


def make_table() -> Table:
    return Table("entities")


def test_keys_encode_from_templates() -> None:
    table = make_table()

    class Post(Entity, table=table, pk="USER#{user_id}", sk="POST#{created_at}#{post_id}"):
        user_id: str
        post_id: str
        created_at: dt.datetime

    post = Post(user_id="u1", post_id="p1", created_at=dt.datetime(2024, 5, 1, tzinfo=UTC))
    key = post.get_key()
    assert (key.pk, key.sk) == ("USER#u1", "POST#2024-05-01T00:00:00.000000Z#p1")
    assert key == Post.key(
        user_id="u1",
        post_id="p1",
        created_at=dt.datetime(2024, 5, 1, 2, tzinfo=dt.timezone(dt.timedelta(hours=2))),
    )
    assert key.to_dynamodb() == {
        "PK": {"S": "USER#u1"},
        "SK": {"S": "POST#2024-05-01T00:00:00.000000Z#p1"},
    }


def test_key_requires_exactly_the_key_fields() -> None:
    table = make_table()

    class User(Entity, table=table, pk="USER#{user_id}", sk="PROFILE"):
        user_id: str

    with pytest.raises(KeyEncodingError, match=r"User.key\(\): missing \['user_id'\]"):
        User.key()
    with pytest.raises(KeyEncodingError, match="unexpected \\['name'\\]"):
        User.key(user_id="u1", name="x")


def test_float_slot_is_refused_at_class_definition() -> None:
    with pytest.raises(KeyTemplateError) as info:

        class Score(Entity, table=make_table(), pk="S#{score}", sk="X"):
            score: float

    assert "Score" in str(info.value)
    assert "score" in str(info.value)


def test_decimal_slot_is_refused() -> None:
    with pytest.raises(KeyTemplateError, match="price"):

        class Price(Entity, table=make_table(), pk="P#{price}", sk="X"):
            price: Decimal


def test_unknown_template_field_is_refused() -> None:
    with pytest.raises(KeyTemplateError, match="nope"):

        class Thing(Entity, table=make_table(), pk="T#{nope}", sk="X"):
            thing_id: str


def test_optional_primary_key_slot_is_refused() -> None:
    with pytest.raises(DefinitionError, match=r"Thing\.thing_id is optional"):

        class Thing(Entity, table=make_table(), pk="T#{thing_id}", sk="X"):
            thing_id: str | None = None


def test_missing_sk_and_table_are_explained() -> None:
    with pytest.raises(DefinitionError, match="declare sk="):

        class NoSk(Entity, table=make_table(), pk="T#{a}"):
            a: str

    with pytest.raises(DefinitionError, match="no table="):

        class NoTable(Entity, pk="T#{a}", sk="X"):
            a: str


def test_reserved_attribute_names_are_refused() -> None:
    with pytest.raises(DefinitionError, match="'PK'"):

        class Clash(Entity, table=make_table(), pk="T#{a}", sk="X"):
            a: str
            PK: str

    with pytest.raises(DefinitionError, match="'GSI1PK'"):

        class Clash2(Entity, table=make_table(), pk="T#{a}", sk="X"):
            a: str
            GSI1PK: str


def test_unique_and_version_are_validated() -> None:
    with pytest.raises(DefinitionError, match="unique= names 'mail'"):

        class U1(Entity, table=make_table(), pk="U#{a}", sk="X", unique=("mail",)):
            a: str

    with pytest.raises(DefinitionError, match="must be declared `int`"):

        class U2(Entity, table=make_table(), pk="U#{a}", sk="X", version="v"):
            a: str
            v: str = "0"

    class U3(Entity, table=make_table(), pk="U#{a}", sk="X", unique=("b", ("c", "d"))):
        a: str
        b: str
        c: str
        d: int

    assert U3.__dynaorm__.unique == (("b",), ("c", "d"))


def test_abstract_base_carries_table_and_fields() -> None:
    table = make_table()

    class Base(Entity, table=table):
        tenant_id: str

    class Invoice(Base, pk="TENANT#{tenant_id}", sk="INVOICE#{invoice_id}"):
        invoice_id: str

    assert not hasattr(Base, "__dynaorm__") or "__dynaorm__" not in Base.__dict__
    assert table.entities == (Invoice,)
    assert Invoice(tenant_id="t", invoice_id="i").get_key().pk == "TENANT#t"


def test_type_name_option() -> None:
    table = make_table()

    class V2User(Entity, table=table, pk="U#{a}", sk="X", type_name="User"):
        a: str

    assert V2User.__dynaorm__.name == "User"
    with pytest.raises(DefinitionError, match="type_name"):

        class Bad(Entity, table=make_table(), pk="U#{a}", sk="X", type_name="A#B"):
            a: str


def test_field_paths_build_conditions() -> None:
    table = make_table()

    class Post(Entity, table=table, pk="P#{post_id}", sk="POST"):
        post_id: str
        likes: int = 0
        status: str = "draft"
        author: Author
        items: list[Author] = []

    ph = Placeholders()
    text = build_condition(
        (Post.likes > 3) & ~(Post.status == "gone") | Post.author.name.begins_with("A"), ph
    )
    assert ":v0" in text and "#n0" in text
    assert set(ph.names.values()) == {"likes", "status", "author", "name"}
    assert build_condition(Post.items[0].name.exists(), Placeholders()) == (
        "attribute_exists(#n0[0].#n1)"
    )
    with pytest.raises(UnknownFieldError, match="nope"):
        _ = Post.nope
    with pytest.raises(UnknownFieldError):
        _ = Post.author.nope
    with pytest.raises(TypeError):
        bool(Post.likes > 3)
    assert not hasattr(Post, "nope")


def test_instances_still_read_their_values() -> None:
    table = make_table()

    class Post(Entity, table=table, pk="P#{post_id}", sk="POST"):
        post_id: str
        likes: int = 0

    post = Post(post_id="p")
    assert post.likes == 0
    post.likes = 5
    assert post.likes == 5
    with pytest.raises(ValidationError):
        post.likes = "many"  # type: ignore[assignment]


def test_subclass_redeclaring_a_field_keeps_defaults() -> None:
    table = make_table()

    class Base(Entity, table=table):
        likes: int = 0

    class Post(Base, pk="P#{post_id}", sk="POST"):
        post_id: str
        likes: int = 7

    assert Post(post_id="p").likes == 7


def test_indexes_are_bound_to_their_entity() -> None:
    table = make_table()

    class Post(Entity, table=table, pk="P#{post_id}", sk="POST"):
        post_id: str
        topic: str | None = None

        by_topic = Index(pk="TOPIC#{topic}", sk="{post_id}")

    index = Post.by_topic
    assert index.entity is Post
    assert index.name == "by_topic"
    assert index.fields == ("topic", "post_id")


def test_naive_datetime_in_key_is_refused_before_any_request() -> None:
    table = make_table()

    class Event(Entity, table=table, pk="E#{at}", sk="X"):
        at: dt.datetime

    with pytest.raises(KeyEncodingError, match="naive"):
        Event(at=dt.datetime(2024, 1, 1)).get_key()
