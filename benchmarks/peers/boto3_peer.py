"""boto3's `Table` resource with pydantic models: the common hand-written stack."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import boto3
from boto3.dynamodb.conditions import Key
from boto3.dynamodb.types import TypeSerializer
from pydantic import BaseModel

from benchmarks._data import POSTS, TABLE, USER
from benchmarks.peers import CREDENTIALS, ENDPOINT, REGION, BasePeer


class User(BaseModel):
    user_id: str
    email: str
    name: str


class Post(BaseModel):
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


def _user_item(user: User) -> dict[str, Any]:
    return {"PK": f"USER#{user.user_id}", "SK": "PROFILE", "_type": "User", **user.model_dump()}


def _post_item(post: Post) -> dict[str, Any]:
    item = post.model_dump(mode="json", exclude={"tags"})
    if post.tags:
        item["tags"] = set(post.tags)  # mode="json" would make it a list (an L)
    keys = {"PK": f"USER#{post.user_id}", "SK": f"POST#{item['created_at']}#{post.post_id}"}
    return {**keys, "_type": "Post", **item}


class Peer(BasePeer):
    name = "boto3 Table + pydantic"

    def __init__(self) -> None:
        super().__init__()
        session = boto3.session.Session(region_name=REGION, **CREDENTIALS)
        self.resource = session.resource("dynamodb", endpoint_url=ENDPOINT)
        self.table = self.resource.Table(TABLE)
        self.client = self.resource.meta.client
        self.fake.attach(self.client)
        self.serializer = TypeSerializer()
        self.user = User(user_id=USER.user_id, email=USER.email, name=USER.name)
        self.posts = [Post(**{n: getattr(r, n) for n in r.__dataclass_fields__}) for r in POSTS]

    def store(self) -> None:
        self.table.put_item(Item=_user_item(self.user))
        for post in self.posts:
            self.table.put_item(Item=_post_item(post))

    def get(self) -> Any:
        first = _post_item(self.posts[0])
        item = self.table.get_item(Key={"PK": first["PK"], "SK": first["SK"]}).get("Item")
        return Post.model_validate(item) if item is not None else None

    def put(self) -> Any:
        self.table.put_item(Item=_post_item(self.posts[0]))

    def query(self) -> Any:
        response = self.table.query(
            KeyConditionExpression=Key("PK").eq("USER#u1") & Key("SK").begins_with("POST#")
        )
        return [Post.model_validate(item) for item in response["Items"]]

    def batch_write(self) -> Any:
        with self.table.batch_writer() as writer:
            for post in self.posts:
                writer.put_item(Item=_post_item(post))

    def transact(self) -> Any:
        actions = []
        for post in self.posts[:10]:
            item = {k: self.serializer.serialize(v) for k, v in _post_item(post).items()}
            actions.append(
                {
                    "Put": {
                        "TableName": TABLE,
                        "Item": item,
                        "ConditionExpression": "attribute_not_exists(PK)",
                    }
                }
            )
        self.client.transact_write_items(TransactItems=actions)

    def collection(self) -> Any:
        response = self.table.query(KeyConditionExpression=Key("PK").eq("USER#u1"))
        users, posts = [], []
        for item in response["Items"]:
            if item.get("_type") == "User":
                users.append(User.model_validate(item))
            elif item.get("_type") == "Post":
                posts.append(Post.model_validate(item))
        return users, posts
