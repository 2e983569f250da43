"""Pure commit planning: tracked changes → TransactWriteItems actions, merged, within limits."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from dynaorm._codec import from_attribute_value, item_size, surely_within
from dynaorm._compiler import schema_of
from dynaorm._conditions import Condition, and_, build_condition
from dynaorm._entity import Entity, EntityInfo, Key
from dynaorm._expressions import Path, Placeholders
from dynaorm._items import entity_to_item
from dynaorm._update import Update
from dynaorm._writes import (
    Action,
    FieldChanges,
    build_update,
    condition_unchanged,
    delete_action,
    derived_key_update,
    guard_actions,
    put_action,
    unique_values,
    update_action,
    version_condition,
)
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
    "plan_delete",
    "plan_update",
    "version_of",
]

MAX_ACTIONS = 100  # TransactWriteItems / TransactGetItems take at most 100 actions
MAX_BYTES = 4 * 1024 * 1024  # and at most 4 MB of item data

Ident = tuple[str, str, str]  # (physical table, partition key, sort key)
_KeyNames = Mapping[str, tuple[str, str]]  # physical table -> (partition, sort) attribute


@dataclass(frozen=True)
class Loaded:
    """An entity as read (or last committed): what dirty tracking compares with."""

    key: Key
    values: dict[str, Any]
    unique: dict[str, Any]
    version: int | None

    @classmethod
    def of(cls, entity: Entity) -> Loaded:
        # model_dump copies containers, so in-place edits of lists and sets show as changes.
        return cls(entity.get_key(), entity.model_dump(), unique_values(entity), version_of(entity))


@dataclass
class Step:
    """The actions for one item (its guards included) and what to do once they succeed."""

    actions: list[Action]
    on_success: Callable[[], None] | None = None


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
    if change.kind == "add":
        assert change.entity is not None
        return _plan_put(
            change.entity, name, change.condition, create=True, old=None, known=entry.key
        )
    if change.kind == "put":
        assert change.entity is not None
        old = entry.loaded.unique if entry.loaded else None
        return _plan_put(
            change.entity, name, change.condition, create=False, old=old, known=entry.key
        )
    return change.step


def _key_names(entries: Mapping[Ident, Entry]) -> dict[str, tuple[str, str]]:
    tables = {ident[0]: entry.key.entity.__dynaorm__.table for ident, entry in entries.items()}
    return {name: (table.partition_key, table.sort_key) for name, table in tables.items()}


# -- one item's step --------------------------------------------------------------------


def version_of(entity: Entity | None) -> int | None:
    if entity is None:
        return None
    field = type(entity).__dynaorm__.version
    return None if field is None else int(getattr(entity, field))


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


def _version_field(info: EntityInfo, key: Key) -> ExpressionError:
    return ExpressionError(
        f"{info.name}.{info.version} is the version field; dynaorm increments it ({key!r})",
        entity=info.name,
        key=key,
        field=info.version,
    )


def _version_check(info: EntityInfo, version: int | None) -> Condition | None:
    if info.version is None or version is None:
        return None
    return info.paths[info.version] == version


def _unchanged(info: EntityInfo, old: Mapping[str, Any] | None) -> Condition | None:
    """Guards move with the stored values; a version check already proves those."""
    if info.version is not None or not info.unique:
        return None
    if old is None:
        return Path(info.table.partition_key).not_exists()
    return condition_unchanged(info, old)


def _bump(entity: Entity | None, version: int | None) -> Callable[[], None] | None:
    if entity is None or version is None:
        return None
    field = str(type(entity).__dynaorm__.version)
    return lambda: setattr(entity, field, version + 1)


def _with_version(entity: Entity, version: int | None) -> Entity:
    info = type(entity).__dynaorm__
    if info.version is None or version is None:
        return entity
    return entity.model_copy(update={info.version: version + 1})


def _plan_put(
    entity: Entity,
    name: str,
    condition: Condition | None,
    *,
    create: bool,
    old: dict[str, Any] | None,
    known: Key | None = None,
) -> Step:
    info = type(entity).__dynaorm__
    version = version_of(entity)
    check = None if create or version is None else version_condition(info, version)
    if not create:
        condition = and_(condition, check, _unchanged(info, old))
    action = put_action(
        _with_version(entity, version),
        name,
        must_not_exist=create,
        condition=condition,
        known=known,
    )
    guards = guard_actions(info, name, action.purpose.key, old, unique_values(entity))
    return Step([action.checked(check), *guards], _bump(entity, version))


def plan_delete(
    key: Key,
    name: str,
    condition: Condition | None,
    version: int | None,
    old: dict[str, Any] | None,
) -> Step:
    info = key.entity.__dynaorm__
    check = _version_check(info, version)
    unchanged = _unchanged(info, old) if old is not None else None
    action = delete_action(key, name, condition=and_(condition, check, unchanged))
    guards = guard_actions(info, name, action.purpose.key, old, None) if old else []
    return Step([action.checked(check), *guards])


def _with_keys(update: Update, to_set: Mapping[str, str], to_remove: list[str]) -> Update:
    for attribute, value in to_set.items():
        update = update.set(Path(attribute), value)
    return update.remove(*(Path(attribute) for attribute in to_remove))


def plan_update(
    key: Key,
    name: str,
    changes: FieldChanges,
    condition: Condition | None,
    entity: Entity | None,
    loaded: Loaded | None,
) -> Step:
    info = key.entity.__dynaorm__
    touched = changes.touched_fields()
    if info.version is not None and info.version in touched:
        raise _version_field(info, key)
    update, new_values = build_update(info, changes)
    current = loaded.values if loaded else entity.model_dump() if entity else None
    schema = schema_of(info.table)
    update = _with_keys(update, *derived_key_update(schema, info, touched, new_values, current))
    version = loaded.version if loaded else version_of(entity)
    if info.version is not None:
        update = update.add(info.paths[info.version], 1)
    check = _version_check(info, version)
    guards: list[Action] = []
    moved = sorted({f for group in info.unique for f in group} & touched)
    if moved:
        missing = [f for f in moved if f not in new_values]
        if missing:
            raise ExpressionError(
                f"{info.name}: unique fields {missing} can only be changed with set=",
                entity=info.name,
                field=missing[0],
            )
        old = loaded.unique if loaded else unique_values(entity) if entity else {}
        new = {**old, **{k: v for k, v in new_values.items() if k in old}}
        guards = guard_actions(info, name, (key.pk, key.sk), old, new)
        condition = and_(condition, _unchanged(info, old))
    action = update_action(key, name, update, condition=and_(condition, check), return_values=False)
    return Step([action.checked(check), *guards], _bump(entity, version))


def _plan_dirty(entry: Entry, name: str) -> Step | None:
    """The writes that make the stored item match a tracked object, if it changed."""
    entity, loaded = entry.entity, entry.loaded
    if entity is None or loaded is None:
        return None
    changed = changed_fields(entry)
    if not changed:
        return None
    info = type(entity).__dynaorm__
    if info.version is not None and info.version in changed:
        raise _version_field(info, loaded.key)
    if entity.get_key() != loaded.key:
        return _plan_move(entity, loaded, name)
    return _plan_changed_fields(entity, loaded, changed, name)


def _plan_changed_fields(entity: Entity, loaded: Loaded, changed: list[str], name: str) -> Step:
    """An Update of the changed fields only, plus the index keys built from them."""
    info = type(entity).__dynaorm__
    # The full item says how each field is stored (TTL seconds, empty sets omitted) and
    # checks the item's size, exactly as a Put of this object would.
    item = entity_to_item(entity)
    update = Update()
    for field in changed:
        stored = item.get(info.attributes[field])
        path = info.paths[field]
        update = (
            update.remove(path)
            if stored is None
            else update.set(path, from_attribute_value(stored))
        )
    values = {field: getattr(entity, field) for field in info.paths}
    new_values = {field: values[field] for field in changed}
    schema = schema_of(info.table)
    update = _with_keys(update, *derived_key_update(schema, info, set(changed), new_values, values))
    check = _version_check(info, loaded.version)
    if check is not None:
        update = update.add(info.paths[str(info.version)], 1)
    condition = check
    new = unique_values(entity)
    guards: list[Action] = []
    if new != loaded.unique:
        guards = guard_actions(info, name, (loaded.key.pk, loaded.key.sk), loaded.unique, new)
        condition = and_(condition, _unchanged(info, loaded.unique))
    action = update_action(loaded.key, name, update, condition=condition, return_values=False)
    return Step([action.checked(check), *guards], _bump(entity, loaded.version))


def _plan_move(entity: Entity, loaded: Loaded, name: str) -> Step:
    """A changed primary key: Delete the old item, create the new one, move guards."""
    info = type(entity).__dynaorm__
    check = _version_check(info, loaded.version)
    unchanged = _unchanged(info, loaded.unique)
    delete = delete_action(loaded.key, name, condition=and_(check, unchanged))
    put = put_action(_with_version(entity, loaded.version), name, must_not_exist=True)
    old_owner, new_owner = (loaded.key.pk, loaded.key.sk), put.purpose.key
    # Release and claim; a guard whose value stays is merged into one owner transfer.
    guards = guard_actions(info, name, old_owner, loaded.unique, None)
    guards += guard_actions(info, name, new_owner, None, unique_values(entity))
    return Step([delete.checked(check), put, *guards], _bump(entity, loaded.version))


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
    owned = (Path("owner_pk") == previous_owner[0]) & (Path("owner_sk") == previous_owner[1])
    params = {
        "TableName": claim.params["TableName"],
        "Item": claim.params["Item"],
        "ConditionExpression": build_condition(owned, ph),
        **ph.to_request(),
    }
    return Action("Put", params, claim.purpose)


def _size(action: Action) -> int:
    """Bytes of item data an action carries: the item, or its key and expression values."""
    params = action.params
    carried = params.get("Item") or params.get("Key") or {}
    return item_size(carried) + item_size(params.get("ExpressionAttributeValues", {}))


def _check_limits(actions: list[Action]) -> None:
    if len(actions) > MAX_ACTIONS:
        raise TransactionTooLarge(
            f"this commit needs {len(actions)} actions (unique guards included); one "
            f"TransactWriteItems takes at most {MAX_ACTIONS}. Nothing was sent: split the "
            "work into several units of work",
            entity=actions[0].purpose.entity,
        )
    # Puts built from entities know a bound on their size; the rest get a cheap bound.
    known = sum(action.size for action in actions if action.size is not None)
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
