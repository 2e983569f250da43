"""A backfill shared by workers through lease items: a crash, a takeover, exactly-once writes."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from dynaorm import Session
from dynaorm._backfill import BackfillCounts
from dynaorm._compiler import schema_of
from dynaorm._leases import (
    INTERNAL_KEY_PREFIX,
    RunInfo,
    claim_request,
    lease_from_item,
    partition_of,
)
from dynaorm._workers import (
    WorkerOptions,
    _Held,
    _LeaseLost,
    _Worker,
    backfill_across_workers,
    run_status,
    status_lines,
)
from dynaorm.cli import main
from dynaorm.errors import CheckpointMismatch, ConditionFailed
from tests.dynamodb_local import Backend
from tests.unit.test_ratelimit import FakeTime

from .conftest import Recorder
from .test_migrate import CATEGORIES, ProductV1, cli_args, shop_v1, shop_v2

__all__ = ["cli_args"]  # the fixture, shared with test_migrate

SEGMENTS = 8
LEASE = 4.0  # seconds: short enough for a test, long enough that a loaded machine never
# stalls a live worker past it (which would make a takeover legitimate, not a crash)
TARGET = "dynaorm_migrate_models:shop_v2"


@pytest.fixture
def products(session: Session) -> Iterator[list[ProductV1]]:
    """The v1 table with 160 products (a third without a category) and one foreign item."""
    session.create_table(shop_v1)
    items = [
        ProductV1(sku=f"p{i:03}", name=f"product {i}", category=CATEGORIES[i % 3])
        for i in range(160)
    ]
    session.batch_write(put=items)
    foreign = {"PK": {"S": "OTHER#1"}, "SK": {"S": "X"}, "_type": {"S": "Invoice"}}
    session._call("PutItem", {"TableName": session.table_name(shop_v1), "Item": foreign})
    yield items
    session.delete_table(shop_v1)


def _internal(params: dict[str, Any]) -> bool:
    key = params.get("Key") or params.get("Item") or {}
    return str(key.get("PK", {}).get("S", "")).startswith(INTERNAL_KEY_PREFIX)


class _Crash(Exception):
    """The victim's machine is gone: nothing it sends arrives any more."""


class _Victim:
    """Makes a session die abruptly in the middle of a segment: after its second saved
    position, at the first backfill write that lands (its response arrives, then nothing
    more does) or, if that page needs no write, before the next Scan page is read."""

    def __init__(self, session: Session, observer: Session) -> None:
        self.session = session
        self.observer = observer
        self.checkpoints = 0
        self.started = threading.Event()
        self.crashed = threading.Event()
        self.lease_at_crash: dict[str, Any] = {}
        self.status_at_crash: list[str] = []
        self.original = session.transport.call

    def call(self, operation: str, params: dict[str, Any], **context: Any) -> dict[str, Any]:
        if self.crashed.is_set():
            raise _Crash
        armed = self.checkpoints >= 2
        if armed and operation == "Scan":
            self.crash(params["Segment"])
        response = self.original(operation, params, **context)
        values = params.get("ExpressionAttributeValues", {})
        if operation == "UpdateItem" and _internal(params) and ":position" in values:
            self.checkpoints += 1
            self.started.set()
        elif armed and operation == "UpdateItem" and not _internal(params):
            self.crash(None)
        return response

    def crash(self, segment: int | None) -> None:
        self.crashed.set()
        status = run_status(self.observer, shop_v2, "run-1")
        mine = [lease for lease in status.leases.values() if lease.owner == "killed"]
        held = [lease for lease in mine if lease.state == "leased"]
        assert len(held) == 1 and segment in (None, held[0].segment)
        self.lease_at_crash = {"lease": held[0]}
        self.status_at_crash = status_lines(status, int(time.time() * 1000))
        if segment is not None:
            raise _Crash


def _worker(session: Session, name: str) -> None:
    options = WorkerOptions("run-1", worker=name, lease_seconds=LEASE)
    backfill_across_workers(session, shop_v2, options, segments=SEGMENTS, page_size=3)


def test_four_workers_one_killed_backfill_every_item_exactly_once(
    session: Session,
    dynamodb_backend: Backend,
    products: list[ProductV1],
    monkeypatch: pytest.MonkeyPatch,
    cli_args: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    prefix = session.transport.table_prefix
    workers = [dynamodb_backend.session(table_prefix=prefix) for _ in range(4)]
    writes: Counter[str] = Counter()
    takeovers: list[tuple[float, dict[str, Any]]] = []
    lock = threading.Lock()

    def listen(operation: str, params: dict[str, Any], response: Any, error: Any) -> None:
        if operation != "UpdateItem" or error is not None:
            return
        with lock:
            if not _internal(params):
                writes[params["Key"]["PK"]["S"]] += 1
            elif params["ExpressionAttributeValues"].get(":old_owner") == {"S": "killed"}:
                takeovers.append((time.time(), params))

    for worker in workers:
        worker.transport.add_listener(listen)
    victim = _Victim(workers[0], session)
    monkeypatch.setattr(workers[0].transport, "call", victim.call)
    crashes: list[BaseException] = []

    def killed() -> None:
        try:
            _worker(workers[0], "killed")
        except _Crash as crash:
            crashes.append(crash)

    threads = [threading.Thread(target=killed)]
    threads[0].start()
    assert victim.started.wait(60)  # the victim holds a segment and saved a position in it
    threads += [
        threading.Thread(target=_worker, args=(workers[i], f"survivor-{i}")) for i in (1, 2, 3)
    ]
    for thread in threads[1:]:
        thread.start()
    for thread in threads:
        thread.join(120)
        assert not thread.is_alive()

    assert len(crashes) == 1 and victim.crashed.is_set()
    expected = {f"PRODUCT#{p.sku}" for p in products if p.category is not None}
    assert writes == Counter(dict.fromkeys(expected, 1))  # every item, exactly once
    stored = session._call("Scan", {"TableName": session.table_name(shop_v2)})["Items"]
    indexed = {i["PK"]["S"]: i.get("GSI1PK", {}).get("S") for i in stored if "sku" in i}
    assert indexed == {
        f"PRODUCT#{p.sku}": p.category and f"CATEGORY#{p.category}" for p in products
    }
    crashed = victim.lease_at_crash["lease"]
    assert crashed.position is not None  # mid-segment: resumed from the saved position
    assert len(takeovers) == 1
    taken_at, takeover = takeovers[0]
    assert takeover["Key"]["SK"] == {"S": f"segment#{crashed.segment:07d}"}
    assert taken_at * 1000 >= crashed.until_ms  # only once the lease had expired
    final = run_status(session, shop_v2, "run-1")
    assert final.finished
    resumed = final.leases[crashed.segment]
    assert resumed.owner.startswith("survivor-") and resumed.claims == crashed.claims + 1
    # Saved counts cover every page once: the page the victim wrote but never saved was
    # scanned again by its successor, which found those items current.
    assert sum(lease.scanned for lease in final.leases.values()) == 161
    assert sum(lease.updated for lease in final.leases.values()) <= len(expected)
    row = victim.status_at_crash[1 + 1 + crashed.segment].split()
    assert row[:3] == [str(crashed.segment), "leased", "killed"]
    for worker in workers:
        worker.transport.close()

    assert main(["migrate", TARGET, "--run", "run-1", "--status", *cli_args]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert f"{SEGMENTS} segments, {SEGMENTS} done; 161 items scanned" in lines[0]
    row = lines[2 + crashed.segment].split()
    assert row[1] == "done" and row[2] == resumed.owner and row[-1] == "-"


def test_status_command_shows_every_segment(
    products: list[ProductV1], cli_args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    run = ["--run", "r1", "--segments", "4", "--page-size", "50", "--no-progress"]
    assert main(["migrate", TARGET, *run, "--status", *cli_args]) == 2
    assert "no migrate run 'r1'" in capsys.readouterr().out

    assert main(["migrate", TARGET, *run, "--worker", "w1", *cli_args]) == 0
    captured = capsys.readouterr()
    assert "161 items scanned by this worker, did update Product 107" in captured.out
    assert "worker w1 joins run r1 (4 segments)" in captured.err

    assert main(["migrate", TARGET, *run, "--status", *cli_args]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith(": 4 segments, 4 done; 161 items scanned, 107 updated")
    header = ["SEGMENT", "STATE", "OWNER", "SCANNED", "UPDATED", "LEASE", "EXPIRES"]
    assert lines[1].split() == header
    assert [line.split()[:3] for line in lines[2:]] == [[str(s), "done", "w1"] for s in range(4)]
    assert [line.split()[-1] for line in lines[2:]] == ["-"] * 4

    assert main(["migrate", TARGET, *run, *cli_args]) == 0
    assert (
        "backfill: run r1 says the backfill finished: scanned none, did update none; "
        "start another --run to scan again"
    ) in capsys.readouterr().out
    assert main(["migrate", TARGET, "--run", "r1", "--segments", "8", *cli_args]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "[checkpoint-mismatch] migrate run 'r1' was started on table" in err
    assert "with 4 segments" in err and "this worker would scan" in err and "8 segments" in err


def test_worker_options_need_a_run(
    cli_args: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def connect(args: Any) -> Session:
        raise AssertionError("refused options must be refused before connecting")

    monkeypatch.setattr("dynaorm.cli._session", connect)
    assert main(["migrate", TARGET, "--run", "a#b", *cli_args]) == 1
    assert "[definition] migrate run id 'a#b': use 1 to 128 letters" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="--worker, --status needs --run"):
        main(["migrate", TARGET, "--worker", "w", "--status", *cli_args])
    with pytest.raises(SystemExit, match="--checkpoint and --run exclude each other"):
        main(["migrate", TARGET, "--run", "r", "--checkpoint", "x.json", *cli_args])


def test_a_stalled_worker_loses_its_segment_to_the_one_that_took_it_over(
    session: Session, products: list[ProductV1]
) -> None:
    """Worker A claims a segment and stalls; B finds the lease expired and takes it; A's
    next checkpoint fails, so A stops scanning instead of racing B on the same segment."""
    name = session.table_name(shop_v2)
    clock = [1000.0]
    stalled = WorkerOptions("run-2", worker="a", lease_seconds=10, clock=lambda: clock[0])
    request, lease_a = claim_request(shop_v2, name, "run-2", 0, None, "a", 1_010_000)
    session._call("UpdateItem", request)
    with pytest.raises(ConditionFailed):  # a second claim of a claimed segment fails
        session._call("UpdateItem", claim_request(shop_v2, name, "run-2", 0, None, "b", 1)[0])

    key = {"PK": {"S": partition_of("run-2")}, "SK": {"S": "segment#0000000"}}
    stored = session._call("GetItem", {"TableName": name, "Key": key, "ConsistentRead": True})
    seen = lease_from_item(stored["Item"])
    assert seen == lease_a
    takeover, lease_b = claim_request(shop_v2, name, "run-2", 0, seen, "b", 1_030_000)
    session._call("UpdateItem", takeover)
    assert lease_b.claims == 2 and lease_b.owner == "b"
    with pytest.raises(ConditionFailed):  # a third worker that read the old lease is late
        session._call("UpdateItem", claim_request(shop_v2, name, "run-2", 0, seen, "c", 9)[0])

    info = RunInfo("run-2", name, "f", 1)
    worker = _Worker(session, schema_of(shop_v2), name, info, stalled, None, 5, None)
    clock[0] = 1020.0
    with pytest.raises(_LeaseLost):
        _Held(worker, lease_a).save()
    stored = session._call("GetItem", {"TableName": name, "Key": key, "ConsistentRead": True})
    assert lease_from_item(stored["Item"]) == lease_b  # B's lease is untouched


def test_a_worker_of_another_shape_is_refused(session: Session, products: list[ProductV1]) -> None:
    options = WorkerOptions("run-3", lease_seconds=LEASE)
    backfill_across_workers(session, shop_v2, options, segments=2)
    with pytest.raises(CheckpointMismatch, match="run-3"):
        backfill_across_workers(session, shop_v2, options, segments=3)


def test_max_wcu_paces_every_backfill_write(
    session: Session, products: list[ProductV1], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeTime()  # the bucket's clock: nothing here waits for real
    monkeypatch.setattr("dynaorm._ratelimit.time", fake)
    charged = [0.0]
    paced: list[tuple[float, float]] = []  # (clock when an item write returned, units before)

    def listen(operation: str, params: dict[str, Any], response: Any, error: Any) -> None:
        if operation not in ("UpdateItem", "PutItem"):
            return
        if not _internal(params):
            paced.append((fake.monotonic(), charged[0]))
        consumed = (response or {}).get("ConsumedCapacity") or {}
        charged[0] += float(consumed.get("CapacityUnits", 0)) or 1.0

    session.transport.add_listener(listen)
    options = WorkerOptions("run-4", lease_seconds=600)
    counts = backfill_across_workers(session, shop_v2, options, segments=4, max_wcu=20)
    session.transport.remove_listener(listen)

    assert counts.updated == len(paced) == 107
    for started, before in paced:  # no write began before the units charged were repaid
        assert started >= (before - 20) / 20 - 1e-6
    assert paced[-1][1] > 20 and fake.slept  # beyond the burst: writes did wait


class _Interrupt(Exception):
    pass


def test_an_interrupted_worker_hands_its_segment_back_at_once(
    session: Session, products: list[ProductV1]
) -> None:
    def stop_after_first_page(counts: BackfillCounts) -> None:
        raise _Interrupt

    first = WorkerOptions("run-5", worker="a", lease_seconds=600)
    with pytest.raises(_Interrupt):
        backfill_across_workers(
            session, shop_v2, first, segments=1, page_size=50, progress=stop_after_first_page
        )
    handed_back = run_status(session, shop_v2, "run-5").leases[0]
    assert (handed_back.state, handed_back.owner, handed_back.until_ms) == ("released", "a", 0)
    assert handed_back.position is not None and handed_back.scanned > 0

    # Another worker resumes at once (no lease to wait for) from the saved position.
    second = WorkerOptions("run-5", worker="b", lease_seconds=600, sleep=_no_waiting)
    rest = backfill_across_workers(session, shop_v2, second, segments=1, page_size=50)

    assert rest.scanned == 161 - handed_back.scanned
    assert rest.updated + handed_back.updated == 107
    final = run_status(session, shop_v2, "run-5").leases[0]
    assert (final.state, final.owner, final.claims, final.scanned) == ("done", "b", 2, 161)


def test_a_long_page_renews_the_lease_while_it_is_processed(
    session: Session, products: list[ProductV1], recorder: Recorder
) -> None:
    clock = [1_000.0]

    def tick() -> float:  # every reading of the worker's clock is a quarter second later
        clock[0] += 0.25
        return clock[0]

    options = WorkerOptions("run-6", lease_seconds=3, clock=tick, sleep=_no_waiting)
    backfill_across_workers(session, shop_v2, options, segments=1, page_size=200)

    saves = [
        params
        for operation, params in recorder.calls
        if operation == "UpdateItem" and ":scanned" in params.get("ExpressionAttributeValues", {})
    ]
    # One page, saved once when done, and renewed every second (4 readings) while the
    # 161 items of the page were processed.
    assert len(saves) > 10
    assert [s["ExpressionAttributeValues"][":scanned"] for s in saves[:-1]] == [{"N": "0"}] * (
        len(saves) - 1
    )
    assert saves[-1]["ExpressionAttributeValues"][":scanned"] == {"N": "161"}
    untils = [int(s["ExpressionAttributeValues"][":until"]["N"]) for s in saves]
    assert untils == sorted(untils)


def _no_waiting(seconds: float) -> None:
    raise AssertionError(f"a worker waited {seconds}s though no other worker held a segment")
