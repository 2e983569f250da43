"""The `dynaorm` command: `dynaorm schema module:table [--format ...]`."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence

from dynaorm._compiler import schema_of
from dynaorm._ddl import access_patterns, cloudformation_resource, create_table_request
from dynaorm._schema import Table
from dynaorm.errors import DynaormError

__all__ = ["load_table", "main"]

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


def _schema_command(args: argparse.Namespace) -> str:
    table = load_table(args.table)
    schema = schema_of(table)
    name = args.table_name or table.name
    if args.format == "json":
        return json.dumps(access_patterns(schema), indent=2)
    if args.format == "cloudformation":
        return json.dumps(cloudformation_resource(schema, name), indent=2)
    if args.format == "create-table":
        return json.dumps(create_table_request(schema, name), indent=2)
    return _render_table(access_patterns(schema))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dynaorm", description=__doc__)
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
    schema.set_defaults(handler=_schema_command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `dynaorm` console script."""
    args = _parser().parse_args(argv)
    try:
        output = args.handler(args)
    except DynaormError as e:
        print(f"dynaorm: {e}", file=sys.stderr)
        return 1
    print(output)
    return 0


if __name__ == "__main__":  # pragma: no cover - exercised through the console script
    raise SystemExit(main())
