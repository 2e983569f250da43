"""pydynox's async model API (`await Post.get(...)`, `async for` over a query, `BatchWriter`)
on its Rust core; the models and data of peers/pydynox_peer.py. End to end only."""

from __future__ import annotations

from typing import Any

from pydynox import BatchWriter

from benchmarks._data import TABLE
from benchmarks.peers import pydynox_peer
from benchmarks.peers._async import AsyncPeer
from benchmarks.peers.pydynox_peer import Post, as_item


class Peer(AsyncPeer):
    unsupported = {
        "transact": "not part of the end-to-end run",
        "collection": "not part of the end-to-end run",
    }

    def __init__(self, endpoint_url: str, concurrency: int) -> None:
        super().__init__(concurrency)
        self.name = self.describe("pydynox async")
        self.sync = pydynox_peer.Peer(endpoint_url)  # the client, the models, the data
        self.posts = self.sync.posts

    def store(self) -> None:
        self.sync.store()

    def get(self) -> Any:
        first = self.posts[0]
        return self.run(lambda: Post.get(pk=first.pk, sk=first.sk))

    def put(self) -> Any:
        return self.run(lambda: self.posts[0].save(full_replace=True))

    def query(self) -> Any:
        async def query() -> list[Any]:
            condition = Post.sk.begins_with("POST#")
            return [post async for post in Post.query("USER#u1", sort_key_condition=condition)]

        return self.run(query)

    def batch_write(self) -> Any:
        async def write() -> None:
            async with BatchWriter(self.sync.client, TABLE) as batch:
                for post in self.posts:
                    batch.put(as_item(post))

        return self.run(write)
