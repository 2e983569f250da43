"""The version-control demo: users, repositories, issues, pull requests, comments and
subscriptions in one table, four overloaded GSIs, six collections, each one Query.

Runs on the embedded backend (moto, in-process) unless AWS_ENDPOINT_URL_DYNAMODB
points at a DynamoDB endpoint such as DynamoDB Local.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from vcs_models import (
    Issue,
    IssueComment,
    PullRequest,
    PullRequestComment,
    Repository,
    Subscription,
    User,
    app,
    issue_thread,
    overview,
    repository,
    review,
    watchers,
)

from dynaorm import Entity, Session

START = datetime(2024, 5, 1, 9, 0, tzinfo=timezone.utc)


def make_session() -> Session:
    if os.environ.get("AWS_ENDPOINT_URL_DYNAMODB"):
        return Session(table_prefix="demo_")
    return Session.in_memory(table_prefix="demo_")


def seed(session: Session) -> None:
    users = [User(username="ann", full_name="Ann"), User(username="bob", full_name="Bob")]
    repos = [
        Repository(owner="ann", repo="dynaorm", username="ann", stars=40),
        Repository(owner="acme", repo="infra", username="ann"),
        Repository(owner="bob", repo="notes", username="bob"),
    ]
    work: list[Entity] = [
        Issue(owner="ann", repo="dynaorm", number=1, username="bob", title="Docs typo"),
        Issue(owner="ann", repo="dynaorm", number=2, username="ann", title="GSI collections"),
        PullRequest(owner="ann", repo="dynaorm", number=3, username="bob", title="Fix typo"),
        Subscription(owner="ann", repo="dynaorm", username="bob"),
        Subscription(owner="bob", repo="notes", username="ann"),
    ]
    comments: list[Entity] = [
        IssueComment(
            owner="ann",
            repo="dynaorm",
            number=2,
            comment_id=f"c{n}",
            username="bob" if n % 2 else "ann",
            body=f"Comment {n}",
            posted_at=START + timedelta(minutes=n),
        )
        for n in range(1, 8)
    ]
    comments.append(
        PullRequestComment(
            owner="ann",
            repo="dynaorm",
            number=3,
            comment_id="r1",
            username="ann",
            body="LGTM",
            posted_at=START,
        )
    )
    session.batch_write(put=[*users, *repos, *work, *comments])


def main() -> None:
    session = make_session()
    session.create_table(app, exists_ok=True)
    seed(session)

    mine = session.collection(overview, username="ann")
    print("Everything Ann created or follows (one Query on a GSI):")
    print(f"  account {mine[User][0].full_name!r}")
    print(f"  repositories {[f'{r.owner}/{r.repo}' for r in mine[Repository]]}")
    print(f"  issues {[i.title for i in mine[Issue]]}, pull requests {len(mine[PullRequest])}")
    print(f"  subscriptions {[f'{s.owner}/{s.repo}' for s in mine[Subscription]]}")

    repo = session.collection(repository, owner="ann", repo="dynaorm")
    print("\nann/dynaorm (one Query): ", end="")
    print(f"{len(repo[Issue])} issues, {len(repo[PullRequest])} pull request")
    followers = session.collection(watchers, owner="ann", repo="dynaorm")
    print(f"Subscribers (primary key): {[s.username for s in followers[Subscription]]}")

    print("\nIssue #2's thread, three comments per page, newest first:")
    query = session.collection_query(issue_thread, owner="ann", repo="dynaorm", number=2)
    page = query.reverse().page(3)
    while True:
        print("  ", [getattr(e, "comment_id", "issue") for e in page.items])
        if page.cursor is None:
            break
        page = query.reverse().page(3, cursor=page.cursor)

    pr = session.collection(review, owner="ann", repo="dynaorm", number=3)
    print(f"\nPull request #3: {pr[PullRequest][0].title!r}, {len(pr[PullRequestComment])} review")

    issue = session.get(Issue, owner="ann", repo="dynaorm", number=1)
    assert issue is not None
    closed = session.update(issue, set={"status": "closed"})
    print(f"\nIssue #1 closed; stamped updated_at {closed.updated_at:%Y-%m-%d}")
    recent = session.query(Issue.recent, owner="ann", repo="dynaorm", status="open")
    print(f"Open issues, recently updated first: {[i.number for i in recent.reverse().all()]}")


if __name__ == "__main__":
    main()
