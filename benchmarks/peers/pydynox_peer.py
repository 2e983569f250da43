"""pydynox: a `Model` over a Rust core that speaks HTTP itself (no botocore).

pydynox never goes through botocore, so the fake server of the client-cost benchmark
cannot answer it; it runs only end to end (`python -m benchmarks --e2e`). The sync API
(`sync_get`, `sync_query`, `sync_save`) is used, like every other library here; its async
API is peers/pydynox_async_peer.py. Batches go through `SyncBatchWriter`, which takes the
models' `to_dict()` (pydynox has no batch call for models).
"""

from __future__ import annotations

from typing import Any

from pydynox import DynamoDBClient, Model, ModelConfig, SyncBatchWriter, set_default_client
from pydynox.attributes import (
    BooleanAttribute,
    DatetimeAttribute,
    NumberAttribute,
    StringAttribute,
    StringSetAttribute,
)

from benchmarks._data import POSTS, TABLE, USER
from benchmarks.peers import CREDENTIALS, REGION, BasePeer


class User(Model):
    model_config = ModelConfig(table=TABLE)

    pk = StringAttribute(partition_key=True, alias="PK")
    sk = StringAttribute(sort_key=True, alias="SK")
    kind = StringAttribute(alias="_type", default="User")
    user_id = StringAttribute()
    email = StringAttribute()
    name = StringAttribute()


class Post(Model):
    model_config = ModelConfig(table=TABLE)

    pk = StringAttribute(partition_key=True, alias="PK")
    sk = StringAttribute(sort_key=True, alias="SK")
    kind = StringAttribute(alias="_type", default="Post")
    user_id = StringAttribute()
    post_id = StringAttribute()
    title = StringAttribute()
    body = StringAttribute()
    created_at = DatetimeAttribute()
    likes = NumberAttribute(default=0)
    views = NumberAttribute(default=0)
    tags = StringSetAttribute()
    published = BooleanAttribute(default=False)
    topic = StringAttribute()


def _post(row: Any) -> Post:
    created = row.created_at.isoformat()
    fields = {name: getattr(row, name) for name in row.__dataclass_fields__}
    fields["tags"] = set(row.tags)
    return Post(pk=f"USER#{row.user_id}", sk=f"POST#{created}#{row.post_id}", **fields)


class Peer(BasePeer):
    name = "pydynox"
    unsupported = {
        "transact": "not part of the end-to-end run",
        "collection": "not part of the end-to-end run",
    }

    def __init__(self, endpoint_url: str) -> None:
        super().__init__()
        self.client = DynamoDBClient(
            region=REGION,
            access_key=CREDENTIALS["aws_access_key_id"],
            secret_key=CREDENTIALS["aws_secret_access_key"],
            endpoint_url=endpoint_url,
        )
        set_default_client(self.client)
        self.user = User(pk="USER#u1", sk="PROFILE", user_id=USER.user_id, email=USER.email,
                         name=USER.name)  # fmt: skip
        self.posts = [_post(row) for row in POSTS]

    def store(self) -> None:
        self.user.sync_save(full_replace=True)
        for post in self.posts:
            post.sync_save(full_replace=True)

    def get(self) -> Any:
        return Post.sync_get(pk=self.posts[0].pk, sk=self.posts[0].sk)

    def put(self) -> Any:
        self.posts[0].sync_save(full_replace=True)  # a PutItem of every field, as the others

    def query(self) -> Any:
        return list(Post.sync_query("USER#u1", sort_key_condition=Post.sk.begins_with("POST#")))

    def batch_write(self) -> Any:
        with SyncBatchWriter(self.client, TABLE) as batch:
            for post in self.posts:
                batch.put(as_item(post))


def as_item(post: Post) -> dict[str, Any]:
    """A post for pydynox's batch writer: `to_dict()`, its tags kept a set (not a list)."""
    return {**post.to_dict(), "tags": set(post.tags or ())}
