"""The blog demo: one table, users and posts, collections, pages and a GSI.

Runs on the embedded backend (moto, in-process) unless AWS_ENDPOINT_URL_DYNAMODB
points at a DynamoDB endpoint such as DynamoDB Local.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from blog_models import Post, User, app, user_feed

from dynaorm import Session
from dynaorm.errors import UniqueConstraintViolation


def make_session() -> Session:
    if os.environ.get("AWS_ENDPOINT_URL_DYNAMODB"):
        return Session(table_prefix="demo_")
    return Session.in_memory(table_prefix="demo_")


def main() -> None:
    session = make_session()
    session.create_table(app, exists_ok=True)

    print("Keys each entity encodes to:")
    ann = User(user_id="u1", email="ann@example.com", name="Ann")
    start = datetime(2024, 5, 1, 9, 0, tzinfo=timezone.utc)
    posts = [
        Post(
            user_id="u1",
            post_id=f"p{n}",
            title=f"Post {n}",
            created_at=start + timedelta(days=n),
            likes=n * 3,
            tags={"dynamodb"} if n % 2 else {"python"},
            topic="dynamodb" if n % 2 else None,
        )
        for n in range(1, 8)
    ]
    print(" ", ann.get_key())
    print(" ", posts[0].get_key())

    session.create(ann)
    session.batch_write(put=posts)
    try:
        session.create(User(user_id="u2", email="ann@example.com", name="Impostor"))
    except UniqueConstraintViolation as e:
        print(f"\nA second user with Ann's email is refused: {e.field} = {e.value!r}")

    feed = session.collection(user_feed, user_id="u1")
    print(f"\nOne query for Ann's feed: {len(feed[User])} user, {len(feed[Post])} posts")

    print("\nPosts, three per page, newest first:")
    query = session.query(Post, user_id="u1").reverse()
    page = query.page(3)
    while True:
        print("  ", [p.title for p in page.items])
        if page.cursor is None:
            break
        page = query.page(3, cursor=page.cursor)

    may = session.query(Post, user_id="u1").begins_with(created_at="2024-05-0").all()
    print(f"\nPosts created 2024-05-01..09: {[p.post_id for p in may]}")
    popular = session.query(Post, user_id="u1").where(Post.likes >= 12).all()
    print(f"Posts with at least 12 likes: {[p.post_id for p in popular]}")

    topical = session.query(Post.by_topic, topic="dynamodb").all()
    print(f"Posts on the 'dynamodb' topic (GSI, sparse): {[p.post_id for p in topical]}")

    liked = session.update(posts[0], add={"likes": 1}, set={"title": "Post 1 (edited)"})
    print(f"\nUpdated: {liked.title!r} now has {liked.likes} likes")
    renamed = session.update(ann, set={"name": "Ann B."})
    print(f"User renamed to {renamed.name!r}; version is now {renamed.version}")


if __name__ == "__main__":
    main()
