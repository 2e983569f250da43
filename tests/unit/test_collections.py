"""Collections of entity indexes: placed together on one GSI, or refused with the reason."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dynaorm import Collection, Entity, Index, Table, schema_of
from dynaorm._compiler import CollectionPlan, compile_table
from dynaorm._lock import LockedIndex
from dynaorm.errors import DefinitionError, SchemaLockError


def _models(
    name: str,
    *,
    user_owner: dict[str, Any] | None = None,
    email_gsi: str | None = None,
    **repo_owner: Any,
) -> Any:
    """A version-control table: users and repositories both indexed by owner."""
    table = Table(name)

    class User(Entity, table=table, pk="USER#{owner}", sk="USER"):
        owner: str
        email: str = ""
        # Sorts before by_owner: the per-entity rule alone would put it on GSI1.
        by_email = Index(pk="EMAIL#{email}", gsi=email_gsi)
        by_owner = Index(pk="OWNER#{owner}", **(user_owner or {}))

    class Repository(Entity, table=table, pk="REPO#{owner}#{repo}", sk="REPO"):
        owner: str
        repo: str
        by_owner = Index(pk="OWNER#{owner}", sk="REPO#{repo}", **repo_owner)

    # `owner` is who opened the issue; the repository's owner is `repo_owner`.
    class Issue(Entity, table=table, pk="ISSUE#{repo_owner}#{repo}#{number}", sk="ISSUE"):
        repo_owner: str
        repo: str
        number: int
        owner: str
        opened: dt.datetime
        by_creator = Index(pk="OWNER#{owner}", sk="ISSUE#{opened}#{number}")
        by_repo = Index(pk="REPO#{repo_owner}#{repo}", sk="ISSUE#{number}")

    return table, User, Repository, Issue


def _gsis(table: Table) -> dict[str, tuple[str, str]]:
    return {
        f"{name}.{index}": (placed.gsi, placed.source)
        for name, compiled in schema_of(table).entities.items()
        for index, placed in compiled.indexes.items()
    }


def test_members_share_one_gsi_where_the_rule_would_split_them() -> None:
    table, User, Repository, _ = _models("together")
    assert _gsis(table)["User.by_owner"] == ("GSI2", "rule")
    Collection(User.by_owner, Repository.by_owner)
    assert _gsis(table) == {
        "User.by_owner": ("GSI1", "collection"),
        "Repository.by_owner": ("GSI1", "collection"),
        "User.by_email": ("GSI2", "rule"),
        "Issue.by_creator": ("GSI1", "rule"),
        "Issue.by_repo": ("GSI2", "rule"),
    }


def test_a_pinned_member_takes_the_others_with_it() -> None:
    table, User, Repository, Issue = _models("pinned", gsi="GSI7")
    owned = Collection(User.by_owner, Repository.by_owner, Issue.by_creator, name="owned")
    placed = _gsis(table)
    assert placed["Repository.by_owner"] == ("GSI7", "pinned")
    assert placed["User.by_owner"] == placed["Issue.by_creator"] == ("GSI7", "collection")
    plan = schema_of(table).plan_collection(owned, {"owner": "ann"})
    assert (plan.index_name, plan.pk_attribute, plan.pk_value) == ("GSI7", "GSI7PK", "OWNER#ann")


def test_the_lock_is_honoured_for_the_whole_collection() -> None:
    table, User, Repository, _ = _models("locked")
    Collection(User.by_owner, Repository.by_owner)
    lock = {"Repository.by_owner": LockedIndex("GSI3", "GSI3PK", "GSI3SK", "ALL")}
    placed = compile_table(table, lock=lock).entities
    assert placed["Repository"].indexes["by_owner"].gsi == "GSI3"
    assert placed["User"].indexes["by_owner"].gsi == "GSI3"


def test_a_lock_that_splits_the_members_is_refused_by_name() -> None:
    table, User, Repository, _ = _models("split")
    Collection(User.by_owner, Repository.by_owner, name="owned")
    lock = {
        "Repository.by_owner": LockedIndex("GSI1", "GSI1PK", "GSI1SK", "ALL"),
        "User.by_owner": LockedIndex("GSI2", "GSI2PK", "GSI2SK", "ALL"),
    }
    # The first locked member (in declaration order) decides; the other is named.
    with pytest.raises(SchemaLockError, match=r"Repository.by_owner: .*owned places it on GSI2"):
        compile_table(table, lock=lock, conflicts=None)


def test_different_partition_templates_are_refused() -> None:
    _, User, _, Issue = _models("templates")
    with pytest.raises(DefinitionError, match=r"Issue.by_repo has partition key 'REPO#\{repo_"):
        Collection(User.by_owner, Issue.by_repo)
    table = Table("templates2")

    class Team(Entity, table=table, pk="TEAM#{owner}", sk="TEAM"):
        owner: str
        by_owner = Index(pk="ORG#{owner}")

    class Member(Entity, table=table, pk="MEMBER#{owner}", sk="MEMBER"):
        owner: str
        by_owner = Index(pk="OWNER#{owner}")

    with pytest.raises(DefinitionError, match="must share one partition-key template"):
        Collection(Team.by_owner, Member.by_owner)


def test_a_non_all_projection_is_refused() -> None:
    _, User, Repository, _ = _models("projection", projection="KEYS_ONLY")
    with pytest.raises(DefinitionError, match=r"Repository.by_owner projects 'KEYS_ONLY'"):
        Collection(User.by_owner, Repository.by_owner)


def test_members_pinned_to_different_gsis_are_refused() -> None:
    _, User, Repository, _ = _models("pins", user_owner={"gsi": "GSI4"}, gsi="GSI5")
    with pytest.raises(DefinitionError, match=r"pinned to different GSIs \(User.by_owner gsi="):
        Collection(User.by_owner, Repository.by_owner)


def test_a_pin_of_another_index_on_the_needed_gsi_is_refused() -> None:
    # User.by_email is not a member, and holds the GSI the collection's pin asks for.
    table, User, Repository, _ = _models("elsewhere", email_gsi="GSI2", gsi="GSI2")
    Collection(User.by_owner, Repository.by_owner, name="owned")
    with pytest.raises(DefinitionError, match=r"owned needs GSI2 for User.by_owner, where Us"):
        schema_of(table)


def test_an_entity_and_an_index_cannot_be_one_collection() -> None:
    _, User, Repository, _ = _models("mixed")
    with pytest.raises(DefinitionError, match=r"different indexes .*primary key and a GSI"):
        Collection(User, Repository.by_owner)


def test_a_member_twice_and_a_stranger_are_refused() -> None:
    _, User, _, _ = _models("twice")
    with pytest.raises(DefinitionError, match="lists an entity twice"):
        Collection(User.by_owner, User.by_email)
    with pytest.raises(DefinitionError, match="not 'User'"):
        Collection("User")  # type: ignore[arg-type]


def test_the_sort_side_tells_members_apart() -> None:
    table, User, Repository, Issue = _models("sides")
    owned = Collection(User.by_owner, Repository.by_owner, Issue.by_creator)
    plan = schema_of(table).plan_collection(owned, {"owner": "ann"})
    assert plan.accepts("User", "User")
    assert plan.accepts("Repository", "REPO#r1")
    assert not plan.accepts("Repository", "ISSUE#2024-01-01T00:00:00.000000Z#00001")
    assert not plan.accepts("Issue", "REPO#r1")
    assert not plan.accepts("User", None) and not plan.accepts("Comment", "User")


_SIDES_TABLE = _models("sides-property")


@given(
    repo=st.text(min_size=0, max_size=12),
    number=st.integers(min_value=0, max_value=10**9),
    opened=st.datetimes(timezones=st.just(dt.timezone.utc)),
)
def test_each_members_sort_values_are_its_own(repo: str, number: int, opened: dt.datetime) -> None:
    """Whatever the slot values (hostile text included), a member's encoded sort value is
    accepted for that member and for no other one."""
    table, User, Repository, Issue = _SIDES_TABLE
    owned = Collection(User.by_owner, Repository.by_owner, Issue.by_creator)
    plan: CollectionPlan = schema_of(table).plan_collection(owned, {"owner": "ann"})
    values = {"repo": repo, "number": number, "opened": opened}
    written = {
        "User": "User",
        "Repository": Repository.by_owner.sk.encode(values),
        "Issue": Issue.by_creator.sk.encode(values),
    }
    for writer, sort_value in written.items():
        takers = [name for name in written if plan.accepts(name, sort_value)]
        assert takers == [writer]
