"""dyntastic: pydantic models over boto3's resource, one model per table.

Its keys are plain model fields (no templates), and a query returns one model class, so
a collection of two entity types in one partition has no dyntastic form.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from dyntastic import A, Dyntastic, transaction

from benchmarks._data import POSTS, TABLE
from benchmarks.peers import ENDPOINT, REGION, BasePeer


class Post(Dyntastic):
    __table_name__ = TABLE
    __hash_key__ = "PK"
    __range_key__ = "SK"
    __table_region__ = REGION
    __table_host__ = ENDPOINT

    PK: str
    SK: str
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


def _post(row: Any) -> Post:
    fields = {name: getattr(row, name) for name in row.__dataclass_fields__}
    return Post(
        PK=f"USER#{row.user_id}", SK=f"POST#{row.created_at.isoformat()}#{row.post_id}", **fields
    )


class Peer(BasePeer):
    name = "dyntastic"
    unsupported = {"collection": "queries return one model class; no multi-entity result"}

    def __init__(self) -> None:
        super().__init__()
        # dyntastic reads credentials from the environment (set by the runner).
        self.fake.attach(Post._dynamodb_resource().meta.client)
        self.fake.attach(Post._dynamodb_client())  # transactions use a separate client
        self.posts = [_post(row) for row in POSTS]

    def store(self) -> None:
        for post in self.posts:
            post.save()

    def get(self) -> Any:
        return Post.get(self.posts[0].PK, self.posts[0].SK)

    def put(self) -> Any:
        self.posts[0].save()

    def query(self) -> Any:
        return list(Post.query("USER#u1", range_key_condition=A.SK.begins_with("POST#")))

    def batch_write(self) -> Any:
        with Post.batch_writer():
            for post in self.posts:
                post.save()

    def transact(self) -> Any:
        with transaction():
            for post in self.posts[:10]:
                post.save(condition=A.PK.not_exists())
