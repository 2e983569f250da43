"""A collection of entity indexes is one Query on their shared GSI, on both backends."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from blog_models import Post, User, user_feed

from dynaorm import Collection, Entity, Index, Session, Table, schema_of

from .conftest import Recorder

UTC = dt.timezone.utc
vc = Table("vc")


class Account(Entity, table=vc, pk="USER#{owner}", sk="USER"):
    owner: str
    name: str
    by_owner = Index(pk="OWNER#{owner}")


class Repository(Entity, table=vc, pk="REPO#{owner}#{repo}", sk="REPO"):
    owner: str
    repo: str
    by_owner = Index(pk="OWNER#{owner}", sk="REPO#{repo}")


class Issue(Entity, table=vc, pk="ISSUE#{repo_owner}#{repo}#{number}", sk="ISSUE"):
    repo_owner: str
    repo: str
    number: int
    owner: str  # who opened it
    opened: dt.datetime
    by_creator = Index(pk="OWNER#{owner}", sk="ISSUE#{opened}#{number}")


class Comment(Entity, table=vc, pk="COMMENT#{id}", sk="COMMENT"):
    """Not a member, but indexed into the same GSI partitions as the members."""

    id: str
    owner: str
    by_owner = Index(pk="OWNER#{owner}", sk="COMMENT#{id}")


owned = Collection(Account.by_owner, Repository.by_owner, Issue.by_creator, name="owned")


@pytest.fixture
def vc_session(session: Session) -> Iterator[Session]:
    session.create_table(vc)
    yield session
    session.delete_table(vc)


def _seed(session: Session) -> tuple[Account, list[Repository], list[Issue]]:
    ann = Account(owner="ann", name="Ann")
    repos = [Repository(owner="ann", repo=name) for name in ("b", "a")]
    start = dt.datetime(2024, 5, 1, tzinfo=UTC)
    issues = [
        Issue(repo_owner="bob", repo="x", number=n, owner="ann", opened=start + dt.timedelta(n))
        for n in (3, 1, 2)
    ]
    strangers: list[Entity] = [
        Account(owner="bo", name="Bo"),
        Repository(owner="bob", repo="a"),
        Comment(id="c1", owner="ann"),
    ]
    session.batch_write(put=[ann, *repos, *issues, *strangers])
    return ann, sorted(repos, key=lambda r: r.repo), sorted(issues, key=lambda i: i.opened)


def test_the_members_share_one_gsi() -> None:
    entities = schema_of(vc).entities
    placed = {name: placed.gsi for name, c in entities.items() for placed in c.indexes.values()}
    assert placed == {"Account": "GSI1", "Repository": "GSI1", "Issue": "GSI1", "Comment": "GSI1"}


def test_an_index_collection_is_one_exact_query(vc_session: Session, recorder: Recorder) -> None:
    ann, repos, issues = _seed(vc_session)
    recorder.clear()
    result = vc_session.collection(owned, owner="ann")
    assert recorder.calls == [
        (
            "Query",
            {
                "TableName": vc_session.table_name(vc),
                "IndexName": "GSI1",
                "KeyConditionExpression": "#n0 = :v0",
                "ExpressionAttributeNames": {"#n0": "GSI1PK"},
                "ExpressionAttributeValues": {":v0": {"S": "OWNER#ann"}},
            },
        )
    ]
    assert result[Account] == [ann]
    assert result[Repository] == repos
    assert result[Issue] == issues  # in index sort order: oldest first


def test_items_of_another_shape_are_not_taken_for_a_member(vc_session: Session) -> None:
    ann, repos, issues = _seed(vc_session)
    # A Repository-typed item sitting in the issues' sort range of ann's partition.
    forged = {
        "PK": {"S": "REPO#ann#z"},
        "SK": {"S": "REPO"},
        "_type": {"S": "Repository"},
        "owner": {"S": "ann"},
        "repo": {"S": "z"},
        "GSI1PK": {"S": "OWNER#ann"},
        "GSI1SK": {"S": "ISSUE#2024-05-09"},
    }
    vc_session.transport.call("PutItem", {"TableName": vc_session.table_name(vc), "Item": forged})
    result = vc_session.collection(owned, owner="ann")
    assert result[Repository] == repos and result[Issue] == issues and result[Account] == [ann]


def test_a_primary_collection_skips_a_type_outside_its_sort_shape(session: Session) -> None:
    ann = User(user_id="u1", email="a@x", name="Ann")
    session.create(ann)
    # Typed User but stored where a post would be: not the user's profile item.
    forged = {
        "PK": {"S": "USER#u1"},
        "SK": {"S": "POST#x"},
        "_type": {"S": "User"},
        "user_id": {"S": "u1"},
        "email": {"S": "b@x"},
        "name": {"S": "Eve"},
        "version": {"N": "1"},
    }
    table = session.table_name(Post.__dynaorm__.table)
    session.transport.call("PutItem", {"TableName": table, "Item": forged})
    result = session.collection(user_feed, user_id="u1")
    assert result[User] == [ann] and result[Post] == []
