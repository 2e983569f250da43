"""dynaorm's `AsyncSession` on the direct transport (aiohttp), end to end only.

The same entities as the sync peer (peers/dynaorm_peer.py). Refuses to run on a dynaorm
without `AsyncSession` (issue 14) rather than time something else under its name.
"""

from __future__ import annotations

from typing import Any

import dynaorm
from benchmarks._data import POSTS, USER
from benchmarks.peers import CREDENTIALS, ENDPOINT, REGION
from benchmarks.peers._async import AsyncPeer
from benchmarks.peers.dynaorm_peer import Post, User, _fields


class Peer(AsyncPeer):
    def __init__(self, concurrency: int) -> None:
        if not hasattr(dynaorm, "AsyncSession"):
            raise RuntimeError("this dynaorm has no AsyncSession (issue 14 is not merged)")
        super().__init__(concurrency)
        self.name = self.describe("dynaorm AsyncSession")
        self.session: Any = self.loop.run_until_complete(self._open())
        self.user = User(user_id=USER.user_id, email=USER.email, name=USER.name)
        self.posts = [Post(**_fields(row)) for row in POSTS]
        first = self.posts[0]
        self.key = {"user_id": "u1", "created_at": first.created_at, "post_id": first.post_id}

    async def _open(self) -> Any:
        session = dynaorm.AsyncSession(  # type: ignore[attr-defined, unused-ignore]
            endpoint_url=ENDPOINT, region=REGION, transport="direct", **CREDENTIALS
        )
        return await session.__aenter__()

    async def aclose(self) -> None:
        await self.session.__aexit__(None, None, None)

    def store(self) -> None:
        async def write() -> None:
            await self.session.put(self.user)
            for post in self.posts:
                await self.session.put(post)

        self.loop.run_until_complete(write())

    def get(self) -> Any:
        return self.run(lambda: self.session.get(Post, **self.key))

    def put(self) -> Any:
        return self.run(lambda: self.session.put(self.posts[0]))

    def query(self) -> Any:
        return self.run(lambda: self.session.query(Post, user_id="u1").all())

    def batch_write(self) -> Any:
        return self.run(lambda: self.session.batch_write(put=self.posts))
