"""dynaorm.testing.strategies: generated entities are valid, storable and round-trip."""

from __future__ import annotations

import datetime as dt
import enum
import sys
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field, StringConstraints

from dynaorm import Entity, Index, Session, Table, schema_of
from dynaorm._items import entity_from_item, entity_to_item
from dynaorm.testing.strategies import HOSTILE_CHARACTERS, entities, hostile_text

sys.path.insert(0, str(Path(__file__).parents[2] / "examples"))

from blog_models import Post, User, app

kitchen = Table("kitchen", ttl="expires")


class Status(enum.Enum):
    OPEN = "open"
    DONE = "done"


class Address(BaseModel):
    street: str
    zip_code: Annotated[str, StringConstraints(pattern=r"^[0-9]{5}$")]
    tags: set[str] = set()


class Order(
    Entity,
    table=kitchen,
    pk="ACCOUNT#{account}",
    sk="ORDER#{number}#{placed}",
    unique=("reference",),
):
    account: Annotated[str, StringConstraints(min_length=1, max_length=8)]
    number: int = Field(ge=-5, le=10**19)
    placed: dt.datetime
    reference: uuid.UUID
    status: Status = Status.OPEN
    channel: Literal["web", "shop"] = "web"
    owner: str | None = None
    day: dt.date | None = None
    total: Decimal = Decimal(0)
    ratio: float = 0.0
    blob: bytes = b""
    codes: frozenset[int] = frozenset({1})
    lines: list[Address] = []
    extra: dict[str, int] = {}
    pair: tuple[int, str] | None = None
    expires: dt.datetime | None = None

    by_owner = Index(pk="OWNER#{owner}", sk="{day}")
    by_status = Index(pk="{status}")


def test_hostile_alphabet_is_valid_utf8() -> None:
    assert HOSTILE_CHARACTERS.encode("utf-8")


@given(hostile_text(min_size=1, max_size=5))
def test_hostile_text_respects_sizes_and_encodes(text: str) -> None:
    assert 1 <= len(text) <= 5
    text.encode("utf-8")  # no lone surrogates


@given(entities(Order))
def test_generated_entities_encode_and_decode(order: Order) -> None:
    assert 1 <= len(order.account) <= 8 and -5 <= order.number <= 10**19
    assert order.placed.tzinfo is not None
    for line in order.lines:
        assert len(line.zip_code) == 5 and line.zip_code.isdigit()
    item = entity_to_item(order)  # keys encode, values store, size fits
    assert entity_from_item(schema_of(kitchen), item) == order


@given(entities(Post, hostile=False))
def test_plain_text_mode(post: Post) -> None:
    assert all(ch.isalnum() for ch in post.user_id + post.post_id + post.title)


@given(entities(Post, user_id="u1", likes=st.integers(0, 5)))
def test_overrides(post: Post) -> None:
    assert post.user_id == "u1" and 0 <= post.likes <= 5


def test_unknown_override() -> None:
    with pytest.raises(TypeError, match="not fields"):
        entities(Post, nope=1)


IO = settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])


@IO
@given(post=entities(Post))
@pytest.mark.dynaorm_tables(app)
def test_posts_round_trip(dynaorm_session: Session, post: Post) -> None:
    dynaorm_session.put(post)
    assert (
        dynaorm_session.get(
            Post, user_id=post.user_id, created_at=post.created_at, post_id=post.post_id
        )
        == post
    )
    dynaorm_session.delete(post)


@IO
@given(user=entities(User, version=0))
@pytest.mark.dynaorm_tables(app)
def test_users_round_trip(dynaorm_session: Session, user: User) -> None:
    dynaorm_session.put(user)  # guarded by version 0 and a unique email: a transaction
    assert user.version == 1
    assert dynaorm_session.get(User, user_id=user.user_id) == user
    dynaorm_session.delete(user)  # removes the email guard for the next example
