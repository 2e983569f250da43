"""aiobotocore: botocore's machinery on aiohttp. Untyped AttributeValue dicts, like raw
botocore (peers/botocore_peer.py), whose client configuration and requests it copies."""

from __future__ import annotations

from typing import Any

from aiobotocore.session import get_session
from botocore.config import Config

from benchmarks._data import TABLE
from benchmarks.peers import CREDENTIALS, ENDPOINT, REGION
from benchmarks.peers._async import AsyncPeer
from benchmarks.peers.botocore_peer import _KEY_CONDITION


class Peer(AsyncPeer):
    def __init__(self, items: list[dict[str, Any]], concurrency: int) -> None:
        """`items`: the user then the posts, as AttributeValue maps (dynaorm's own)."""
        super().__init__(concurrency)
        self.name = self.describe("aiobotocore")
        self._context = get_session().create_client(
            "dynamodb",
            region_name=REGION,
            endpoint_url=ENDPOINT,
            config=Config(
                parameter_validation=False,
                retries={"total_max_attempts": 4, "mode": "standard"},
                max_pool_connections=concurrency * 2,
            ),
            **CREDENTIALS,
        )
        self.client: Any = self.loop.run_until_complete(self._context.__aenter__())
        self.items = items
        self.posts = items[1:]

    async def aclose(self) -> None:
        await self._context.__aexit__(None, None, None)

    def store(self) -> None:
        async def write() -> None:
            for item in self.items:
                await self.client.put_item(TableName=TABLE, Item=item)

        self.loop.run_until_complete(write())

    def get(self) -> Any:
        key = {"PK": self.posts[0]["PK"], "SK": self.posts[0]["SK"]}

        async def get() -> Any:
            return (await self.client.get_item(TableName=TABLE, Key=key)).get("Item")

        return self.run(get)

    def put(self) -> Any:
        return self.run(lambda: self.client.put_item(TableName=TABLE, Item=self.posts[0]))

    def query(self) -> Any:
        async def query() -> Any:
            return (await self.client.query(TableName=TABLE, **_KEY_CONDITION))["Items"]

        return self.run(query)

    def batch_write(self) -> Any:
        async def write() -> None:
            for start in range(0, len(self.posts), 25):
                chunk = [{"PutRequest": {"Item": item}} for item in self.posts[start : start + 25]]
                await self.client.batch_write_item(RequestItems={TABLE: chunk})

        return self.run(write)
