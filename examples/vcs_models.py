"""A version-control service in one table: users, repositories, issues, pull requests,
their comments and subscriptions (an equivalent of ElectroDB's version-control model).

Slot names are shared so that collections can read one partition in one Query:
`username` is the user an item belongs to (the account, a repository's creator, an
issue's or comment's author, a subscriber); `owner` and `repo` name a repository;
`number` names an issue or a pull request (one number space per repository).
"""

from __future__ import annotations

from datetime import datetime

from dynaorm import Collection, Entity, Index, Table

app = Table("vcs")

_STAMPS = {"created": "created_at", "updated": "updated_at"}


class User(Entity, table=app, pk="USER#{username}", sk="PROFILE"):
    username: str
    full_name: str
    location: str = ""

    by_username = Index(pk="USER#{username}", sk="PROFILE")


class Repository(Entity, table=app, pk="REPO#{owner}#{repo}", sk="REPO"):
    owner: str  # a user or an organisation
    repo: str
    username: str  # who created it
    description: str = ""
    stars: int = 0

    by_creator = Index(pk="USER#{username}", sk="REPO#{owner}#{repo}")
    by_repo = Index(pk="REPO#{owner}#{repo}", sk="REPO")


class Issue(Entity, table=app, pk="ISSUE#{owner}#{repo}#{number}", sk="ISSUE", **_STAMPS):
    owner: str
    repo: str
    number: int
    username: str  # who opened it
    title: str
    status: str = "open"
    created_at: datetime | None = None
    updated_at: datetime | None = None

    by_author = Index(pk="USER#{username}", sk="ISSUE#{owner}#{repo}#{number}")
    by_repo = Index(pk="REPO#{owner}#{repo}", sk="ISSUE#{status}#{number}")
    by_thread = Index(pk="THREAD#{owner}#{repo}#{number}", sk="ISSUE")
    recent = Index(pk="ISSUES#{owner}#{repo}#{status}", sk="{updated_at}")


class PullRequest(Entity, table=app, pk="PULL#{owner}#{repo}#{number}", sk="PULL", **_STAMPS):
    owner: str
    repo: str
    number: int
    username: str  # who opened it
    title: str
    status: str = "open"
    created_at: datetime | None = None
    updated_at: datetime | None = None

    by_author = Index(pk="USER#{username}", sk="PULL#{owner}#{repo}#{number}")
    by_repo = Index(pk="REPO#{owner}#{repo}", sk="PULL#{status}#{number}")
    by_thread = Index(pk="THREAD#{owner}#{repo}#{number}", sk="PULL")


class IssueComment(Entity, table=app, pk="ISSUECOMMENT#{owner}#{repo}#{number}", sk="{comment_id}"):
    owner: str
    repo: str
    number: int
    comment_id: str
    username: str  # who wrote it
    body: str
    posted_at: datetime

    by_thread = Index(pk="THREAD#{owner}#{repo}#{number}", sk="REPLY#{posted_at}#{comment_id}")
    by_author = Index(pk="USER#{username}", sk="COMMENT#{posted_at}#{comment_id}")


class PullRequestComment(
    Entity, table=app, pk="PULLCOMMENT#{owner}#{repo}#{number}", sk="{comment_id}"
):
    owner: str
    repo: str
    number: int
    comment_id: str
    username: str
    body: str
    posted_at: datetime

    by_thread = Index(pk="THREAD#{owner}#{repo}#{number}", sk="REVIEW#{posted_at}#{comment_id}")
    by_author = Index(pk="USER#{username}", sk="REVIEW#{posted_at}#{comment_id}")


class Subscription(Entity, table=app, pk="REPO#{owner}#{repo}", sk="SUB#{username}"):
    owner: str
    repo: str
    username: str  # the subscriber

    by_subscriber = Index(pk="USER#{username}", sk="SUB#{owner}#{repo}")


# One Query each. On the primary key: a repository and its subscribers.
watchers = Collection(Repository, Subscription, name="watchers")
# On GSIs: everything a user created or follows, a repository's issues and pull requests,
# one issue's or pull request's thread.
overview = Collection(
    User.by_username,
    Repository.by_creator,
    Issue.by_author,
    PullRequest.by_author,
    Subscription.by_subscriber,
    name="overview",
)
contributions = Collection(
    Issue.by_author,
    PullRequest.by_author,
    IssueComment.by_author,
    PullRequestComment.by_author,
    name="contributions",
)
repository = Collection(Repository.by_repo, Issue.by_repo, PullRequest.by_repo, name="repository")
issue_thread = Collection(Issue.by_thread, IssueComment.by_thread, name="issue_thread")
review = Collection(PullRequest.by_thread, PullRequestComment.by_thread, name="review")
