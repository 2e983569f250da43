"""Backfill of derived GSI key attributes: pure per-item planning, then a resumable scan.

`plan_item` computes, as a write of the item's entity would, the GSI key attributes an
item should carry; `backfill` scans the table and writes only the differences, each with
a condition that the fields they are computed from still hold the values read, so a
concurrent writer is never overwritten. Progress is saved per scan segment and page.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path as FilePath
from typing import TYPE_CHECKING, Any, Literal

from pydantic import ValidationError

from dynaorm._codec import AttributeValue
from dynaorm._compiler import (
    CompiledEntity,
    CompiledIndex,
    CompiledSchema,
    index_attributes,
    schema_of,
)
from dynaorm._conditions import Comparison, Value, and_, build_condition
from dynaorm._expressions import Path, Placeholders
from dynaorm._items import entity_from_item, item_type
from dynaorm._planner import stored_values_condition
from dynaorm._ratelimit import pacing
from dynaorm._schema import Table
from dynaorm.errors import CheckpointMismatch, ConditionFailed, DynaormError

if TYPE_CHECKING:
    from dynaorm._session import Session

__all__ = [
    "BackfillCounts",
    "Checkpoint",
    "ItemPlan",
    "ProgressCallback",
    "backfill",
    "plan_item",
    "schema_fingerprint",
    "update_request",
]

Outcome = Literal["skipped", "invalid", "key_mismatch", "current", "pending"]
ProgressCallback = Callable[["BackfillCounts"], None]


# -- backfill planning (pure) -------------------------------------------------------------


@dataclass(frozen=True)
class ItemPlan:
    """What the backfill does with one stored item."""

    outcome: Outcome
    entity: str | None = None
    set: Mapping[str, str] = field(default_factory=dict)
    remove: tuple[str, ...] = ()
    # The stored values (None: absent) of the fields the derived keys are computed from.
    sources: Mapping[str, AttributeValue | None] = field(default_factory=dict)


def _managed(schema: CompiledSchema, compiled: CompiledEntity) -> list[str]:
    """The GSI key attributes dynaorm owns on this entity's items."""
    own = set(compiled.info.attributes.values())
    return [
        attribute
        for gsi in schema.gsis
        for attribute in (gsi.pk_attribute, gsi.sk_attribute)
        if attribute not in own
    ]


def plan_item(schema: CompiledSchema, item: Mapping[str, AttributeValue]) -> ItemPlan:
    """The derived-key changes one item needs, computed as a write of its entity would."""
    table = schema.table
    name = item_type(table, item)
    compiled = schema.entities.get(name) if name is not None else None
    if compiled is None:  # another service's item, a unique guard, an untyped item
        return ItemPlan("skipped")
    info = compiled.info
    try:
        entity = entity_from_item(schema, item)
        values = {field_name: getattr(entity, field_name) for field_name in info.paths}
        keys = (info.pk.encode(values), info.sk.encode(values))
        expected: dict[str, str] = {}
        for placed in compiled.indexes.values():
            expected.update(index_attributes(placed, values))
    except (ValidationError, DynaormError):
        return ItemPlan("invalid", info.name)
    stored = (item.get(table.partition_key), item.get(table.sort_key))
    if stored != ({"S": keys[0]}, {"S": keys[1]}):
        return ItemPlan("key_mismatch", info.name)  # keys are immutable: not ours to move
    to_set = {a: v for a, v in expected.items() if item.get(a) != {"S": v}}
    to_remove = tuple(a for a in _managed(schema, compiled) if a not in expected and a in item)
    if not to_set and not to_remove:
        return ItemPlan("current", info.name)
    sources = {
        info.attributes[f]: item.get(info.attributes[f])
        for placed in compiled.indexes.values()
        for f in placed.index.fields
    }
    return ItemPlan("pending", info.name, to_set, to_remove, sources)


def update_request(
    schema: CompiledSchema, table_name: str, key: Mapping[str, Any], plan: ItemPlan
) -> dict[str, Any]:
    """A conditional UpdateItem writing only the derived attributes of `plan`.

    The condition holds only while the item exists with the same type and the same
    stored source values that were read: any concurrent change to them fails the write.
    """
    table = schema.table
    ph = Placeholders()
    clauses = []
    if plan.set:
        pairs = (f"{ph.name(a)} = {ph.value({'S': v})}" for a, v in sorted(plan.set.items()))
        clauses.append("SET " + ", ".join(pairs))
    if plan.remove:
        clauses.append("REMOVE " + ", ".join(ph.name(a) for a in plan.remove))
    sources = {Path(attribute): value for attribute, value in sorted(plan.sources.items())}
    condition = and_(
        Comparison(Path(table.type_attribute), "=", Value({"S": str(plan.entity)})),
        stored_values_condition(sources),
    )
    assert condition is not None
    request = {
        "TableName": table_name,
        "Key": dict(key),
        "UpdateExpression": " ".join(clauses),
        "ConditionExpression": build_condition(condition, ph),
    }
    request.update(ph.to_request())
    return request


# -- checkpoints ---------------------------------------------------------------------------


def _sort_source(placed: CompiledIndex) -> str:
    side = placed.sort_side
    return side if isinstance(side, str) else side.source


def schema_fingerprint(schema: CompiledSchema) -> str:
    """Changes when any derived GSI key would be computed differently."""
    parts = sorted(
        f"{name}:{placed.gsi}:{placed.index.pk.source}:{_sort_source(placed)}"
        for name, compiled in schema.entities.items()
        for placed in compiled.indexes.values()
    )
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


@dataclass
class Checkpoint:
    """Where each scan segment stands; saved after every page so a run can resume."""

    table: str
    fingerprint: str
    total_segments: int
    # segment -> the ExclusiveStartKey to resume from (None: from the start)
    positions: dict[int, dict[str, Any] | None]
    done: set[int]
    path: FilePath | None = None

    @classmethod
    def load_or_new(
        cls, path: FilePath | None, table: str, fingerprint: str, total_segments: int
    ) -> Checkpoint:
        fresh = cls(table, fingerprint, total_segments, {}, set(), path)
        if path is None or not path.exists():
            return fresh
        data = json.loads(path.read_text(encoding="utf-8"))
        found = (data.get("table"), data.get("fingerprint"), data.get("total_segments"))
        if found != (table, fingerprint, total_segments):
            raise CheckpointMismatch(
                f"checkpoint {str(path)!r} belongs to another run (table, schema or "
                f"segment count {found}, this run {(table, fingerprint, total_segments)}); "
                "delete it to start over"
            )
        positions = {int(s): key for s, key in data["positions"].items()}
        return cls(table, fingerprint, total_segments, positions, set(data["done"]), path)

    def record(self, segment: int, next_key: dict[str, Any] | None) -> None:
        if next_key is None:
            self.done.add(segment)
        self.positions[segment] = next_key
        self.save()

    def save(self) -> None:
        if self.path is None:
            return
        data = {
            "table": self.table,
            "fingerprint": self.fingerprint,
            "total_segments": self.total_segments,
            "positions": {str(s): key for s, key in sorted(self.positions.items())},
            "done": sorted(self.done),
        }
        # Write aside and rename: an interrupted save never leaves a torn checkpoint.
        temporary = self.path.with_name(self.path.name + ".tmp")
        temporary.write_text(json.dumps(data, indent=1), encoding="utf-8")
        os.replace(temporary, self.path)


# -- backfill execution -------------------------------------------------------------------


@dataclass
class BackfillCounts:
    """What the backfill saw and did; `pending` per entity counts items changed (or, in a
    dry run, to change)."""

    scanned: int = 0
    skipped: int = 0
    invalid: int = 0
    key_mismatch: int = 0
    current: int = 0
    updated: int = 0
    retried: int = 0
    vanished: int = 0
    conflicts: int = 0
    pending: dict[str, int] = field(default_factory=dict)
    estimate: int | None = None
    # The checkpoint (or shared run) said every segment was done before this run began.
    finished_before: bool = False


@dataclass
class _Backfill:
    session: Session
    schema: CompiledSchema
    table_name: str
    checkpoint: Checkpoint
    dry_run: bool
    page_size: int | None
    max_attempts: int
    progress: ProgressCallback | None
    counts: BackfillCounts = field(default_factory=BackfillCounts)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)
    pace: Callable[[], None] | None = None  # waits for write capacity (`--max-wcu`)

    def run_segment(self, segment: int) -> None:
        start = self.checkpoint.positions.get(segment)
        while not self.stop.is_set():
            request: dict[str, Any] = {"TableName": self.table_name}
            if self.checkpoint.total_segments > 1:
                request.update(Segment=segment, TotalSegments=self.checkpoint.total_segments)
            if self.page_size is not None:
                request["Limit"] = self.page_size
            if start is not None:
                request["ExclusiveStartKey"] = start
            response = self.session._call("Scan", request)
            for item in response.get("Items", []):
                self.process(item)
            start = response.get("LastEvaluatedKey")
            with self.lock:
                if not self.dry_run:
                    self.checkpoint.record(segment, start)
                if self.progress is not None:
                    self.progress(self.counts)
            if start is None:
                return

    def process(self, item: Mapping[str, AttributeValue]) -> None:
        plan = plan_item(self.schema, item)
        outcome: str = plan.outcome
        if plan.outcome == "pending" and not self.dry_run:
            outcome = self.write(item, plan)
        with self.lock:
            counts = self.counts
            counts.scanned += 1
            if outcome in ("pending", "updated") and plan.entity is not None:
                counts.pending[plan.entity] = counts.pending.get(plan.entity, 0) + 1
            if outcome != "pending":
                setattr(counts, outcome, getattr(counts, outcome) + 1)

    def write(self, item: Mapping[str, AttributeValue], plan: ItemPlan) -> str:
        """Send the conditional update; on a failed condition re-read and re-plan."""
        table = self.schema.table
        key = {a: item[a] for a in (table.partition_key, table.sort_key)}
        for attempt in range(self.max_attempts):
            if self.pace is not None:
                self.pace()
            if attempt:
                with self.lock:
                    self.counts.retried += 1
            request = update_request(self.schema, self.table_name, key, plan)
            try:
                self.session._call("UpdateItem", request, entity=plan.entity, key=key)
                return "updated"
            except ConditionFailed:
                fresh = self.session._call(
                    "GetItem", {"TableName": self.table_name, "Key": key, "ConsistentRead": True}
                ).get("Item")
                if fresh is None:
                    return "vanished"
                plan = plan_item(self.schema, fresh)
                if plan.outcome != "pending":
                    return plan.outcome  # the other writer left it current (or unreadable)
        return "conflicts"


def backfill(
    session: Session,
    table: Table,
    *,
    dry_run: bool = False,
    checkpoint: FilePath | None = None,
    segments: int = 1,
    page_size: int | None = None,
    max_attempts: int = 5,
    progress: ProgressCallback | None = None,
    estimate: int | None = None,
    max_wcu: float | None = None,
) -> BackfillCounts:
    """Scan the table and write every item's missing or stale derived GSI keys.

    Idempotent: items already right are only read. With `checkpoint`, each segment's
    position is saved after every page and a later run resumes there (a dry run neither
    reads nor writes the checkpoint). `max_wcu` caps the write capacity units consumed
    per second by the session's writes.
    """
    schema = schema_of(table)
    name = session.table_name(table)
    state = Checkpoint.load_or_new(
        None if dry_run else checkpoint, name, schema_fingerprint(schema), segments
    )
    job = _Backfill(session, schema, name, state, dry_run, page_size, max_attempts, progress)
    job.counts.estimate = estimate
    todo = [s for s in range(segments) if s not in state.done]
    job.counts.finished_before = not todo
    with (
        pacing(session, max_wcu) as bucket,
        ThreadPoolExecutor(max_workers=max(1, min(len(todo), 16))) as pool,
    ):
        job.pace = bucket.wait if bucket is not None else None
        futures = [pool.submit(job.run_segment, s) for s in todo]
        try:
            for future in futures:
                future.result()
        except BaseException:
            # Ctrl-C or a failed segment: the others stop after their current page, so
            # the checkpoint holds a consistent position for every segment.
            job.stop.set()
            raise
    return job.counts
