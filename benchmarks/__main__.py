"""`python -m benchmarks [--quick]`: per-operation client cost, dynaorm and peers.

`python -m benchmarks --e2e [--quick] [--rows ...]`: get, query, put and batch write end
to end on DynamoDB Local, sync and async libraries side by side.

`python -m benchmarks --cold [--quick] [--rows ...]`: a fresh process imports, declares
and sends its first GetItem to DynamoDB Local.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import sys
import time
from collections.abc import Callable
from importlib import metadata
from typing import Any

from benchmarks._timing import Measured, interleaved, runnable
from benchmarks.peers import WORKLOADS, BasePeer

_PEERS = (  # module, distribution to report the version of
    ("benchmarks.peers.boto3_peer", "boto3"),
    ("benchmarks.peers.pynamodb_peer", "pynamodb"),
    ("benchmarks.peers.dyntastic_peer", "dyntastic"),
    ("benchmarks.peers.pydynantic_peer", "pydynantic"),
)
_DESCRIPTIONS = {
    "get": "get one item",
    "put": "put one item",
    "query": "query, 100 items",
    "batch_write": "batch write, 100 items",
    "transact": "transaction, 10 puts",
    "collection": "collection, 1 user + 50 posts",
}


def _environment() -> None:
    """Dummy credentials for every library; nothing from the machine's AWS setup."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            del os.environ[name]
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
    )


def _answer(peer: BasePeer, items: list[dict[str, Any]], has_user: bool) -> None:
    """Canned responses built from what this library itself wrote."""
    user, posts = (items[0], items[1:]) if has_user else (None, items)
    peer.fake.set("GetItem", {"Item": posts[0]})
    peer.fake.set("PutItem", {})
    peer.fake.set("BatchWriteItem", {"UnprocessedItems": {}})
    peer.fake.set("TransactWriteItems", {})
    peer.query_bodies = {  # type: ignore[attr-defined]
        "query": {"Items": posts[:100], "Count": 100, "ScannedCount": 100},
        "collection": {"Items": [user, *posts[:50]], "Count": 51, "ScannedCount": 51},
    }


def _prepare(peer: BasePeer, workload: str) -> Callable[[], Any]:
    bodies = peer.query_bodies  # type: ignore[attr-defined]
    if workload in bodies:
        peer.fake.set("Query", bodies[workload])
    function: Callable[[], Any] = getattr(peer, workload)
    _check(workload, function())
    return function


def _check(workload: str, result: Any) -> None:
    """The benchmark measures work that returned the right thing."""
    if workload == "query" and len(result) != 100:
        raise AssertionError(f"query returned {len(result)} items, not 100")
    if workload == "collection" and [len(part) for part in result] != [1, 50]:
        raise AssertionError(f"collection returned {[len(p) for p in result]}, not [1, 50]")
    if workload == "get" and result is None:
        raise AssertionError("get returned nothing")


def _load() -> tuple[list[BasePeer], dict[str, str]]:
    from benchmarks.peers import botocore_peer, dynaorm_peer  # noqa: PLC0415

    skipped: dict[str, str] = {}
    ours = dynaorm_peer.Peer()
    our_items = ours.fake.record(ours.store)
    raw = botocore_peer.Peer(our_items)
    peers: list[BasePeer] = [raw, ours, dynaorm_peer.Peer(transport="direct")]
    for module_name, distribution in _PEERS:
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:
            skipped[distribution] = f"not installed ({error}); pip install -e '.[bench]'"
            continue
        try:
            peer = module.Peer()
        except Exception as error:  # a peer that cannot start is reported, not faked
            skipped[distribution] = f"could not start: {type(error).__name__}: {error}"
            continue
        peers.append(peer)
    for peer in peers:
        items = peer.fake.record(peer.store)
        _answer(peer, items, has_user=len(items) == 101)
    return peers, skipped


def _measure(
    peers: list[BasePeer], workload: str, rounds: int, target: float
) -> dict[str, Measured | str]:
    """Median seconds per call for each peer; rounds interleave the peers."""
    functions, results = runnable(peers, workload, _prepare)
    numbers = {}
    for name, function in functions.items():
        start = time.perf_counter()
        function()
        numbers[name] = max(1, int(target / max(time.perf_counter() - start, 1e-7)))
    results.update(interleaved(functions, numbers, rounds, floor=peers[0].name))
    return results


def _machine() -> list[str]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if "model name" in line)
    except (OSError, StopIteration):
        pass
    versions = []
    for name in ("dynaorm", "botocore", "boto3", "pynamodb", "pydantic", "dyntastic",
                 "pydynantic", "pydynox"):  # fmt: skip
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name} (not installed)")
    return [
        f"machine: {cpu}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}",
        f"python: {platform.python_implementation()} {platform.python_version()}",
        "libraries: " + ", ".join(versions),
    ]


def _table(peers: list[BasePeer], results: dict[str, dict[str, Measured | str]]) -> list[str]:
    names = [peer.name for peer in peers]
    header = "| workload | " + " | ".join(names) + " |"
    lines = [header, "|---" * (len(names) + 1) + "|"]
    notes: list[str] = []
    for workload, row in results.items():
        cells = []
        for name in names:
            value = row.get(name)
            if isinstance(value, Measured):
                ratio = f" ({value.ratio:.2f}x)" if value.ratio is not None else ""
                cells.append(f"{value.seconds * 1e6:,.0f} µs{ratio}")
            else:
                cells.append("n/a" if str(value).startswith("n/a") else "failed")
                notes.append(f"{name}, {workload}: {value}")
        lines.append(f"| {_DESCRIPTIONS[workload]} | " + " | ".join(cells) + " |")
    return lines + [f"- {note}" for note in notes]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="few rounds: a smoke test")
    parser.add_argument("--rounds", type=int, help="rounds per workload (default 15; quick 3)")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory check")
    parser.add_argument(
        "--e2e",
        action="store_true",
        help="end to end on DynamoDB Local (started and stopped here), pydynox included",
    )
    parser.add_argument(
        "--cold",
        action="store_true",
        help="cold start on DynamoDB Local: import + declare + first get, fresh processes",
    )
    parser.add_argument(
        "--endpoint", metavar="URL", help="with --e2e/--cold: a DynamoDB Local already running"
    )
    parser.add_argument(
        "--rows",
        metavar="NAME,...",
        type=lambda text: [name.strip() for name in text.split(",") if name.strip()],
        help="with --e2e/--cold: only these rows (default all; a row that cannot run fails)",
    )
    args = parser.parse_args(argv)
    if (args.endpoint or args.rows) and not (args.e2e or args.cold):
        parser.error("--endpoint and --rows need --e2e or --cold")
    if args.e2e and args.cold:
        parser.error("--e2e and --cold are separate runs")
    if args.cold:
        from benchmarks import _cold  # noqa: PLC0415

        _environment()
        return _cold.run(
            quick=args.quick,
            rounds=args.rounds,
            endpoint=args.endpoint,
            rows=args.rows,
            machine=_machine,
        )
    if args.e2e:
        from benchmarks import _e2e  # noqa: PLC0415

        _environment()
        return _e2e.run(
            quick=args.quick,
            rounds=args.rounds,
            endpoint=args.endpoint,
            rows=args.rows,
            machine=_machine,
            table=_table,
        )
    rounds = args.rounds or (3 if args.quick else 15)
    target = 0.005 if args.quick else 0.1  # seconds per peer per round
    _environment()
    peers, skipped = _load()
    print("\n".join(_machine()))
    print(
        f"rounds: {rounds} (median per call; ratio: median over the rounds of the time"
        f" over {peers[0].name}'s in the same round)\n"
    )
    results = {w: _measure(peers, w, rounds, target) for w in WORKLOADS}
    print("\n".join(_table(peers, results)))
    for distribution, reason in skipped.items():
        print(f"- {distribution}: {reason}")
    if not args.no_memory:
        _memory(peers[1], quick=args.quick)
    return 0


def _memory(ours: Any, *, quick: bool) -> None:
    from benchmarks._memory import iteration_peak  # noqa: PLC0415
    from benchmarks.peers.dynaorm_peer import Post  # noqa: PLC0415

    items = ours.fake.record(ours.store)[1:]
    print("\nmemory: tracemalloc peak while iterating session.query(Post, ...) lazily")
    for total in (2_000, 10_000) if quick else (10_000, 100_000):
        start = time.perf_counter()
        peak = iteration_peak(ours, Post, items, total)
        seconds = time.perf_counter() - start
        print(
            f"  {total:>7,} items: peak {peak / 2**20:6.2f} MiB ({seconds:.1f} s under tracemalloc)"
        )


if __name__ == "__main__":
    sys.exit(main())
