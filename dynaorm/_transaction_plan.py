"""Pure commit planning: tracked changes → TransactWriteItems actions, merged, within limits."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dynaorm._codec import item_size, surely_within
from dynaorm._conditions import Condition, build_condition
from dynaorm._entity import Entity, Key
from dynaorm._expressions import Placeholders
from dynaorm._planner import (
    Loaded,
    Step,
    plan_changed_fields,
    plan_move,
    plan_put,
    version_of,
)
from dynaorm._writes import Action, owned_by
from dynaorm.errors import ExpressionError, TransactionTooLarge, UniqueConstraintViolation

__all__ = [
    "MAX_ACTIONS",
    "MAX_BYTES",
    "Change",
    "Entry",
    "Ident",
    "Loaded",
    "Step",
    "changed_fields",
    "deleting",
    "dirty",
    "plan_commit",
    "version_of",
]

MAX_ACTIONS = 100  # TransactWriteItems / TransactGetItems take at most 100 actions
MAX_BYTES = 4 * 1024 * 1024  # and at most 4 MB of items, expressions and names

Ident = tuple[str, str, str]  # (physical table, partition key, sort key)
_KeyNames = Mapping[str, tuple[str, str]]  # physical table -> (partition, sort) attribute


@dataclass
class Change:
    """An explicit change: add/put keep the entity (built at commit), others a built step."""

    kind: str  # "add", "put", "delete", "update", "check"
    entity: Entity | None = None
    condition: Condition | None = None
    step: Step | None = None


@dataclass(eq=False)
class Entry:
    """Everything the unit of work knows about one item."""

    key: Key
    entity: Entity | None = None  # what get() hands out for this key
    loaded: Loaded | None = None  # set for items read (or committed) here: tracked
    change: Change | None = None


# -- the commit -------------------------------------------------------------------------


def plan_commit(entries: Mapping[Ident, Entry]) -> tuple[list[Step], list[Action]]:
    """Every item's step, and their actions as one transaction DynamoDB will accept.

    Raises before anything is sent: two actions on one item that cannot merge, or more
    actions or bytes than one TransactWriteItems takes.
    """
    steps = [step for step in map(_plan_entry, entries.items()) if step]
    actions = _one_action_per_item(
        [action for step in steps for action in step.actions], _key_names(entries)
    )
    if actions:
        _check_limits(actions)
    return steps, actions


def _plan_entry(item: tuple[Ident, Entry]) -> Step | None:
    (name, _, _), entry = item
    change = entry.change
    if change is None:
        return _plan_dirty(entry, name)
    if change.kind in ("update", "check") and dirty(entry):
        fields = changed_fields(entry)
        raise ExpressionError(
            f"{change.kind}() of {entry.key!r} conflicts with unsaved changes to {fields} "
            "of the tracked object; DynamoDB takes one action per item",
            entity=entry.key.entity.__dynaorm__.name,
            key=entry.key,
        )
    if change.kind in ("add", "put"):
        assert change.entity is not None
        create = change.kind == "add"
        return plan_put(
            change.entity,
            name,
            change.condition,
            create=create,
            loaded=entry.loaded,
            known=entry.key,
        )
    return change.step


def _key_names(entries: Mapping[Ident, Entry]) -> dict[str, tuple[str, str]]:
    tables = {ident[0]: entry.key.entity.__dynaorm__.table for ident, entry in entries.items()}
    return {name: (table.partition_key, table.sort_key) for name, table in tables.items()}


# -- one item's step --------------------------------------------------------------------


def deleting(entry: Entry) -> bool:
    return entry.change is not None and entry.change.kind == "delete"


def changed_fields(entry: Entry) -> list[str]:
    if entry.entity is None or entry.loaded is None:
        return []
    now, then = entry.entity.model_dump(), entry.loaded.values
    stored = type(entry.entity).__dynaorm__.attributes  # not computed fields: never stored
    return [name for name in now if name in stored and now[name] != then.get(name)]


def dirty(entry: Entry) -> bool:
    return bool(changed_fields(entry))


def _plan_dirty(entry: Entry, name: str) -> Step | None:
    """The writes that make the stored item match a tracked object, if it changed."""
    entity, loaded = entry.entity, entry.loaded
    if entity is None or loaded is None:
        return None
    changed = changed_fields(entry)
    if not changed:
        return None
    if entity.get_key() != loaded.key:
        return plan_move(entity, loaded, name)
    return plan_changed_fields(entity, loaded, changed, name)


# -- one action per item, within the limits ---------------------------------------------


def _target(action: Action, key_names: _KeyNames) -> tuple[str, str, str]:
    """The item an action writes: (table, partition key value, sort key value)."""
    table = str(action.params["TableName"])
    key = action.params.get("Key") or action.params["Item"]
    pk, sk = key_names[table]
    return table, str(key[pk]["S"]), str(key[sk]["S"])


def _one_action_per_item(actions: list[Action], key_names: _KeyNames) -> list[Action]:
    """Merge a guard released and claimed in one commit; refuse other double actions."""
    result: list[Action] = []
    seen: dict[tuple[str, str, str], int] = {}
    for action in actions:
        target = _target(action, key_names)
        index = seen.get(target)
        if index is None:
            seen[target] = len(result)
            result.append(action)
        else:
            result[index] = _combine(result[index], action)
    return result


def _combine(first: Action, second: Action) -> Action:
    kinds = {first.purpose.kind: first, second.purpose.kind: second}
    if kinds.keys() == {"guard", "guard-release"}:
        return _transfer(kinds["guard"], kinds["guard-release"].purpose.key)
    purpose = second.purpose
    if first.purpose.kind == purpose.kind == "guard":
        raise UniqueConstraintViolation(
            f"{purpose.entity}.{purpose.field} = {purpose.value!r} is claimed twice in this "
            f"unit of work, by {first.purpose.key} and {purpose.key}",
            entity=purpose.entity,
            key=purpose.key,
            field=purpose.field,
        )
    raise ExpressionError(
        f"{purpose.entity} {purpose.key}: this commit would send both {first.operation} and "
        f"{second.operation} for one item; DynamoDB takes one action per item",
        entity=purpose.entity,
        key=purpose.key,
    )


def _transfer(claim: Action, previous_owner: tuple[str, str]) -> Action:
    """One Put that hands a guard item from its previous owner to the claiming item.

    Two users swapping values, or an item whose key changes while its unique value stays,
    release and claim the same guard item: DynamoDB refuses two actions on one item, and
    the guard must still prove it belonged to the releasing item.
    """
    ph = Placeholders()
    params = {
        "TableName": claim.params["TableName"],
        "Item": claim.params["Item"],
        "ConditionExpression": build_condition(owned_by(previous_owner), ph),
        **ph.to_request(),
    }
    return Action("Put", params, claim.purpose)


def _expression_bytes(params: Mapping[str, Any]) -> int:
    """What DynamoDB adds to an action's item data towards the 4 MB limit.

    Measured on DynamoDB Local (docs/guarantees.md): the condition and update expression
    text, each attribute name (not its `#n` placeholder) and each value's size (not its
    `:v` placeholder); ReturnValuesOnConditionCheckFailure and the table name are free.
    """
    text = sum(len(params[k].encode()) for k in _EXPRESSIONS if k in params)
    names = sum(len(name.encode()) for name in params.get("ExpressionAttributeNames", {}).values())
    values = params.get("ExpressionAttributeValues", {})
    return text + names + item_size(values) - sum(len(v.encode()) for v in values)


_EXPRESSIONS = ("ConditionExpression", "UpdateExpression")


def _size(action: Action) -> int:
    """An action's bytes as the 4 MB limit counts them: its item (or key), expressions."""
    params = action.params
    carried = params.get("Item") or params.get("Key") or {}
    return item_size(carried) + _expression_bytes(params)


def _check_limits(actions: list[Action]) -> None:
    if len(actions) > MAX_ACTIONS:
        raise TransactionTooLarge(
            f"this commit needs {len(actions)} actions (unique guards included); one "
            f"TransactWriteItems takes at most {MAX_ACTIONS}. Nothing was sent: split the "
            "work into several units of work",
            entity=actions[0].purpose.entity,
        )
    # Puts built from entities know a bound on their size; the rest get a cheap bound.
    known = sum(
        action.size + _expression_bytes(action.params)
        for action in actions
        if action.size is not None
    )
    others = [action.params for action in actions if action.size is None]
    if known <= MAX_BYTES and surely_within(others, MAX_BYTES - known):
        return
    size = sum(map(_size, actions))
    if size > MAX_BYTES:
        raise TransactionTooLarge(
            f"this commit carries {size:,} bytes; one TransactWriteItems takes at most "
            f"{MAX_BYTES:,} (4 MB). Nothing was sent: split the work",
            entity=actions[0].purpose.entity,
        )
