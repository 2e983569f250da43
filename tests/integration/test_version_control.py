"""The version-control example on both backends: every access pattern against an
in-memory oracle (plain Python over the seeded objects), every collection one Query,
and newest-first pages through a collection equal to reading it whole, reversed."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from vcs_models import (
    Issue,
    IssueComment,
    PullRequest,
    PullRequestComment,
    Repository,
    Subscription,
    User,
    app,
    contributions,
    issue_thread,
    overview,
    repository,
    review,
    watchers,
)

from dynaorm import Collection, Entity, Session

from .conftest import Recorder

UTC = dt.timezone.utc
START = dt.datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
USERS = ("ann", "bob", "cy")
REPOS = (("ann", "dynaorm", "ann"), ("acme", "infra", "ann"), ("bob", "notes", "bob"))


def _n(number: int) -> str:
    return f"{number:020d}"


def _t(moment: dt.datetime | None) -> str:
    assert moment is not None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# The oracle: each collection's partition test and sort key per member type, written out
# by hand from the templates in vcs_models (numbers zero-padded, datetimes ISO in UTC).
Key = Callable[[Any], str]
ORACLE: dict[str, dict[type[Entity], tuple[Callable[[Any, dict[str, Any]], bool], Key]]] = {
    "overview": {
        User: (lambda e, s: e.username == s["username"], lambda e: "PROFILE"),
        Repository: (
            lambda e, s: e.username == s["username"],
            lambda e: f"REPO#{e.owner}#{e.repo}",
        ),
        Issue: (
            lambda e, s: e.username == s["username"],
            lambda e: f"ISSUE#{e.owner}#{e.repo}#{_n(e.number)}",
        ),
        PullRequest: (
            lambda e, s: e.username == s["username"],
            lambda e: f"PULL#{e.owner}#{e.repo}#{_n(e.number)}",
        ),
        Subscription: (
            lambda e, s: e.username == s["username"],
            lambda e: f"SUB#{e.owner}#{e.repo}",
        ),
    },
    "contributions": {
        Issue: (
            lambda e, s: e.username == s["username"],
            lambda e: f"ISSUE#{e.owner}#{e.repo}#{_n(e.number)}",
        ),
        PullRequest: (
            lambda e, s: e.username == s["username"],
            lambda e: f"PULL#{e.owner}#{e.repo}#{_n(e.number)}",
        ),
        IssueComment: (
            lambda e, s: e.username == s["username"],
            lambda e: f"COMMENT#{_t(e.posted_at)}#{e.comment_id}",
        ),
        PullRequestComment: (
            lambda e, s: e.username == s["username"],
            lambda e: f"REVIEW#{_t(e.posted_at)}#{e.comment_id}",
        ),
    },
    "repository": {
        Repository: (lambda e, s: (e.owner, e.repo) == (s["owner"], s["repo"]), lambda e: "REPO"),
        Issue: (
            lambda e, s: (e.owner, e.repo) == (s["owner"], s["repo"]),
            lambda e: f"ISSUE#{e.status}#{_n(e.number)}",
        ),
        PullRequest: (
            lambda e, s: (e.owner, e.repo) == (s["owner"], s["repo"]),
            lambda e: f"PULL#{e.status}#{_n(e.number)}",
        ),
    },
    "watchers": {
        Repository: (lambda e, s: (e.owner, e.repo) == (s["owner"], s["repo"]), lambda e: "REPO"),
        Subscription: (
            lambda e, s: (e.owner, e.repo) == (s["owner"], s["repo"]),
            lambda e: f"SUB#{e.username}",
        ),
    },
    "issue_thread": {
        Issue: (
            _thread := lambda e, s: (e.owner, e.repo, e.number) == tuple(s.values()),
            lambda e: "ISSUE",
        ),
        IssueComment: (_thread, lambda e: f"REPLY#{_t(e.posted_at)}#{e.comment_id}"),
    },
    "review": {
        PullRequest: (_thread, lambda e: "PULL"),
        PullRequestComment: (_thread, lambda e: f"REVIEW#{_t(e.posted_at)}#{e.comment_id}"),
    },
}

COLLECTIONS: dict[str, Collection] = {
    "overview": overview,
    "contributions": contributions,
    "repository": repository,
    "watchers": watchers,
    "issue_thread": issue_thread,
    "review": review,
}


def expected(world: list[Entity], name: str, slots: dict[str, Any]) -> list[Entity]:
    """The collection's members in one partition, in sort-key order (plain Python)."""
    members = ORACLE[name]
    found = [
        (members[type(e)][1](e), e)
        for e in world
        if type(e) in members and members[type(e)][0](e, slots)
    ]
    return [e for _, e in sorted(found, key=lambda pair: pair[0])]


def _world() -> list[Entity]:
    world: list[Entity] = [User(username=u, full_name=u.title()) for u in USERS]
    world += [Repository(owner=o, repo=r, username=c) for o, r, c in REPOS]
    minute = 0
    for owner, repo, _ in REPOS:
        for number in range(1, 13):
            author = USERS[number % 3]
            status = "closed" if number % 4 == 0 else "open"
            kind = Issue if number % 3 else PullRequest
            world.append(
                kind(
                    owner=owner,
                    repo=repo,
                    number=number,
                    username=author,
                    title=f"#{number}",
                    status=status,
                )
            )
            comment = IssueComment if kind is Issue else PullRequestComment
            for c in range(number % 5):
                minute += 7
                world.append(
                    comment(
                        owner=owner,
                        repo=repo,
                        number=number,
                        comment_id=f"c{c}",
                        username=USERS[(number + c) % 3],
                        body="text",
                        posted_at=START + dt.timedelta(minutes=minute % 50, seconds=c),
                    )
                )
        for user in USERS[: 1 + len(repo) % 3]:
            world.append(Subscription(owner=owner, repo=repo, username=user))
    return world


@pytest.fixture
def vcs(session: Session) -> Iterator[tuple[Session, list[Entity]]]:
    session.create_table(app)
    world = _world()
    session.batch_write(put=world)
    yield session, world
    session.delete_table(app)


def _partitions() -> list[tuple[str, dict[str, Any]]]:
    cases: list[tuple[str, dict[str, Any]]] = []
    for user in (*USERS, "nobody"):
        cases += [("overview", {"username": user}), ("contributions", {"username": user})]
    for owner, repo, _ in (*REPOS, ("ann", "missing", "")):
        cases += [("repository", {"owner": owner, "repo": repo})]
        cases += [("watchers", {"owner": owner, "repo": repo})]
        for number in (1, 2, 3, 4, 6, 12, 99):
            slots = {"owner": owner, "repo": repo, "number": number}
            cases += [("issue_thread", slots), ("review", slots)]
    return cases


def test_every_collection_is_one_query_and_matches_the_oracle(
    vcs: tuple[Session, list[Entity]], recorder: Recorder
) -> None:
    session, world = vcs
    for name, slots in _partitions():
        recorder.clear()
        result = session.collection(COLLECTIONS[name], **slots)
        assert [op for op, _ in recorder.calls] == ["Query"], (name, slots)
        want = expected(world, name, slots)
        for member in ORACLE[name]:
            assert result[member] == [e for e in want if type(e) is member], (name, slots, member)


def test_newest_first_pages_equal_the_whole_collection_reversed(
    vcs: tuple[Session, list[Entity]],
) -> None:
    session, world = vcs
    cases: list[tuple[str, dict[str, Any]]] = [
        ("overview", {"username": "ann"}),
        ("contributions", {"username": "bob"}),
        ("repository", {"owner": "acme", "repo": "infra"}),
        ("watchers", {"owner": "ann", "repo": "dynaorm"}),
        ("issue_thread", {"owner": "bob", "repo": "notes", "number": 4}),
        ("review", {"owner": "ann", "repo": "dynaorm", "number": 3}),
    ]
    for name, slots in cases:
        query = session.collection_query(COLLECTIONS[name], **slots)
        whole = list(query)
        assert whole == expected(world, name, slots)
        for size in (1, 2, 5):
            paged: list[Entity] = []
            page = query.reverse().page(size)
            paged += page.items
            while page.cursor is not None:
                page = query.reverse().page(size, cursor=page.cursor)
                assert len(page.items) <= size
                paged += page.items
            assert paged == whole[::-1], (name, slots, size)


def test_the_index_access_patterns_match_the_oracle(vcs: tuple[Session, list[Entity]]) -> None:
    session, world = vcs
    for user in USERS:
        created = session.query(Repository.by_creator, username=user).all()
        assert created == sorted(
            (e for e in world if isinstance(e, Repository) and e.username == user),
            key=lambda r: f"{r.owner}#{r.repo}",
        )
        watching = session.query(Subscription.by_subscriber, username=user).all()
        assert watching == sorted(
            (e for e in world if isinstance(e, Subscription) and e.username == user),
            key=lambda s: f"{s.owner}#{s.repo}",
        )
    for owner, repo, _ in REPOS:
        for status in ("open", "closed"):
            recent = session.query(Issue.recent, owner=owner, repo=repo, status=status)
            want = [
                e
                for e in world
                if isinstance(e, Issue) and (e.owner, e.repo, e.status) == (owner, repo, status)
            ]
            got = recent.reverse().all()
            assert sorted(got, key=lambda i: i.number) == sorted(want, key=lambda i: i.number)
            assert [_t(i.updated_at) for i in got] == sorted(
                (_t(i.updated_at) for i in got), reverse=True
            )
        subscribers = session.query(Subscription, owner=owner, repo=repo).all()
        assert subscribers == sorted(
            (
                e
                for e in world
                if isinstance(e, Subscription) and (e.owner, e.repo) == (owner, repo)
            ),
            key=lambda s: s.username,
        )


def test_closing_an_issue_moves_it_in_every_index(vcs: tuple[Session, list[Entity]]) -> None:
    session, world = vcs
    issue = session.get(Issue, owner="ann", repo="dynaorm", number=1)
    assert issue is not None and issue.status == "open"
    position = world.index(issue)
    before = issue.model_copy()
    closed = session.update(issue, set={"status": "closed"})
    world[position] = closed
    assert closed.updated_at is not None and before.updated_at is not None
    assert closed.updated_at > before.updated_at and closed.created_at == before.created_at
    slots = {"owner": "ann", "repo": "dynaorm"}
    result = session.collection(repository, **slots)
    assert result[Issue] == [e for e in expected(world, "repository", slots) if type(e) is Issue]
    newest = session.query(Issue.recent, status="closed", **slots).reverse().limit(1).all()
    assert newest == [closed]


@pytest.mark.parametrize(
    ("name", "slots", "index", "partition"),
    [
        ("overview", {"username": "ann"}, "GSI1", "USER#ann"),
        ("contributions", {"username": "ann"}, "GSI1", "USER#ann"),
        ("issue_thread", {"owner": "ann", "repo": "dynaorm", "number": 2}, "GSI2", None),
        ("review", {"owner": "ann", "repo": "dynaorm", "number": 3}, "GSI2", None),
        ("repository", {"owner": "ann", "repo": "dynaorm"}, "GSI3", "REPO#ann#dynaorm"),
        ("watchers", {"owner": "ann", "repo": "dynaorm"}, None, "REPO#ann#dynaorm"),
    ],
)
def test_each_collection_queries_its_own_index_and_partition(
    vcs: tuple[Session, list[Entity]],
    recorder: Recorder,
    name: str,
    slots: dict[str, Any],
    index: str | None,
    partition: str | None,
) -> None:
    session, _ = vcs
    recorder.clear()
    session.collection(COLLECTIONS[name], **slots)
    [(operation, params)] = recorder.calls
    assert operation == "Query" and params.get("IndexName") == index
    assert params["TableName"] == session.table_name(app)
    value = params["ExpressionAttributeValues"][":v0"]["S"]
    thread = f"THREAD#ann#dynaorm#{slots.get('number', 0):020d}"
    assert value == (partition or thread)
    pk = params["ExpressionAttributeNames"]["#n0"]
    assert pk == (f"{index}PK" if index else "PK")
