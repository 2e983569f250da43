"""The schema lock: a committed JSON file freezing which GSI every index lives on.

One file may hold several tables, keyed by their declared names:

```json
{
  "dynaorm_schema_lock": 1,
  "tables": {
    "blog": {
      "Post.by_post": {"gsi": "GSI1", "pk": "GSI1PK", "sk": "GSI1SK", "projection": "ALL"}
    }
  }
}
```

`Table(..., lock=path)` makes the compiler honour the file; `dynaorm schema --lock` writes
it. Reading and writing are here; applying the entries is `dynaorm._placement`'s job.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dynaorm._schema import Projection, Table
from dynaorm.errors import SchemaLockError

__all__ = [
    "LOCK_VERSION",
    "LockedIndex",
    "lock_entry",
    "read_lock",
    "table_lock",
    "write_lock",
]

LOCK_VERSION = 1
_MARKER = "dynaorm_schema_lock"


@dataclass(frozen=True)
class LockedIndex:
    """Where the lock puts one index: its GSI, key attribute names and projection."""

    gsi: str
    pk_attribute: str
    sk_attribute: str
    projection: Projection

    def describe(self) -> str:
        return f"{self.gsi} ({self.pk_attribute}, {self.sk_attribute}, {_show(self.projection)})"


def _show(projection: Projection) -> str:
    return f"INCLUDE {list(projection)}" if isinstance(projection, tuple) else projection


def lock_entry(
    gsi: str, pk_attribute: str, sk_attribute: str, projection: Projection
) -> dict[str, Any]:
    """One index's JSON entry."""
    shown: Any = list(projection) if isinstance(projection, tuple) else projection
    return {"gsi": gsi, "pk": pk_attribute, "sk": sk_attribute, "projection": shown}


def _parse_entry(path: Path, table: str, name: str, raw: Any) -> LockedIndex:
    fields = ("gsi", "pk", "sk", "projection")
    if not isinstance(raw, dict) or set(raw) != set(fields):
        raise SchemaLockError(
            f"schema lock {path}: table {table!r} index {name!r} must be an object with "
            f"exactly {list(fields)}, got {raw!r}",
            field=name,
            value=raw,
        )
    projection = raw["projection"]
    if isinstance(projection, list) and all(isinstance(a, str) and a for a in projection):
        projection = tuple(projection)
    elif projection not in ("ALL", "KEYS_ONLY"):
        raise SchemaLockError(
            f"schema lock {path}: {table!r} {name!r} has projection {projection!r}; expected "
            "'ALL', 'KEYS_ONLY' or a list of attribute names",
            field=name,
            value=projection,
        )
    if not all(isinstance(raw[k], str) and raw[k] for k in ("gsi", "pk", "sk")):
        raise SchemaLockError(
            f"schema lock {path}: {table!r} {name!r} needs non-empty strings for gsi, pk, sk",
            field=name,
            value=raw,
        )
    return LockedIndex(raw["gsi"], raw["pk"], raw["sk"], projection)


def read_lock(path: str | os.PathLike[str]) -> dict[str, dict[str, LockedIndex]]:
    """Every table's entries in a lock file: table name -> "Entity.index" -> placement."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise SchemaLockError(
            f"schema lock {path} does not exist; write it with `dynaorm schema "
            "module:table --lock`",
            value=str(path),
        ) from e
    except (OSError, ValueError) as e:
        raise SchemaLockError(f"schema lock {path} cannot be read: {e}", value=str(path)) from e
    if not isinstance(data, dict) or data.get(_MARKER) != LOCK_VERSION:
        raise SchemaLockError(
            f"schema lock {path} is not a version {LOCK_VERSION} dynaorm schema lock "
            f"(expected a JSON object with {_MARKER!r}: {LOCK_VERSION})",
            value=str(path),
        )
    tables = data.get("tables")
    if not isinstance(tables, dict) or not all(isinstance(t, dict) for t in tables.values()):
        raise SchemaLockError(f"schema lock {path}: 'tables' must map names to objects")
    return {
        table: {name: _parse_entry(path, table, name, raw) for name, raw in entries.items()}
        for table, entries in tables.items()
    }


def table_lock(table: Table) -> Mapping[str, LockedIndex] | None:
    """The entries `table` declares with `lock=`; None when it declares no lock.

    A declared lock that is missing, unreadable or has no entry for the table is an error:
    compiling without it would place indexes by the rule alone, which the user opted out of.
    """
    if table.lock is None:
        return None
    tables = read_lock(table.lock)
    if table.name not in tables:
        raise SchemaLockError(
            f"schema lock {table.lock} has no entry for table {table.name!r}; write it with "
            "`dynaorm schema module:table --lock`",
            value=str(table.lock),
        )
    return tables[table.name]


def write_lock(path: str | os.PathLike[str], table: str, entries: Mapping[str, Any]) -> None:
    """Write `table`'s entries into the lock at `path`, keeping other tables' entries."""
    path = Path(path)
    tables: dict[str, Any] = {}
    if path.exists():
        read_lock(path)  # refuse to overwrite a file that is not a lock
        tables = json.loads(path.read_text(encoding="utf-8"))["tables"]
    tables[table] = {name: entries[name] for name in sorted(entries)}
    document = {_MARKER: LOCK_VERSION, "tables": {name: tables[name] for name in sorted(tables)}}
    text = json.dumps(document, indent=2) + "\n"
    partial = path.with_name(path.name + ".tmp")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)  # atomic: a crash never leaves half a lock behind
