"""`python -m benchmarks --e2e`: get, query and put against DynamoDB Local, end to end.

Unlike the client-cost run (an instant fake server inside botocore), every call here
goes over HTTP to a real DynamoDB Local: serializing, signing, the socket, the server's
work and the library's decoding are all in the figure. It is the only way to include
pydynox, whose Rust core does its own HTTP and never touches botocore.

How it stays fair:

- One server for all libraries, started here (tests/dynamodb_local.py: in memory, on a
  free port of 127.0.0.1, stopped at the end) or the one given with `--endpoint`.
- One table per library, all with the same physical design (table `bench`, string keys
  `PK` and `SK`, on-demand). DynamoDB Local keeps one database per access key id, so each
  library gets a key of its own (letters only; dummy credentials) and its own table.
- Each library writes the same logical data (benchmarks/_data.py) its own way; raw
  botocore writes the items dynaorm wrote, read back from dynaorm's table. Every table is
  checked to hold exactly the 100 posts (and the user) before anything is timed.
- The server is warmed up (JIT, caches) by running every workload of every library
  before timing; then rounds interleave the libraries and the median is reported.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import botocore.session
from botocore.config import Config

import benchmarks.peers as peer_package
from benchmarks._data import TABLE
from benchmarks._timing import Measured, interleaved, runnable
from benchmarks.peers import CREDENTIALS, REGION, BasePeer

__all__ = ["create_table", "raw_client", "run", "server", "use_key"]

E2E_WORKLOADS = ("get", "query", "put")

# module, access key id (its own DynamoDB Local database), distribution for messages
_OTHERS = (
    ("benchmarks.peers.pydynox_peer", "pydynox", "pydynox"),
    ("benchmarks.peers.pynamodb_peer", "pynamodb", "pynamodb"),
    ("benchmarks.peers.boto3_peer", "boto3", "boto3"),
    ("benchmarks.peers.dyntastic_peer", "dyntastic", "dyntastic"),
    ("benchmarks.peers.pydynantic_peer", "pydynantic", "pydynantic"),
)
_KEY_PREFIX = "e2e"  # access key ids e2edynaorm, e2epydynox, ...


class _Direct:
    """Stands in for the fake server: requests go to the real endpoint."""

    def attach(self, client: Any) -> None:
        pass


def raw_client(endpoint: str, key: str) -> Any:
    return botocore.session.get_session().create_client(
        "dynamodb",
        region_name=REGION,
        endpoint_url=endpoint,
        aws_access_key_id=key,
        aws_secret_access_key=CREDENTIALS["aws_secret_access_key"],
        config=Config(retries={"total_max_attempts": 4, "mode": "standard"}),
    )


def use_key(key: str) -> None:
    """The credentials the next peer module import and Peer() pick up."""
    CREDENTIALS["aws_access_key_id"] = key
    os.environ["AWS_ACCESS_KEY_ID"] = key  # dyntastic reads the environment


def create_table(client: Any) -> None:
    """A fresh `bench` table (an old one from an earlier run on --endpoint is replaced)."""
    try:
        client.delete_table(TableName=TABLE)
        client.get_waiter("table_not_exists").wait(TableName=TABLE)
    except client.exceptions.ResourceNotFoundException:
        pass
    client.create_table(
        TableName=TABLE,
        KeySchema=[
            {"AttributeName": "PK", "KeyType": "HASH"},
            {"AttributeName": "SK", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "PK", "AttributeType": "S"},
            {"AttributeName": "SK", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    client.get_waiter("table_exists").wait(TableName=TABLE)


def _items(client: Any) -> list[dict[str, Any]]:
    """Every item of the table: the user first, then the posts in key order."""
    items: list[dict[str, Any]] = []
    request: dict[str, Any] = {"TableName": TABLE}
    while True:
        page = client.scan(**request)
        items.extend(page["Items"])
        if "LastEvaluatedKey" not in page:
            break
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    users = [item for item in items if item["SK"]["S"] == "PROFILE"]
    posts = sorted((item for item in items if item["SK"]["S"] != "PROFILE"),
                   key=lambda item: item["SK"]["S"])  # fmt: skip
    return users + posts


def _check_table(name: str, client: Any) -> None:
    items = _items(client)
    users = sum(item["SK"]["S"] == "PROFILE" for item in items)
    if users > 1 or len(items) - users != 100:  # dyntastic's peer writes no user
        raise AssertionError(f"{name} wrote {users} user(s) and {len(items) - users} posts")


def _load(endpoint: str) -> tuple[list[BasePeer], dict[str, str], list[Any]]:
    """Peers on the real endpoint, each with its own loaded table; raw botocore first."""
    peer_package.ENDPOINT = endpoint  # read by the peer modules when imported below
    peer_package.FakeDynamoDB = _Direct  # type: ignore[attr-defined,misc]
    clients: list[Any] = []
    skipped: dict[str, str] = {}

    def setup(key: str, build: Callable[[], BasePeer]) -> BasePeer:
        use_key(_KEY_PREFIX + key)
        client = raw_client(endpoint, _KEY_PREFIX + key)
        clients.append(client)
        create_table(client)
        peer = build()
        peer.store()
        _check_table(peer.name, client)
        return peer

    from benchmarks.peers import botocore_peer, dynaorm_peer  # noqa: PLC0415

    ours = setup("dynaorm", dynaorm_peer.Peer)
    our_items = _items(clients[-1])
    raw = setup("botocore", lambda: botocore_peer.Peer(our_items))
    peers = [raw, ours]
    for module_name, key, distribution in _OTHERS:
        try:
            use_key(_KEY_PREFIX + key)  # some modules build their client at import
            module = importlib.import_module(module_name)
        except ImportError as error:
            skipped[distribution] = f"not installed ({error}); pip install -e '.[bench]'"
            continue
        arguments = (endpoint,) if key == "pydynox" else ()
        try:
            peers.append(setup(key, lambda m=module, a=arguments: m.Peer(*a)))
        except Exception as error:  # a peer that cannot run is reported, not faked
            skipped[distribution] = f"could not run: {type(error).__name__}: {error}"
    return peers, skipped, clients


def _check(workload: str, result: Any) -> None:
    if workload == "query" and len(result) != 100:
        raise AssertionError(f"query returned {len(result)} items, not 100")
    if workload == "get" and result is None:
        raise AssertionError("get returned nothing")


def _prepare(peer: BasePeer, workload: str) -> Callable[[], Any]:
    function: Callable[[], Any] = getattr(peer, workload)
    _check(workload, function())
    return function


def _measure(
    peers: list[BasePeer], workload: str, rounds: int, target: float, warm: float
) -> dict[str, Measured | str]:
    """Median seconds per call for each peer, after a warm-up; rounds interleave peers."""
    functions, results = runnable(peers, workload, _prepare)
    # Warm-up, interleaved too: the JVM compiles the server's paths, every library fills
    # its caches and opens its connections. The last warm-up call sizes the batches.
    numbers: dict[str, int] = {}
    for _ in range(2):
        for name, function in functions.items():
            deadline = time.perf_counter() + warm / 2
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                function()
                last = time.perf_counter() - start
            numbers[name] = max(1, int(target / max(last, 1e-7)))
    results.update(interleaved(functions, numbers, rounds, floor=peers[0].name))
    return results


@contextmanager
def server(endpoint: str | None) -> Iterator[tuple[str, str]]:
    """The endpoint to use and a line describing it; starts DynamoDB Local if needed."""
    if endpoint:
        yield endpoint.rstrip("/"), f"server: {endpoint} (given with --endpoint)"
        return
    from tests import dynamodb_local  # noqa: PLC0415

    server = dynamodb_local.prepare()
    started = time.perf_counter()
    server.start()
    try:
        java = subprocess.run(
            [server.java, "-version"], capture_output=True, text=True, check=False
        ).stderr.splitlines()
        package = f"{dynamodb_local.PACKAGE}@{dynamodb_local.VERSION}"
        description = (
            f"server: DynamoDB Local from npm {package} ({server.home.name}), in memory,"
            f" {server.endpoint_url}, started in {time.perf_counter() - started:.1f} s;"
            f" java: {java[0] if java else '?'}"
        )
        yield server.endpoint_url, description
    finally:
        server.stop()


def run(
    *,
    quick: bool,
    rounds: int | None,
    endpoint: str | None,
    machine: Callable[[], list[str]],
    table: Callable[[list[BasePeer], dict[str, dict[str, Measured | str]]], list[str]],
) -> int:
    rounds = rounds or (3 if quick else 15)
    target = 0.03 if quick else 0.2  # seconds per peer per round
    warm = 0.5 if quick else 3.0  # seconds of warm-up per peer per workload
    began = time.perf_counter()
    with server(endpoint) as (url, description):
        peers, skipped, clients = _load(url)
        print("\n".join(machine()))
        print(description)
        print(
            f"end to end: rounds {rounds}, {warm:g} s warm-up per library and workload"
            f" (median per call; ratio: median over the rounds of the time over"
            f" {peers[0].name}'s in the same round)\n"
        )
        results = {w: _measure(peers, w, rounds, target, warm) for w in E2E_WORKLOADS}
        print("\n".join(table(peers, results)))
        for distribution, reason in skipped.items():
            print(f"- {distribution}: {reason}")
        for client in clients:
            client.delete_table(TableName=TABLE)
            client.close()
    print(f"\ntotal {time.perf_counter() - began:.0f} s")
    return 0
