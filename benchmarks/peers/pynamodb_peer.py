"""PynamoDB `Model` classes, polymorphic through a discriminator attribute."""

from __future__ import annotations

from typing import Any

from pynamodb.attributes import (
    BooleanAttribute,
    DiscriminatorAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.connection import Connection
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from benchmarks._data import POSTS, TABLE, USER
from benchmarks.peers import CREDENTIALS, ENDPOINT, REGION, BasePeer


class Item(Model):
    class Meta:
        table_name = TABLE
        region = REGION
        host = ENDPOINT
        aws_access_key_id = CREDENTIALS["aws_access_key_id"]
        aws_secret_access_key = CREDENTIALS["aws_secret_access_key"]

    pk = UnicodeAttribute(hash_key=True, attr_name="PK")
    sk = UnicodeAttribute(range_key=True, attr_name="SK")
    kind = DiscriminatorAttribute(attr_name="_type")


class User(Item, discriminator="User"):
    user_id = UnicodeAttribute()
    email = UnicodeAttribute()
    name = UnicodeAttribute()


class Post(Item, discriminator="Post"):
    user_id = UnicodeAttribute()
    post_id = UnicodeAttribute()
    title = UnicodeAttribute()
    body = UnicodeAttribute()
    created_at = UTCDateTimeAttribute()
    likes = NumberAttribute(default=0)
    views = NumberAttribute(default=0)
    tags = UnicodeSetAttribute(default=set)
    published = BooleanAttribute(default=False)
    topic = UnicodeAttribute(null=True)


def _post(row: Any) -> Post:
    created = row.created_at.isoformat()
    return Post(
        pk=f"USER#{row.user_id}",
        sk=f"POST#{created}#{row.post_id}",
        **{name: getattr(row, name) for name in row.__dataclass_fields__},
    )


class Peer(BasePeer):
    name = "PynamoDB Model"

    def __init__(self) -> None:
        super().__init__()
        self.connection: Connection = Item._get_connection().connection
        self.fake.attach(self.connection.client)
        self.user = User(pk="USER#u1", sk="PROFILE", user_id=USER.user_id, email=USER.email,
                         name=USER.name)  # fmt: skip
        self.posts = [_post(row) for row in POSTS]

    def store(self) -> None:
        self.user.save()
        for post in self.posts:
            post.save()

    def get(self) -> Any:
        return Post.get(self.posts[0].pk, self.posts[0].sk)

    def put(self) -> Any:
        self.posts[0].save()

    def query(self) -> Any:
        return list(Post.query("USER#u1", Post.sk.startswith("POST#")))

    def batch_write(self) -> Any:
        with Post.batch_write() as batch:
            for post in self.posts:
                batch.save(post)

    def transact(self) -> Any:
        with TransactWrite(connection=self.connection) as transaction:
            for post in self.posts[:10]:
                transaction.save(post, condition=Post.pk.does_not_exist())

    def collection(self) -> Any:
        users, posts = [], []
        for item in Item.query("USER#u1"):
            (users if isinstance(item, User) else posts).append(item)
        return users, posts
