"""The `dynaorm` command.

`dynaorm schema module:table` prints access patterns or the table definition, and with
--lock writes the schema lock that freezes each index's GSI; `dynaorm diff module:table`
compares the schema with the lock and the live table; `dynaorm migrate module:table`
creates missing GSIs, enables TTL and backfills derived keys; `dynaorm iam module:table`
prints the least-privilege IAM policy for the table.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from dynaorm._backfill import BackfillCounts, ProgressCallback
from dynaorm._compiler import compile_table, schema_of
from dynaorm._ddl import (
    access_patterns,
    cloudformation_resource,
    create_table_request,
    index_drift,
    lock_drift,
    lock_entries,
)
from dynaorm._iam import Access, iam_policy
from dynaorm._lock import LockedIndex, read_lock, write_lock
from dynaorm._migrate import (
    MigrationReport,
    TableDiff,
    describe_live,
    diff_table,
    migrate,
)
from dynaorm._placement import LockConflict
from dynaorm._schema import Table
from dynaorm._workers import WorkerOptions, default_worker_name, run_status, status_lines
from dynaorm.errors import DynaormError, TableNotFound

if TYPE_CHECKING:
    from dynaorm._session import Session

__all__ = ["EXIT_PENDING", "diff_lines", "load_table", "main", "summary_lines"]

_COLUMNS = ("entity", "access", "index", "pk", "sk", "example")


def load_table(spec: str) -> Table:
    """Import `module:attribute` and return the `Table` it names."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise SystemExit(f"dynaorm: expected module:table (e.g. app.models:app), got {spec!r}")
    if "" not in sys.path:
        sys.path.insert(0, "")  # like `python -m`, resolve modules from the working directory
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise SystemExit(f"dynaorm: cannot import {module_name!r}: {e}") from e
    table = getattr(module, attribute, None)
    if not isinstance(table, Table):
        raise SystemExit(f"dynaorm: {spec!r} is not a dynaorm Table (got {type(table).__name__})")
    return table


def _render_table(rows: list[dict[str, str]]) -> str:
    widths = {c: max([len(c)] + [len(r[c]) for r in rows]) for c in _COLUMNS}
    lines = ["  ".join(c.upper().ljust(widths[c]) for c in _COLUMNS).rstrip()]
    lines.append("  ".join("-" * widths[c] for c in _COLUMNS))
    lines += ["  ".join(r[c].ljust(widths[c]) for c in _COLUMNS).rstrip() for r in rows]
    return "\n".join(lines)


def _schema_command(args: argparse.Namespace) -> str | tuple[str, int]:
    table = load_table(args.table)
    if args.lock is not None:
        return _write_lock(table, args.lock, force=args.force)
    schema = schema_of(table)
    name = args.table_name or table.name
    if args.format == "json":
        return json.dumps(access_patterns(schema), indent=2)
    if args.format == "cloudformation":
        return json.dumps(cloudformation_resource(schema, name), indent=2)
    if args.format == "create-table":
        return json.dumps(create_table_request(schema, name), indent=2)
    return _render_table(access_patterns(schema))


def _lock_path(table: Table, given: str | bool | None) -> Path | None:
    """The lock a command works on: the path given, else the one the table declares."""
    if isinstance(given, str):
        return Path(given)
    return table.lock


def _existing_lock(table: Table, path: Path) -> dict[str, LockedIndex]:
    return read_lock(path).get(table.name, {}) if path.exists() else {}


def _write_lock(table: Table, given: str | bool, *, force: bool) -> tuple[str, int]:
    path = _lock_path(table, given)
    if path is None:
        raise SystemExit(
            f"dynaorm: --lock needs a path (--lock dynaorm.lock.json) when Table "
            f"{table.name!r} declares no lock="
        )
    existing = _existing_lock(table, path)
    conflicts: list[LockConflict] = []
    schema = compile_table(table, lock=existing, conflicts=conflicts)
    changes = lock_drift(schema, existing)
    if conflicts and not force:
        return "\n".join(
            [
                *changes,
                f"{path} is unchanged: pass --force to move these indexes, then run "
                "`dynaorm migrate` to backfill their new GSIs",
            ]
        ), 1
    entries = lock_entries(schema)
    write_lock(path, table.name, entries)
    lines = [f"wrote {path}: {len(entries)} indexes of table {table.name}", *changes]
    if table.lock is None or table.lock.resolve() != path.resolve():
        lines.append(
            f"note: Table({table.name!r}) does not declare lock={str(path)!r}; the "
            "compiler honours a lock only when the table declares it"
        )
    return "\n".join(lines), 0


# -- diff and migrate --------------------------------------------------------------------

# Exit statuses of `diff` and `migrate`, after terraform's -detailed-exitcode: 0 means the
# table matches (or the migration finished), 1 an error, 2 work left to do.
EXIT_PENDING = 2
_IN_MEMORY_HINT = (
    "dynaorm: --in-memory starts an empty backend inside this process: a table created by "
    "another command or program is not there; use --endpoint-url (e.g. DynamoDB Local)"
)


def _session(args: argparse.Namespace) -> Session:
    options = {"region": args.region, "table_prefix": args.table_prefix}
    given = {name: value for name, value in options.items() if value is not None}
    from dynaorm._session import Session  # noqa: PLC0415 - `schema`/`iam` never send

    if args.in_memory:
        return Session.in_memory(**given)
    return Session(endpoint_url=args.endpoint_url, **given)


def diff_lines(diff: TableDiff) -> list[str]:
    """A readable diff: `+` migrate adds it, `!` it needs a hand, `-` it is left alone."""
    lines = [
        f"+ GSI {g.name} ({g.pk_attribute}, {g.sk_attribute}) is missing: migrate creates it"
        for g in diff.missing_gsis
    ]
    if diff.enable_ttl:
        lines.append(
            f"+ TTL on {diff.ttl_attribute!r} is {diff.live_ttl_status}: migrate enables it"
        )
    lines += [f"! {problem}" for problem in diff.conflicts]
    if diff.ttl_conflict:
        lines.append(f"! {diff.ttl_conflict}")
    lines += [f"- GSI {name} exists but the schema does not use it" for name in diff.extra_gsis]
    if diff.extra_ttl:
        lines.append(f"- TTL is on {diff.live_ttl_attribute!r}; the schema declares none")
    return lines or [f"table {diff.table} matches the schema"]


def summary_lines(report: MigrationReport) -> list[str]:
    """What a migration did, or with --dry-run would do."""
    verb = "would" if report.dry_run else "did"
    diff, counts = report.diff, report.backfill
    gsis = [g.name for g in diff.missing_gsis] if report.dry_run else report.created_gsis
    ttl = diff.enable_ttl if report.dry_run else report.ttl_enabled
    changed = ", ".join(f"{e} {n}" for e, n in sorted(counts.pending.items())) or "no items"
    return [
        f"table {diff.table}",
        f"  GSIs: {verb} create {', '.join(gsis) or 'none'}",
        f"  TTL: {verb} enable on {diff.ttl_attribute!r}" if ttl else "  TTL: no change",
        _backfill_line(report, verb, changed),
        f"    {counts.current} already current, {counts.skipped} of other types or unique "
        f"guards, {counts.invalid} not decodable, {counts.key_mismatch} with outdated "
        "primary keys",
        f"    {counts.retried} retries after concurrent writes, {counts.vanished} deleted "
        f"meanwhile, {counts.conflicts} still changing (run again)",
    ]


def _backfill_line(report: MigrationReport, verb: str, changed: str) -> str:
    counts = report.backfill
    if counts.finished_before and report.run is not None:
        return (
            f"  backfill: run {report.run} says the backfill finished: scanned none, {verb} "
            "update none; start another --run to scan again"
        )
    if counts.finished_before:
        return (
            f"  backfill: the checkpoint says the backfill finished: scanned none, {verb} "
            "update none; delete the checkpoint to scan again"
        )
    worker = " by this worker" if report.run is not None else ""
    return f"  backfill: {counts.scanned} items scanned{worker}, {verb} update {changed}"


def _diff_command(args: argparse.Namespace) -> tuple[str, int]:
    table = load_table(args.table)
    path = _lock_path(table, args.lock)
    lock = read_lock(path).get(table.name, {}) if path is not None else None
    # The placement the application gets: the rule and pins, plus the table's own lock
    # where it can be honoured (a contradicted entry shows up below rather than raising).
    schema = compile_table(table, conflicts=[])
    session = _session(args)
    with contextlib.closing(session.transport):
        live = describe_live(session, table)
    diff = diff_table(schema, live)
    placement = lock_drift(schema, lock) if lock is not None else []
    placement += index_drift(schema, live.description)
    if diff.in_sync and not placement:
        return "\n".join(diff_lines(diff)), 0
    lines = diff_lines(diff) if not diff.in_sync else []
    return "\n".join(lines + placement), EXIT_PENDING


def _worker_options(args: argparse.Namespace) -> WorkerOptions | None:
    """The options of a shared run (`--run`), after refusing combinations that mean nothing."""
    alone = [f"--{o}" for o in ("worker", "threads", "lease-seconds", "status")]
    given = [o for o in alone if getattr(args, o[2:].replace("-", "_")) not in (None, False)]
    if args.run is None:
        if given:
            raise SystemExit(f"dynaorm: {', '.join(given)} needs --run (the shared run's id)")
        return None
    for other in ("checkpoint", "dry_run"):
        if getattr(args, other):
            option = "--" + other.replace("_", "-")
            raise SystemExit(
                f"dynaorm: {option} and --run exclude each other: a shared run keeps its "
                "progress in the table, a dry run scans alone and saves nothing"
            )
    return WorkerOptions(
        run=args.run,
        worker=args.worker or default_worker_name(),
        threads=args.threads or 1,
        lease_seconds=args.lease_seconds or 60.0,
    )


def _status_command(session: Session, table: Table, run: str) -> tuple[str, int]:
    status = run_status(session, table, run)
    lines = status_lines(status, int(time.time() * 1000))
    return "\n".join(lines), 0 if status.finished else EXIT_PENDING


def _migrate_command(args: argparse.Namespace) -> tuple[str, int]:
    table = load_table(args.table)
    workers = _worker_options(args)
    session = _session(args)
    if args.status:
        with contextlib.closing(session.transport):
            return _status_command(session, table, args.run)
    with (
        contextlib.closing(session.transport),
        _progress(sys.stderr, enabled=not args.no_progress) as progress,
    ):
        try:
            report = migrate(
                session,
                table,
                dry_run=args.dry_run,
                on_step=lambda message: print(message, file=sys.stderr),
                checkpoint=args.checkpoint,
                segments=args.segments,
                page_size=args.page_size,
                max_attempts=args.max_attempts,
                progress=progress,
                workers=workers,
                max_wcu=args.max_wcu,
            )
        except KeyboardInterrupt:
            saved = f"; resume with --checkpoint {args.checkpoint}" if args.checkpoint else ""
            if workers is not None:
                saved = f"; segments handed back to run {workers.run}"
            return f"interrupted{saved}", 130
    return "\n".join(summary_lines(report)), 0 if report.complete else EXIT_PENDING


class _PlainProgress:
    """A line on stderr every few seconds, for logs and terminals without rich."""

    def __init__(self, stream: TextIO, interval: float = 5.0) -> None:
        self.stream = stream
        self.interval = interval
        self.last = time.monotonic()
        self.counts: BackfillCounts | None = None

    def __call__(self, counts: BackfillCounts) -> None:
        self.counts = counts
        if time.monotonic() - self.last >= self.interval:
            self.write()

    def write(self) -> None:
        self.last = time.monotonic()
        counts = self.counts
        if counts is not None:
            of = f" of about {counts.estimate}" if counts.estimate else ""
            changed = sum(counts.pending.values())
            print(
                f"backfill: {counts.scanned}{of} items scanned, {changed} to update or updated",
                file=self.stream,
                flush=True,
            )


@contextlib.contextmanager
def _progress(stream: TextIO, *, enabled: bool) -> Iterator[ProgressCallback | None]:
    """A rich progress bar on a terminal (the `cli` extra), else plain periodic lines."""
    if not enabled:
        yield None
        return
    if stream.isatty():
        try:
            from rich.console import Console  # noqa: PLC0415 - optional `cli` extra
        except ImportError:
            pass
        else:
            with _rich_progress(Console(file=stream)) as update:
                yield update
            return
    plain = _PlainProgress(stream)
    yield plain
    plain.write()


@contextlib.contextmanager
def _rich_progress(console: Any) -> Iterator[ProgressCallback]:
    from rich import progress as bars  # noqa: PLC0415 - optional `cli` extra

    columns = (
        bars.TextColumn("{task.description}"),
        bars.BarColumn(),
        bars.MofNCompleteColumn(),
        bars.TimeElapsedColumn(),
    )
    with bars.Progress(*columns, console=console) as bar:
        task = bar.add_task("backfill", total=None)

        def update(counts: BackfillCounts) -> None:
            total = max(counts.estimate, counts.scanned) if counts.estimate else None
            changed = sum(counts.pending.values())
            description = f"backfill, {changed} to update"
            bar.update(task, completed=counts.scanned, total=total, description=description)

        yield update


def _positive_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def _positive(text: str) -> int:
    value = int(text) if text.isdigit() else 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def _add_connection_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("connection (default: the usual AWS environment)")
    group.add_argument("--endpoint-url", help="a DynamoDB-API endpoint, e.g. DynamoDB Local")
    group.add_argument("--region", help="AWS region (default: AWS_REGION, then us-east-1)")
    group.add_argument("--table-prefix", help="physical name prefix (DYNAMODB_TABLE_PREFIX)")
    group.add_argument(
        "--in-memory",
        action="store_true",
        help="use the embedded in-process backend (moto; for tests that call main() only): "
        "it lives as long as the process, so from a shell every command starts with no tables",
    )


def _add_worker_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "workers (a backfill shared by processes on any machines, coordinated in the table)"
    )
    group.add_argument(
        "--run", help="join the shared backfill run of this id (letters, digits, _ . : -)"
    )
    group.add_argument("--worker", help="this worker's name (default: a unique id)")
    group.add_argument(
        "--threads", type=_positive, help="segments this worker scans at once (default 1)"
    )
    group.add_argument(
        "--lease-seconds",
        type=_positive_number,
        help="a claimed segment's lease; a crashed worker's segment waits this long (default 60)",
    )
    group.add_argument(
        "--status",
        action="store_true",
        help="print each segment's state, owner, counts and lease expiry, then exit",
    )


def _add_diff_and_migrate(commands: Any) -> None:
    diff = commands.add_parser(
        "diff",
        help="compare the schema with the live table (exit 2 on differences)",
    )
    diff.add_argument("table", help="the Table to compare, as module:attribute")
    diff.add_argument(
        "--lock", metavar="PATH", help="the schema lock to compare with (default: the table's)"
    )
    _add_connection_options(diff)
    diff.set_defaults(handler=_diff_command)
    run = commands.add_parser(
        "migrate",
        help="create missing GSIs, enable TTL and backfill derived key attributes",
    )
    run.add_argument("table", help="the Table to migrate, as module:attribute")
    run.add_argument("--dry-run", action="store_true", help="report what would change only")
    run.add_argument("--checkpoint", type=Path, help="save and resume scan progress here")
    run.add_argument("--segments", type=_positive, default=1, help="parallel scan segments")
    run.add_argument("--page-size", type=_positive, default=500, help="items per Scan page")
    run.add_argument(
        "--max-attempts", type=_positive, default=5, help="writes per item before giving up on it"
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bar or lines")
    run.add_argument(
        "--max-wcu",
        type=_positive_number,
        help="write capacity units per second the backfill may consume (per worker)",
    )
    _add_worker_options(run)
    _add_connection_options(run)
    run.set_defaults(handler=_migrate_command)


# -- iam ----------------------------------------------------------------------------------


def _iam_command(args: argparse.Namespace) -> str:
    access: Access = "admin" if args.admin else "read-only" if args.read_only else "read-write"
    policy = iam_policy(
        load_table(args.table),
        access=access,
        region=args.region,
        account=args.account,
        partition=args.partition,
        table_prefix=args.table_prefix,
        tenant_slot=args.tenant_slot,
        tenant_tag=args.tenant_tag,
    )
    return json.dumps(policy, indent=2)


def _add_iam(commands: Any) -> None:
    iam = commands.add_parser(
        "iam",
        help="print the least-privilege IAM policy (JSON) for a table's declared access",
    )
    iam.add_argument("table", help="the Table to grant access to, as module:attribute")
    role = iam.add_mutually_exclusive_group()
    role.add_argument("--read-only", action="store_true", help="gets, queries and scans only")
    role.add_argument(
        "--admin",
        action="store_true",
        help="what create_table, diff and migrate need, instead of the runtime policy",
    )
    iam.add_argument("--region", default="*", help="region in the ARNs (default: *)")
    iam.add_argument("--account", default="*", help="account id in the ARNs (default: *)")
    iam.add_argument("--partition", default="aws", help="ARN partition (default: aws)")
    iam.add_argument("--table-prefix", help="physical name prefix (default: DYNAMODB_TABLE_PREFIX)")
    iam.add_argument(
        "--tenant-slot",
        help="scope items to partitions whose leading slot equals a principal tag",
    )
    iam.add_argument(
        "--tenant-tag",
        help="the principal tag holding the encoded tenant (default: the slot's name)",
    )
    iam.set_defaults(handler=_iam_command)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dynaorm", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    schema = commands.add_parser("schema", help="print a table's access patterns or definition")
    schema.add_argument("table", help="the Table to compile, as module:attribute")
    schema.add_argument(
        "--format",
        choices=("table", "json", "cloudformation", "create-table"),
        default="table",
        help="access-pattern table (default), its JSON, or the table definition",
    )
    schema.add_argument("--table-name", help="physical table name (default: the declared name)")
    schema.add_argument(
        "--lock",
        nargs="?",
        const=True,
        metavar="PATH",
        help="write the schema lock (default path: the table's lock=) instead of printing",
    )
    schema.add_argument(
        "--force",
        action="store_true",
        help="with --lock: accept indexes whose declarations moved them off their locked GSI",
    )
    schema.set_defaults(handler=_schema_command)
    _add_diff_and_migrate(commands)
    _add_iam(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `dynaorm` console script."""
    args = _parser().parse_args(argv)
    try:
        result = args.handler(args)
    except DynaormError as e:
        print(f"dynaorm: {e}", file=sys.stderr)
        if isinstance(e, TableNotFound) and getattr(args, "in_memory", False):
            print(_IN_MEMORY_HINT, file=sys.stderr)
        return 1
    output, status = (result, 0) if isinstance(result, str) else result
    print(output)
    return int(status)


if __name__ == "__main__":  # pragma: no cover - exercised through the console script
    raise SystemExit(main())
