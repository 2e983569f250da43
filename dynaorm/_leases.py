"""Lease items of a backfill shared by workers: their key space, records and requests.

Pure: every function builds a request dict or reads an item; `dynaorm._workers` sends.

A run keeps its state in the migrated table itself, in one partition of an internal key
space, `!dynaorm#migrate#<run>`: one run item (sort key `run`: segment count, schema
fingerprint) and one lease item per scan segment (`segment#0000007`). No user entity can
ever write a key of that space: a literal template segment may not contain a character at
or below `$` and every encoded slot value keeps above `#` (`_slots.SEPARATOR`; a `str` slot
escapes such characters as `$` + letter), so no key dynaorm encodes contains `!` (0x21),
while every internal key starts with it. The key space needs no collision check of its own.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from dynaorm._schema import Table
from dynaorm.errors import DefinitionError

__all__ = [
    "INTERNAL_KEY_PREFIX",
    "LEASE_TYPE",
    "MIGRATE_PARTITION",
    "RUN_SORT_KEY",
    "Lease",
    "RunInfo",
    "checkpoint_request",
    "claim_request",
    "is_internal",
    "lease_from_item",
    "partition_of",
    "release_request",
    "run_from_item",
    "run_item_request",
    "segment_sort_key",
    "status_query",
]

# Every internal partition key of dynaorm starts here ("!" sorts below every character
# an entity key can contain, see the module docstring).
INTERNAL_KEY_PREFIX = "!dynaorm#"
MIGRATE_PARTITION = INTERNAL_KEY_PREFIX + "migrate#{run}"
RUN_SORT_KEY = "run"
LEASE_TYPE = "dynaorm.migrate"
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")
_SEGMENT_DIGITS = 7  # DynamoDB allows up to 1,000,000 scan segments

State = Literal["leased", "released", "done"]


def partition_of(run: str) -> str:
    """The partition key of a run's items; refuses run ids that are not plain names."""
    if not _RUN_ID.fullmatch(run):
        raise DefinitionError(
            f"migrate run id {run!r}: use 1 to 128 letters, digits, '_', '.', ':' or '-', "
            "starting with a letter or digit",
            value=run,
        )
    return MIGRATE_PARTITION.format(run=run)


def segment_sort_key(segment: int) -> str:
    return f"segment#{segment:0{_SEGMENT_DIGITS}d}"


def is_internal(table: Table, item: Mapping[str, Any]) -> bool:
    """An item of dynaorm's internal key space (a lease or run item), never user data."""
    pk = item.get(table.partition_key)
    return isinstance(pk, dict) and str(pk.get("S", "")).startswith(INTERNAL_KEY_PREFIX)


def _key(table: Table, run: str, sort: str) -> dict[str, Any]:
    return {table.partition_key: {"S": partition_of(run)}, table.sort_key: {"S": sort}}


def _n(value: int) -> dict[str, str]:
    return {"N": str(value)}


# -- the run item --------------------------------------------------------------------------


@dataclass(frozen=True)
class RunInfo:
    """What every worker of a run must agree on."""

    run: str
    table: str
    fingerprint: str
    total_segments: int


def run_item_request(table: Table, table_name: str, info: RunInfo, now_ms: int) -> dict[str, Any]:
    """PutItem creating the run item; fails (condition) when the run exists already."""
    item = {
        **_key(table, info.run, RUN_SORT_KEY),
        table.type_attribute: {"S": LEASE_TYPE},
        "table": {"S": info.table},
        "fingerprint": {"S": info.fingerprint},
        "total_segments": _n(info.total_segments),
        "started": _n(now_ms),
    }
    return {
        "TableName": table_name,
        "Item": item,
        "ConditionExpression": "attribute_not_exists(#pk)",
        "ExpressionAttributeNames": {"#pk": table.partition_key},
    }


def run_from_item(run: str, item: Mapping[str, Any]) -> RunInfo:
    return RunInfo(
        run,
        item["table"]["S"],
        item["fingerprint"]["S"],
        int(item["total_segments"]["N"]),
    )


def status_query(table: Table, table_name: str, run: str) -> dict[str, Any]:
    """Query for the run item and every lease item (strongly consistent)."""
    return {
        "TableName": table_name,
        "KeyConditionExpression": "#pk = :pk",
        "ExpressionAttributeNames": {"#pk": table.partition_key},
        "ExpressionAttributeValues": {":pk": {"S": partition_of(run)}},
        "ConsistentRead": True,
    }


# -- lease items ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Lease:
    """One segment's lease item as read (or as just written by its holder)."""

    segment: int
    state: State
    owner: str
    until_ms: int  # the holder's clock, milliseconds since the epoch; 0 once released
    claims: int  # how many times the segment was claimed: the fencing token
    position: dict[str, Any] | None  # the ExclusiveStartKey to resume from
    scanned: int = 0
    updated: int = 0

    def claimable(self, now_ms: int) -> bool:
        return self.state != "done" and self.until_ms < now_ms


def lease_from_item(item: Mapping[str, Any]) -> Lease:
    position = item.get("position")
    state = item["state"]["S"]
    assert state in ("leased", "released", "done"), state
    return Lease(
        segment=int(item["segment"]["N"]),
        state=state,
        owner=item["owner"]["S"],
        until_ms=int(item["until"]["N"]),
        claims=int(item["claims"]["N"]),
        position=json.loads(position["S"]) if position else None,
        scanned=int(item.get("scanned", {"N": "0"})["N"]),
        updated=int(item.get("updated", {"N": "0"})["N"]),
    )


def claim_request(
    table: Table,
    table_name: str,
    run: str,
    segment: int,
    seen: Lease | None,
    worker: str,
    until_ms: int,
) -> tuple[dict[str, Any], Lease]:
    """UpdateItem claiming a segment, and the lease it gives when it succeeds.

    A segment nobody claimed yet is claimed on the condition that its item does not
    exist; an expired or released one on the condition that the lease read (`seen`) is
    still the one stored: same holder, same expiry, not done. Of two workers racing for a
    segment exactly one succeeds.
    """
    values: dict[str, Any] = {
        ":leased": {"S": "leased"},
        ":me": {"S": worker},
        ":until": _n(until_ms),
        ":one": _n(1),
        ":segment": _n(segment),
        ":type": {"S": LEASE_TYPE},
    }
    names = {"#state": "state", "#owner": "owner", "#until": "until", "#claims": "claims"}
    names.update({"#segment": "segment", "#type": table.type_attribute})
    if seen is None:
        names["#pk"] = table.partition_key
        condition = "attribute_not_exists(#pk)"
        lease = Lease(segment, "leased", worker, until_ms, 1, None)
    else:
        condition = "#owner = :old_owner AND #until = :old_until AND #state <> :done"
        values.update({":old_owner": {"S": seen.owner}, ":old_until": _n(seen.until_ms)})
        values[":done"] = {"S": "done"}
        lease = Lease(
            segment,
            "leased",
            worker,
            until_ms,
            seen.claims + 1,
            seen.position,
            seen.scanned,
            seen.updated,
        )
    request = {
        "TableName": table_name,
        "Key": _key(table, run, segment_sort_key(segment)),
        "UpdateExpression": "SET #state = :leased, #owner = :me, #until = :until, "
        "#segment = :segment, #type = :type ADD #claims :one",
        "ConditionExpression": condition,
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }
    return request, lease


def _holder_condition(lease: Lease) -> tuple[str, dict[str, str], dict[str, Any]]:
    """Only the current holder of this very claim may write: another worker's takeover
    (a higher claim count) makes the write fail, so a stalled worker notices it lost."""
    return (
        "#owner = :me AND #claims = :claims AND #state = :leased",
        {"#owner": "owner", "#claims": "claims", "#state": "state"},
        {":me": {"S": lease.owner}, ":claims": _n(lease.claims), ":leased": {"S": "leased"}},
    )


def checkpoint_request(
    table: Table,
    table_name: str,
    run: str,
    lease: Lease,
    *,
    until_ms: int,
    done: bool = False,
) -> dict[str, Any]:
    """UpdateItem renewing the lease and saving the position and counts of `lease`;
    with `done`, marking the segment finished (its position removed)."""
    condition, names, values = _holder_condition(lease)
    names.update({"#until": "until", "#scanned": "scanned", "#updated": "updated"})
    values.update(
        {":until": _n(until_ms), ":scanned": _n(lease.scanned), ":updated": _n(lease.updated)}
    )
    update = "SET #until = :until, #scanned = :scanned, #updated = :updated"
    names["#position"] = "position"
    if done:
        names["#state"] = "state"
        values[":done"] = {"S": "done"}
        update += ", #state = :done REMOVE #position"
    elif lease.position is not None:
        values[":position"] = {"S": json.dumps(lease.position, sort_keys=True)}
        update += ", #position = :position"
    else:
        update += " REMOVE #position"
    return {
        "TableName": table_name,
        "Key": _key(table, run, segment_sort_key(lease.segment)),
        "UpdateExpression": update,
        "ConditionExpression": condition,
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }


def release_request(table: Table, table_name: str, run: str, lease: Lease) -> dict[str, Any]:
    """UpdateItem handing the segment back (a clean stop): claimable at once, position kept."""
    condition, names, values = _holder_condition(lease)
    names["#until"] = "until"
    values.update({":released": {"S": "released"}, ":zero": _n(0)})
    return {
        "TableName": table_name,
        "Key": _key(table, run, segment_sort_key(lease.segment)),
        "UpdateExpression": "SET #state = :released, #until = :zero",
        "ConditionExpression": condition,
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }
