"""Evolve a live table towards its compiled schema: diff, new GSIs, TTL, key backfill.

Planning is pure (`diff_table`, `gsi_create_request`); `migrate` sends the requests
through a `Session`, one GSI creation at a time, and then runs `dynaorm._backfill`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path as FilePath
from typing import TYPE_CHECKING, Any

from dynaorm._backfill import BackfillCounts, ProgressCallback, backfill
from dynaorm._compiler import CompiledSchema, Gsi, schema_of
from dynaorm._ddl import create_table_request, describe_drift, time_to_live_request
from dynaorm._schema import Table
from dynaorm._workers import WorkerOptions, backfill_across_workers
from dynaorm.errors import MigrationError, RequestError

if TYPE_CHECKING:
    from dynaorm._session import Session

__all__ = [
    "LiveTable",
    "MigrationReport",
    "TableDiff",
    "describe_live",
    "diff_table",
    "gsi_create_request",
    "migrate",
    "wait_until_active",
]

_ACTIVE_TTL = ("ENABLED", "ENABLING")


# -- the live table and how it differs ---------------------------------------------------


@dataclass(frozen=True)
class LiveTable:
    """What `DescribeTable` and `DescribeTimeToLive` say about the physical table."""

    name: str
    description: Mapping[str, Any]
    ttl: Mapping[str, Any]

    @property
    def billing_mode(self) -> str:
        # Tables that were never switched to on-demand may carry no BillingModeSummary.
        summary = self.description.get("BillingModeSummary") or {}
        return str(summary.get("BillingMode", "PROVISIONED"))

    @property
    def item_count(self) -> int | None:
        """DynamoDB's item count (refreshed about every six hours): a progress estimate."""
        count = self.description.get("ItemCount")
        return int(count) if count else None


def describe_live(session: Session, table: Table) -> LiveTable:
    """Read the physical table's description and TTL status."""
    name = session.table_name(table)
    description = session._call("DescribeTable", {"TableName": name})["Table"]
    return LiveTable(name, description, _describe_ttl(session, name))


def _describe_ttl(session: Session, name: str) -> Mapping[str, Any]:
    response = session._call("DescribeTimeToLive", {"TableName": name})
    description: Mapping[str, Any] = response.get("TimeToLiveDescription", {})
    return description


@dataclass(frozen=True)
class TableDiff:
    """The compiled schema against the live table, sorted by what `migrate` does about it."""

    table: str
    missing_gsis: tuple[Gsi, ...]  # migrate creates these
    conflicts: tuple[str, ...]  # key schema / GSI key or projection: changed by hand only
    extra_gsis: tuple[str, ...]  # live GSIs the schema does not use: left alone
    ttl_attribute: str | None  # declared with Table(ttl=...)
    live_ttl_status: str
    live_ttl_attribute: str | None

    @property
    def enable_ttl(self) -> bool:
        """The schema declares TTL and the live table has none (migrate turns it on)."""
        return self.ttl_attribute is not None and self.live_ttl_status not in _ACTIVE_TTL

    @property
    def ttl_conflict(self) -> str | None:
        if self.ttl_attribute is None or self.live_ttl_status not in _ACTIVE_TTL:
            return None
        if self.live_ttl_attribute == self.ttl_attribute:
            return None
        return (
            f"TTL is on {self.live_ttl_attribute!r}, the schema declares "
            f"{self.ttl_attribute!r} (DynamoDB must disable TTL before changing it)"
        )

    @property
    def extra_ttl(self) -> bool:
        """The live table expires items but the schema declares no TTL (left alone)."""
        return self.ttl_attribute is None and self.live_ttl_status in _ACTIVE_TTL

    @property
    def in_sync(self) -> bool:
        return not (
            self.missing_gsis
            or self.conflicts
            or self.extra_gsis
            or self.enable_ttl
            or self.ttl_conflict
            or self.extra_ttl
        )


def _gsi_definitions(schema: CompiledSchema, name: str) -> dict[str, dict[str, Any]]:
    request = create_table_request(schema, name)
    return {g["IndexName"]: g for g in request.get("GlobalSecondaryIndexes", [])}


def diff_table(schema: CompiledSchema, live: LiveTable) -> TableDiff:
    """Compare without I/O. Conflicts come from `describe_drift`, run on the live
    description with the missing GSIs filled in as wanted and the extra ones left out,
    so that only real differences of existing things remain."""
    present = {g["IndexName"]: g for g in live.description.get("GlobalSecondaryIndexes", [])}
    wanted = {g.name for g in schema.gsis}
    missing = tuple(g for g in schema.gsis if g.name not in present)
    definitions = _gsi_definitions(schema, live.name)
    comparable = dict(live.description)
    comparable["GlobalSecondaryIndexes"] = [
        present.get(name) or definitions[name] for name in sorted(wanted)
    ]
    return TableDiff(
        table=live.name,
        missing_gsis=missing,
        conflicts=tuple(describe_drift(schema, comparable)),
        extra_gsis=tuple(sorted(set(present) - wanted)),
        ttl_attribute=schema.table.ttl,
        live_ttl_status=str(live.ttl.get("TimeToLiveStatus", "DISABLED")),
        live_ttl_attribute=live.ttl.get("AttributeName"),
    )


def gsi_create_request(schema: CompiledSchema, gsi: Gsi, live: LiveTable) -> dict[str, Any]:
    """UpdateTable parameters creating one GSI (DynamoDB takes one creation per call)."""
    definition = dict(_gsi_definitions(schema, live.name)[gsi.name])
    definition.pop("ProvisionedThroughput", None)
    if live.billing_mode == "PROVISIONED":
        table = schema.table
        current = live.description.get("ProvisionedThroughput", {})
        definition["ProvisionedThroughput"] = {
            "ReadCapacityUnits": table.read_capacity or current.get("ReadCapacityUnits", 1),
            "WriteCapacityUnits": table.write_capacity or current.get("WriteCapacityUnits", 1),
        }
    attributes = list(live.description.get("AttributeDefinitions", []))
    known = {a["AttributeName"] for a in attributes}
    for name in (gsi.pk_attribute, gsi.sk_attribute):
        if name not in known:
            attributes.append({"AttributeName": name, "AttributeType": "S"})
    return {
        "TableName": live.name,
        "AttributeDefinitions": attributes,
        "GlobalSecondaryIndexUpdates": [{"Create": definition}],
    }


# -- the whole migration -------------------------------------------------------------------


@dataclass
class MigrationReport:
    """What a migration found and did (or, with `dry_run`, would do)."""

    diff: TableDiff
    dry_run: bool
    created_gsis: list[str] = field(default_factory=list)
    ttl_enabled: bool = False
    backfill: BackfillCounts = field(default_factory=BackfillCounts)
    run: str | None = None  # the shared run this process took part in as a worker

    @property
    def complete(self) -> bool:
        """Nothing was left over: no item kept changing under the backfill."""
        return self.backfill.conflicts == 0


def wait_until_active(session: Session, name: str, *, timeout: float = 1800.0) -> None:
    """Wait until the table and every GSI are ACTIVE (a GSI backfill can take long)."""
    session._wait_until_active(name, timeout=timeout, interval=1.0)


def _change_table(
    session: Session,
    schema: CompiledSchema,
    live: LiveTable,
    report: MigrationReport,
    say: Callable[[str], None],
) -> None:
    """Create the missing GSIs, one UpdateTable each, then enable TTL if it is missing.

    Workers of a shared run each start here: a request that fails because another
    worker made the same change first is not an error (see `_made_meanwhile`).
    """
    diff = report.diff
    for gsi in diff.missing_gsis:
        say(f"creating GSI {gsi.name} on {live.name} and waiting until it is ACTIVE")
        wait_until_active(session, live.name)
        if _made_meanwhile(session, "UpdateTable", gsi_create_request(schema, gsi, live)):
            say(f"GSI {gsi.name} was created meanwhile (by another worker)")
        else:
            report.created_gsis.append(gsi.name)
        wait_until_active(session, live.name)
    ttl = time_to_live_request(schema, live.name)
    if diff.enable_ttl and ttl is not None:
        say(f"enabling TTL on {diff.ttl_attribute!r}")
        if _made_meanwhile(session, "UpdateTimeToLive", ttl):
            say(f"TTL on {diff.ttl_attribute!r} was enabled meanwhile (by another worker)")
        else:
            report.ttl_enabled = True


def _made_meanwhile(session: Session, operation: str, request: dict[str, Any]) -> bool:
    """Send a table change; if DynamoDB refuses it, True when the live table now has what
    it asked for (another process made the change first), else the error is raised."""
    try:
        session._call(operation, request)
    except RequestError:
        if not _has_change(session, operation, request):
            raise
        return True
    return False


def _has_change(session: Session, operation: str, request: dict[str, Any]) -> bool:
    name = request["TableName"]
    if operation == "UpdateTimeToLive":
        found = _describe_ttl(session, name)
        wanted = request["TimeToLiveSpecification"]["AttributeName"]
        return bool(
            found.get("TimeToLiveStatus") in _ACTIVE_TTL and found.get("AttributeName") == wanted
        )
    wanted = request["GlobalSecondaryIndexUpdates"][0]["Create"]["IndexName"]
    description = session._call("DescribeTable", {"TableName": name})["Table"]
    return wanted in {g["IndexName"] for g in description.get("GlobalSecondaryIndexes", [])}


def migrate(
    session: Session,
    table: Table,
    *,
    dry_run: bool = False,
    on_step: Callable[[str], None] | None = None,
    checkpoint: FilePath | None = None,
    segments: int = 1,
    page_size: int | None = None,
    max_attempts: int = 5,
    progress: ProgressCallback | None = None,
    workers: WorkerOptions | None = None,
    max_wcu: float | None = None,
) -> MigrationReport:
    """Create missing GSIs one at a time, enable TTL, then backfill derived keys.

    Refuses (`MigrationError`) when something exists in a shape it cannot change: the
    primary key, a GSI's keys or projection, the TTL attribute. Never deletes anything.
    The keyword options after `on_step` are `backfill`'s; with `workers`, this process is
    one worker of a backfill shared through lease items (`backfill_across_workers`),
    and `checkpoint` and `dry_run` do not apply to the backfill.
    """
    say = on_step or (lambda _message: None)
    schema = schema_of(table)
    live = describe_live(session, table)
    diff = diff_table(schema, live)
    refused = [*diff.conflicts, *([diff.ttl_conflict] if diff.ttl_conflict else [])]
    if refused:
        raise MigrationError(
            f"table {live.name} differs from the schema in ways migrate does not change: "
            + "; ".join(refused)
        )
    report = MigrationReport(diff, dry_run)
    if not dry_run:
        _change_table(session, schema, live, report, say)
    say(f"{'checking' if dry_run else 'backfilling'} derived keys of {live.name}")
    if workers is not None and not dry_run:
        say(f"worker {workers.worker} joins run {workers.run} ({segments} segments)")
        report.run = workers.run
        report.backfill = backfill_across_workers(
            session,
            table,
            workers,
            segments=segments,
            page_size=page_size,
            max_attempts=max_attempts,
            progress=progress,
            estimate=live.item_count,
            max_wcu=max_wcu,
        )
        return report
    report.backfill = backfill(
        session,
        table,
        dry_run=dry_run,
        checkpoint=checkpoint,
        segments=segments,
        page_size=page_size,
        max_attempts=max_attempts,
        progress=progress,
        estimate=live.item_count,
        max_wcu=max_wcu,
    )
    return report
