"""One module per library, each defining `Peer`; one that cannot start is reported."""

from __future__ import annotations

from typing import Any

from benchmarks._fake import FakeDynamoDB

__all__ = ["CREDENTIALS", "ENDPOINT", "REGION", "WORKLOADS", "BasePeer"]

# A closed port: if a library ever got past the fake server, it would fail at once.
ENDPOINT = "http://127.0.0.1:9"
REGION = "us-east-1"
CREDENTIALS = {"aws_access_key_id": "bench", "aws_secret_access_key": "bench"}

WORKLOADS = ("get", "put", "query", "batch_write", "transact", "collection")


class BasePeer:
    """A library under test: writes the data once (recorded), then runs each workload."""

    name = ""
    # Workloads this library has no way to express, with the reason shown in the output.
    unsupported: dict[str, str] = {}

    def __init__(self) -> None:
        self.fake = FakeDynamoDB()

    def store(self) -> None:
        """Write USER then POSTS the library's own way (the fake records the items)."""
        raise NotImplementedError

    def get(self) -> Any:
        raise NotImplementedError

    def put(self) -> Any:
        raise NotImplementedError

    def query(self) -> Any:
        """The 100 posts of the user, as the library's result objects."""
        raise NotImplementedError

    def batch_write(self) -> Any:
        """Put all 100 posts in batches."""
        raise NotImplementedError

    def transact(self) -> Any:
        """One transaction creating 10 posts (each conditional on not existing yet)."""
        raise NotImplementedError

    def collection(self) -> Any:
        """The user and 50 posts from one partition, one Query, split by type."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the library holds open (an event loop, a connection pool)."""
