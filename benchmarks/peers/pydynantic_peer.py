"""pydynantic: single-table entities on pydantic v2 over an injected boto3 client."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import boto3
from pydynantic import Collection, Entity, Table, attr_not_exists, key, transaction

from benchmarks._data import POSTS, TABLE, USER
from benchmarks.peers import CREDENTIALS, ENDPOINT, REGION, BasePeer

_client = boto3.session.Session(region_name=REGION, **CREDENTIALS).client(
    "dynamodb", endpoint_url=ENDPOINT
)
table = Table(TABLE, pk="PK", sk="SK", client=_client)


class User(Entity, table=table, name="user"):
    user_id: str
    email: str
    name: str

    class Meta:
        primary = key(pk="USER#{user_id}", sk="PROFILE")


class Post(Entity, table=table, name="post"):
    user_id: str
    post_id: str
    title: str
    body: str
    created_at: datetime
    likes: int = 0
    views: int = 0
    tags: set[str] = set()
    published: bool = False
    topic: str | None = None

    class Meta:
        primary = key(pk="USER#{user_id}", sk="POST#{created_at}#{post_id}")


class Feed(Collection):
    members = [User, Post]


class Peer(BasePeer):
    name = "pydynantic"

    def __init__(self) -> None:
        super().__init__()
        self.fake.attach(_client)
        self.user = User(user_id=USER.user_id, email=USER.email, name=USER.name)
        self.posts = [Post(**{n: getattr(r, n) for n in r.__dataclass_fields__}) for r in POSTS]

    def store(self) -> None:
        User.put(self.user)
        for post in self.posts:
            Post.put(post)

    def get(self) -> Any:
        first = self.posts[0]
        return Post.get(user_id="u1", created_at=first.created_at, post_id=first.post_id)

    def put(self) -> Any:
        Post.put(self.posts[0])

    def query(self) -> Any:
        return Post.query.primary(user_id="u1").begins_with("POST#").all()

    def batch_write(self) -> Any:
        Post.batch_write(puts=self.posts)

    def transact(self) -> Any:
        with transaction(table) as tx:
            for post in self.posts[:10]:
                tx.put(post, condition=attr_not_exists("PK"))

    def collection(self) -> Any:
        result = Feed.query(user_id="u1").all()
        return result.users, result.posts
