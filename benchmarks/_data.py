"""The logical data every library writes and reads: one user and their posts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

__all__ = ["POSTS", "USER", "PostRow", "UserRow"]

TABLE = "bench"
START = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


@dataclass(frozen=True)
class UserRow:
    user_id: str
    email: str
    name: str


@dataclass(frozen=True)
class PostRow:
    """Ten attributes, among them a 500-byte string, a datetime and a string set."""

    user_id: str
    post_id: str
    title: str
    body: str
    created_at: datetime
    likes: int
    views: int
    tags: frozenset[str]
    published: bool
    topic: str


USER = UserRow(user_id="u1", email="ann@example.com", name="Ann Example")
POSTS = [
    PostRow(
        user_id="u1",
        post_id=f"p{i:04d}",
        title=f"Post number {i} about single-table design",
        body=("lorem ipsum dolor sit amet " * 20)[:500],
        created_at=START + timedelta(minutes=i),
        likes=i * 7,
        views=i * 131,
        tags=frozenset({"dynamodb", "python", f"t{i % 5}"}),
        published=i % 2 == 0,
        topic="databases",
    )
    for i in range(100)
]
