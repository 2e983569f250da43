"""Raw botocore: the floor. Untyped AttributeValue dicts in, untyped dicts out.

The client is configured exactly like the one pynamodb builds for dynaorm (no parameter
validation, standard retry mode with 4 attempts), so the ratio to it is library cost only.
"""

from __future__ import annotations

from typing import Any

import botocore.session
from botocore.config import Config

from benchmarks._data import TABLE
from benchmarks.peers import CREDENTIALS, ENDPOINT, REGION, BasePeer

_KEY_CONDITION = {
    "KeyConditionExpression": "#pk = :pk AND begins_with(#sk, :sk)",
    "ExpressionAttributeNames": {"#pk": "PK", "#sk": "SK"},
    "ExpressionAttributeValues": {":pk": {"S": "USER#u1"}, ":sk": {"S": "POST#"}},
}


class Peer(BasePeer):
    name = "botocore (raw)"

    def __init__(self, items: list[dict[str, Any]]) -> None:
        """`items`: the user then the posts, as AttributeValue maps (dynaorm's own)."""
        super().__init__()
        self.client = botocore.session.get_session().create_client(
            "dynamodb",
            region_name=REGION,
            endpoint_url=ENDPOINT,
            config=Config(
                parameter_validation=False,
                retries={"total_max_attempts": 4, "mode": "standard"},
            ),
            **CREDENTIALS,
        )
        self.fake.attach(self.client)
        self.items = items
        self.posts = items[1:]

    def store(self) -> None:
        for item in self.items:
            self.client.put_item(TableName=TABLE, Item=item)

    def get(self) -> Any:
        key = {"PK": self.posts[0]["PK"], "SK": self.posts[0]["SK"]}
        return self.client.get_item(TableName=TABLE, Key=key).get("Item")

    def put(self) -> Any:
        self.client.put_item(TableName=TABLE, Item=self.posts[0])

    def query(self) -> Any:
        return self.client.query(TableName=TABLE, **_KEY_CONDITION)["Items"]

    def batch_write(self) -> Any:
        for start in range(0, len(self.posts), 25):
            chunk = [{"PutRequest": {"Item": item}} for item in self.posts[start : start + 25]]
            self.client.batch_write_item(RequestItems={TABLE: chunk})

    def transact(self) -> Any:
        actions = [
            {
                "Put": {
                    "TableName": TABLE,
                    "Item": item,
                    "ConditionExpression": "attribute_not_exists(#pk)",
                    "ExpressionAttributeNames": {"#pk": "PK"},
                }
            }
            for item in self.posts[:10]
        ]
        self.client.transact_write_items(TransactItems=actions)

    def collection(self) -> Any:
        items = self.client.query(
            TableName=TABLE,
            KeyConditionExpression="#pk = :pk",
            ExpressionAttributeNames={"#pk": "PK"},
            ExpressionAttributeValues={":pk": {"S": "USER#u1"}},
        )["Items"]
        users = [item for item in items if item["_type"]["S"] == "User"]
        posts = [item for item in items if item["_type"]["S"] == "Post"]
        return users, posts
