"""The blog's single-table model: users and their posts in one DynamoDB table."""

from __future__ import annotations

from datetime import datetime

from dynaorm import Collection, Entity, Index, Table

app = Table("blog", ttl="expires_at")


class User(
    Entity,
    table=app,
    pk="USER#{user_id}",
    sk="PROFILE",
    unique=("email",),
    version="version",
):
    user_id: str
    email: str
    name: str
    version: int = 0

    by_email = Index(pk="EMAIL#{email}")


class Post(Entity, table=app, pk="USER#{user_id}", sk="POST#{created_at}#{post_id}"):
    user_id: str
    post_id: str
    title: str
    created_at: datetime
    likes: int = 0
    tags: set[str] = set()
    topic: str | None = None
    expires_at: datetime | None = None

    by_post = Index(pk="POST#{post_id}")
    by_topic = Index(pk="TOPIC#{topic}", sk="{created_at}")  # sparse: no topic, no entry


user_feed = Collection(User, Post)
