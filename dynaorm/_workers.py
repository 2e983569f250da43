"""A backfill shared by any number of workers on any machines, through lease items.

Each worker (`backfill_across_workers`) joins a run (`dynaorm._leases`: a run item and
one lease item per parallel-scan segment, in the migrated table itself), claims segments
with conditional writes, scans them page by page with `_backfill`'s per-item logic, and
after every page renews its lease and saves the segment's position and counts. A worker
that dies keeps its lease only until it expires; another worker then takes the segment
over from the saved position. Writes are paced by a token bucket on consumed write
capacity. `run_status` reads where every segment stands.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

from dynaorm._backfill import (
    BackfillCounts,
    Checkpoint,
    ProgressCallback,
    _Backfill,
    schema_fingerprint,
)
from dynaorm._codec import AttributeValue
from dynaorm._compiler import CompiledSchema, schema_of
from dynaorm._leases import (
    RUN_SORT_KEY,
    Lease,
    RunInfo,
    checkpoint_request,
    claim_request,
    is_internal,
    lease_from_item,
    partition_of,
    release_request,
    run_from_item,
    run_item_request,
    status_query,
)
from dynaorm._ratelimit import Clock, Sleep, TokenBucket, pacing
from dynaorm._schema import Table
from dynaorm.errors import CheckpointMismatch, ConditionFailed, DefinitionError

if TYPE_CHECKING:
    from dynaorm._session import Session

__all__ = [
    "RunStatus",
    "WorkerOptions",
    "backfill_across_workers",
    "default_worker_name",
    "run_status",
    "status_lines",
]


def default_worker_name() -> str:
    """Unique per process: the host name would repeat for two workers on one machine."""
    return f"worker-{uuid.uuid4().hex[:12]}"


# -- one segment's scan --------------------------------------------------------------------


class _LeaseLost(Exception):
    """Another worker took the segment over (this worker stalled past its lease)."""


@dataclass
class _SegmentJob(_Backfill):
    """`_Backfill`'s per-item planning and conditional writes, kept alive by a heartbeat."""

    heartbeat: Callable[[], None] = lambda: None

    def process(self, item: Mapping[str, AttributeValue]) -> None:
        if is_internal(self.schema.table, item):
            return  # lease and run items: the backfill's own state, not user data
        self.heartbeat()
        super().process(item)


def _merge(total: BackfillCounts, part: BackfillCounts) -> None:
    for spec in fields(BackfillCounts):
        value = getattr(part, spec.name)
        if isinstance(value, int) and not isinstance(value, bool):
            setattr(total, spec.name, getattr(total, spec.name) + value)
    for entity, count in part.pending.items():
        total.pending[entity] = total.pending.get(entity, 0) + count


# -- the worker ----------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerOptions:
    """How one worker takes part in a shared backfill run.

    Workers that pass the same `run` to the same table share its segments. `lease_seconds`
    is how long a claim holds without renewal (renewed every third of it while working);
    after a crash, the segment waits that long for another worker. Clocks of the workers'
    machines must agree to well within it.
    """

    run: str
    worker: str = field(default_factory=default_worker_name)
    threads: int = 1
    lease_seconds: float = 60.0
    clock: Clock = time.time
    sleep: Sleep = time.sleep

    def __post_init__(self) -> None:
        partition_of(self.run)  # refuses a run id that is not a plain name, before any request
        if self.threads < 1 or not self.lease_seconds > 0:
            raise DefinitionError(
                f"migrate worker {self.worker!r}: threads ({self.threads}) and lease_seconds "
                f"({self.lease_seconds}) must be positive",
                value=(self.threads, self.lease_seconds),
            )


@dataclass
class _Worker:
    session: Session
    schema: CompiledSchema
    table_name: str
    info: RunInfo
    options: WorkerOptions
    page_size: int | None
    max_attempts: int
    progress: ProgressCallback | None
    limiter: TokenBucket | None = None
    counts: BackfillCounts = field(default_factory=BackfillCounts)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)
    random: random.Random = field(default_factory=random.Random)

    def now_ms(self) -> int:
        return int(self.options.clock() * 1000)

    def until_ms(self) -> int:
        return self.now_ms() + int(self.options.lease_seconds * 1000)

    def call(self, operation: str, request: dict[str, Any]) -> dict[str, Any]:
        return self.session._call(operation, request)

    def run_thread(self) -> None:
        while not self.stop.is_set():
            lease = self.next_lease()
            if lease is None:
                return
            try:
                self.work(lease)
            except _LeaseLost:
                continue

    def next_lease(self) -> Lease | None:
        """Claim a segment: an unclaimed one (at random, so workers rarely race), else one
        whose lease expired or was released; wait while all others are leased."""
        while not self.stop.is_set():
            leases = _read_leases(self.session, self.schema.table, self.table_name, self.info.run)
            now = self.now_ms()
            unclaimed = [s for s in range(self.info.total_segments) if s not in leases]
            self.random.shuffle(unclaimed)
            candidates: list[tuple[int, Lease | None]] = [(s, None) for s in unclaimed]
            candidates += [(s, lease) for s, lease in leases.items() if lease.claimable(now)]
            for segment, seen in candidates:
                request, lease = claim_request(
                    self.schema.table,
                    self.table_name,
                    self.info.run,
                    segment,
                    seen,
                    self.options.worker,
                    self.until_ms(),
                )
                try:
                    self.call("UpdateItem", request)
                except ConditionFailed:
                    continue  # another worker was quicker
                return lease
            busy = [lease.until_ms for lease in leases.values() if lease.state != "done"]
            if not candidates and not busy:
                return None  # every segment is done
            if busy and not candidates:
                delay = (min(busy) - now) / 1000 + 0.05
                self.options.sleep(min(max(delay, 0.05), self.options.lease_seconds))
        return None

    def work(self, lease: Lease) -> None:
        """Scan the segment from its saved position, checkpointing after every page."""
        held = _Held(self, lease)
        job = _SegmentJob(
            self.session,
            self.schema,
            self.table_name,
            Checkpoint(self.table_name, self.info.fingerprint, self.info.total_segments, {}, set()),
            False,
            self.page_size,
            self.max_attempts,
            None,
            pace=self.limiter.wait if self.limiter else None,
            heartbeat=held.renew_if_due,
        )
        try:
            while not self.stop.is_set():
                response = self.call("Scan", self.scan_request(lease.segment, held.lease.position))
                for item in response.get("Items", []):
                    job.process(item)
                position = response.get("LastEvaluatedKey")
                self.finish_page(held, job, position)
                if position is None:
                    return
            held.release()
        except BaseException:
            # A failed page (or Ctrl-C): hand the segment back if the table still answers;
            # if not (a crash), the lease expires and another worker resumes it.
            held.release(quietly=True)
            self.add(job.counts, report=False)
            raise

    def scan_request(self, segment: int, start: dict[str, Any] | None) -> dict[str, Any]:
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "Segment": segment,
            "TotalSegments": self.info.total_segments,
        }
        if self.page_size is not None:
            request["Limit"] = self.page_size
        if start is not None:
            request["ExclusiveStartKey"] = start
        return request

    def finish_page(self, held: _Held, job: _SegmentJob, position: dict[str, Any] | None) -> None:
        lease = held.lease
        held.lease = replace(
            lease,
            position=position,
            scanned=lease.scanned + job.counts.scanned,
            updated=lease.updated + job.counts.updated,
        )
        held.save(done=position is None)
        part, job.counts = job.counts, BackfillCounts()
        self.add(part)

    def add(self, part: BackfillCounts, *, report: bool = True) -> None:
        with self.lock:
            _merge(self.counts, part)
            if report and self.progress is not None:
                self.progress(self.counts)


@dataclass
class _Held:
    """The lease a thread holds, and when it last renewed it."""

    worker: _Worker
    lease: Lease
    renewed: float = field(init=False)

    def __post_init__(self) -> None:
        self.renewed = self.worker.options.clock()

    def renew_if_due(self) -> None:
        if self.worker.options.clock() - self.renewed >= self.worker.options.lease_seconds / 3:
            self.save()

    def save(self, *, done: bool = False) -> None:
        worker = self.worker
        now = worker.options.clock()
        request = checkpoint_request(
            worker.schema.table,
            worker.table_name,
            worker.info.run,
            self.lease,
            until_ms=worker.until_ms(),
            done=done,
        )
        try:
            worker.call("UpdateItem", request)
        except ConditionFailed as e:
            raise _LeaseLost(self.lease.segment) from e
        self.renewed = now

    def release(self, *, quietly: bool = False) -> None:
        worker = self.worker
        request = release_request(
            worker.schema.table, worker.table_name, worker.info.run, self.lease
        )
        try:
            worker.call("UpdateItem", request)
        except Exception:
            if not quietly:
                raise


def _read_leases(session: Session, table: Table, table_name: str, run: str) -> dict[int, Lease]:
    return {lease.segment: lease for lease in _read_run(session, table, table_name, run)[1]}


def _read_run(
    session: Session, table: Table, table_name: str, run: str
) -> tuple[RunInfo | None, list[Lease]]:
    request = status_query(table, table_name, run)
    info: RunInfo | None = None
    leases: list[Lease] = []
    for item in _pages(session, request):
        if item[table.sort_key]["S"] == RUN_SORT_KEY:
            info = run_from_item(run, item)
        else:
            leases.append(lease_from_item(item))
    return info, leases


def _pages(session: Session, request: dict[str, Any]) -> Iterator[dict[str, Any]]:
    while True:
        response = session._call("Query", request)
        yield from response.get("Items", [])
        start = response.get("LastEvaluatedKey")
        if start is None:
            return
        request = {**request, "ExclusiveStartKey": start}


def _join(session: Session, table: Table, table_name: str, info: RunInfo, now_ms: int) -> None:
    """Create the run item, or check that the existing run scans the same way."""
    try:
        session._call("PutItem", run_item_request(table, table_name, info, now_ms))
        return
    except ConditionFailed:
        pass
    found, _ = _read_run(session, table, table_name, info.run)
    if found != info:
        was = _describe_run(found)
        raise CheckpointMismatch(
            f"migrate run {info.run!r} was started {was}; this worker would scan "
            f"{_describe_run(info)}: start it with the run's --segments and schema, or give "
            "this scan another --run id",
            key=info.run,
        )


def _describe_run(info: RunInfo | None) -> str:
    if info is None:
        return "and removed meanwhile"
    return (
        f"on table {info.table} with {info.total_segments} segments and schema fingerprint "
        f"{info.fingerprint}"
    )


def backfill_across_workers(
    session: Session,
    table: Table,
    options: WorkerOptions,
    *,
    segments: int = 1,
    page_size: int | None = None,
    max_attempts: int = 5,
    progress: ProgressCallback | None = None,
    estimate: int | None = None,
    max_wcu: float | None = None,
) -> BackfillCounts:
    """Take part in the shared backfill run `options.run` until every segment is done.

    Returns what this worker scanned and wrote. `max_wcu` caps the write capacity units
    this worker's writes consume per second, over all its threads. Safe to start on any
    number of machines at once; a worker started after the run finished scans nothing and
    says so (`finished_before`).
    """
    schema = schema_of(table)
    name = session.table_name(table)
    info = RunInfo(options.run, name, schema_fingerprint(schema), segments)
    with pacing(session, max_wcu) as limiter:  # every write of the worker counts, its own too
        _join(session, table, name, info, int(options.clock() * 1000))
        worker = _Worker(
            session, schema, name, info, options, page_size, max_attempts, progress, limiter
        )
        worker.counts.estimate = estimate
        leases = _read_leases(session, table, name, options.run)
        worker.counts.finished_before = len(leases) == segments and all(
            lease.state == "done" for lease in leases.values()
        )
        _run_threads(worker, max(1, options.threads))
    return worker.counts


def _run_threads(worker: _Worker, threads: int) -> None:
    with ThreadPoolExecutor(threads) as pool:
        futures = [pool.submit(worker.run_thread) for _ in range(threads)]
        try:
            for future in futures:
                future.result()
        except BaseException:
            worker.stop.set()  # the other threads release their segments after this page
            raise


# -- status --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunStatus:
    """Where every segment of a run stands, as read from its lease items."""

    run: str
    info: RunInfo | None  # None: no worker has joined a run of this id on this table
    leases: Mapping[int, Lease]

    @property
    def finished(self) -> bool:
        total = self.info.total_segments if self.info else 0
        return total > 0 and all(
            s in self.leases and self.leases[s].state == "done" for s in range(total)
        )


def run_status(session: Session, table: Table, run: str) -> RunStatus:
    info, leases = _read_run(session, table, session.table_name(table), run)
    return RunStatus(run, info, {lease.segment: lease for lease in leases})


def _expiry(lease: Lease, now_ms: int) -> str:
    if lease.state == "done":
        return "-"
    if lease.state == "released" or lease.until_ms == 0:
        return "released"
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(lease.until_ms / 1000))
    seconds = round((lease.until_ms - now_ms) / 1000)
    return f"{stamp} (in {seconds}s)" if seconds >= 0 else f"{stamp} (expired {-seconds}s ago)"


def status_lines(status: RunStatus, now_ms: int) -> list[str]:
    """A table of the run's segments: state, owner, items scanned and updated, expiry."""
    if status.info is None:
        return [f"no migrate run {status.run!r} on this table (no worker has joined it)"]
    total = status.info.total_segments
    rows = [("SEGMENT", "STATE", "OWNER", "SCANNED", "UPDATED", "LEASE EXPIRES")]
    states: dict[str, int] = {}
    for segment in range(total):
        lease = status.leases.get(segment)
        state: str = lease.state if lease else "unclaimed"
        if lease is not None and lease.state == "leased" and lease.until_ms < now_ms:
            state = "expired"  # its worker stopped renewing: the next worker takes it over
        states[state] = states.get(state, 0) + 1
        if lease is None:
            rows.append((str(segment), state, "-", "0", "0", "-"))
            continue
        rows.append(
            (
                str(segment),
                state,
                lease.owner,
                str(lease.scanned),
                str(lease.updated),
                _expiry(lease, now_ms),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    scanned = sum(lease.scanned for lease in status.leases.values())
    updated = sum(lease.updated for lease in status.leases.values())
    summary = ", ".join(f"{n} {state}" for state, n in sorted(states.items()))
    return [
        f"run {status.run} on {status.info.table}: {total} segments, {summary}; "
        f"{scanned} items scanned, {updated} updated",
        *("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows),
    ]
