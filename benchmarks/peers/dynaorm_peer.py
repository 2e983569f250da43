"""dynaorm: typed entities, key templates, one Session.

`Peer()` is the session as a user gets it by default; `Peer(transport="direct")` and
`Peer(transport="botocore")` choose the transport. Against the client-cost fake server,
the botocore transport is answered inside botocore (as raw botocore is) and the direct
transport by a canned urllib3 pool, so both pay for everything but the socket; the
default there is the botocore transport, named so. They need the transports of issue 14
and refuse to run on a dynaorm without them rather than measure the default under
another name.
"""

from __future__ import annotations

import importlib.util
from datetime import datetime
from typing import Any

from benchmarks._data import POSTS, TABLE, USER
from benchmarks.peers import CREDENTIALS, ENDPOINT, REGION, BasePeer
from dynaorm import Collection, Entity, Session, Table

app = Table(TABLE)


class User(Entity, table=app, pk="USER#{user_id}", sk="PROFILE"):
    user_id: str
    email: str
    name: str


class Post(Entity, table=app, pk="USER#{user_id}", sk="POST#{created_at}#{post_id}"):
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


feed = Collection(User, Post)


def require_transports() -> None:
    """Fail loudly where `Session(transport=...)` does not exist yet."""
    if importlib.util.find_spec("dynaorm._direct") is None:
        raise RuntimeError(
            "this dynaorm has no Session(transport=...): the direct transport of issue 14"
            " (dynaorm._direct) is not merged"
        )


class Peer(BasePeer):
    name = "dynaorm"

    def __init__(self, transport: str | None = None) -> None:
        super().__init__()
        options: dict[str, Any] = dict(CREDENTIALS)
        if transport is not None:
            require_transports()
            self.name = f"dynaorm {transport}"
            options["transport"] = transport
        elif self.fake.inside_botocore and importlib.util.find_spec("dynaorm._direct"):
            # Client cost: the botocore transport unless the direct one is asked for.
            self.name = "dynaorm botocore"
            options["transport"] = "botocore"
        self.session = Session(endpoint_url=ENDPOINT, region=REGION, **options)
        if self.fake.inside_botocore:
            transport: Any = self.session.transport
            if options.get("transport") == "direct":
                transport._opener = self.fake.opener()  # answers where urllib3 would send
            else:
                self.fake.attach(transport.botocore_client)
        self.user = User(user_id=USER.user_id, email=USER.email, name=USER.name)
        self.posts = [Post(**_fields(row)) for row in POSTS]

    def store(self) -> None:
        self.session.put(self.user)
        for post in self.posts:
            self.session.put(post)

    def get(self) -> Any:
        first = self.posts[0]
        return self.session.get(
            Post, user_id="u1", created_at=first.created_at, post_id=first.post_id
        )

    def put(self) -> Any:
        self.session.put(self.posts[0])

    def query(self) -> Any:
        return self.session.query(Post, user_id="u1").all()

    def batch_write(self) -> Any:
        self.session.batch_write(put=self.posts)

    def transact(self) -> Any:
        with self.session.unit_of_work() as uow:
            for post in self.posts[:10]:
                uow.add(post)

    def collection(self) -> Any:
        result = self.session.collection(feed, user_id="u1")
        return result[User], result[Post]


def _fields(row: Any) -> dict[str, Any]:
    return {name: getattr(row, name) for name in row.__dataclass_fields__}
