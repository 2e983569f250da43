"""The write planner: every write, alone or in a unit of work, is planned here.

`Session.put/create/update/delete` are a one-step plan through the same functions the unit
of work commits with, so the rules live in one place:

* version: a versioned write requires the version it was planned from and stores +1;
* unique: guards move from the values *stored* (as read), never from a locally edited
  object, and a guard is released only with a condition on its recorded owner;
* derived keys and stale sources: an index key rebuilt from fields the write does not
  change requires those fields to still hold the values it was built from;
* every value a write relied on is recorded in its `Expect`, so a failed condition is
  explained by comparing the stored item with it (`_outcomes.py`).

Sans-I/O: plans in, `Step`s of `Action`s out; no transport is imported here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from dynaorm._codec import AttributeValue, from_attribute_value
from dynaorm._compiler import schema_of
from dynaorm._conditions import Comparison, Condition, Value, and_
from dynaorm._entity import Entity, EntityInfo, Key
from dynaorm._expressions import Path
from dynaorm._items import entity_to_item
from dynaorm._timestamps import apply, stamped, stamps_for
from dynaorm._update import Update
from dynaorm._writes import (
    Action,
    Expect,
    FieldChanges,
    build_update,
    coerce_field,
    delete_action,
    derived_key_update,
    guard_actions,
    put_action,
    stored_value,
    unique_values,
    update_action,
    version_condition,
)
from dynaorm.errors import ExpressionError, KeyEncodingError

__all__ = [
    "Loaded",
    "Step",
    "plan_changed_fields",
    "plan_delete",
    "plan_move",
    "plan_put",
    "plan_update",
    "refresh_from",
    "refuse_composite_with_entity",
    "stored_values_condition",
    "version_of",
]


@dataclass(frozen=True)
class Loaded:
    """The state a write is planned from: field values, unique values and version.

    In a unit of work, an entity as read (or last committed). For a single write, the
    object passed in, with the unique values as read from the table when guards move.
    """

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
    """The actions for one item (its guards included) and what to do once they succeed.

    `refresh`: an object to reload from the stored item once the write succeeded (an
    update's result is the stored item, not the object's old values plus the changes).
    """

    actions: list[Action]
    on_success: Callable[[], None] | None = None
    refresh: Entity | None = None


def version_of(entity: Entity | None) -> int | None:
    if entity is None:
        return None
    field = type(entity).__dynaorm__.version
    return None if field is None else int(getattr(entity, field))


def refresh_from(target: Entity, stored: Entity) -> None:
    """Make `target` hold every field value of `stored` (already validated)."""
    for name in type(target).model_fields:
        target.__dict__[name] = getattr(stored, name)


def stored_values_condition(
    stored: Mapping[Path, AttributeValue | None],
) -> Condition | None:
    """Each attribute still holds the value read (`None`: it was absent).

    The one condition for "the sources I derived from are unchanged", shared by writes
    here and by the index backfill.
    """
    condition: Condition | None = None
    for path, value in stored.items():
        part = path.not_exists() if value is None else Comparison(path, "=", Value(value))
        condition = and_(condition, part)
    return condition


def _relied_condition(info: EntityInfo, relied: Mapping[str, Any]) -> Condition | None:
    return stored_values_condition(
        {info.paths[name]: stored_value(info, name, value) for name, value in relied.items()}
    )


def _version_check(info: EntityInfo, version: int | None) -> Condition | None:
    if info.version is None or version is None:
        return None
    return info.paths[info.version] == version


def _bump(entity: Entity | None, version: int | None) -> Callable[[], None] | None:
    if entity is None or version is None:
        return None
    field = str(type(entity).__dynaorm__.version)
    return lambda: setattr(entity, field, version + 1)


def _then(*callbacks: Callable[[], None] | None) -> Callable[[], None] | None:
    chosen = [c for c in callbacks if c is not None]
    if len(chosen) <= 1:
        return chosen[0] if chosen else None

    def run_all() -> None:
        for callback in chosen:
            callback()

    return run_all


def _with_version(entity: Entity, version: int | None) -> Entity:
    info = type(entity).__dynaorm__
    if info.version is None or version is None:
        return entity
    return entity.model_copy(update={info.version: version + 1})


def _sources(info: EntityInfo, touched: set[str], known: set[str]) -> list[str]:
    """Fields of indexes rebuilt by a change of `touched` whose values are not `known`."""
    placed = schema_of(info.table).entities[info.name].indexes.values()
    fields = {f for p in placed if set(p.index.fields) & touched for f in p.index.fields}
    # Primary-key fields cannot change under an existing key: nothing to condition on.
    return sorted(fields - known - set(info.pk.fields) - set(info.sk.fields))


def _guard_basis(
    info: EntityInfo, old: Mapping[str, Any] | None, new: Mapping[str, Any] | None
) -> tuple[dict[str, Any], bool]:
    """What moving guards from `old` relies on: those stored values, or no item at all."""
    if not info.unique or old == new:
        return {}, False
    if old is None:
        return {}, True
    return dict(old), False


def _expect(
    action: Action,
    info: EntityInfo,
    *,
    version: int | None,
    relied: Mapping[str, Any],
    absent: bool = False,
    user: Condition | None = None,
    sets: Mapping[str, Any] | None = None,
) -> Action:
    expect = Expect(
        info, version, dict(relied), absent, user is not None, None if sets is None else dict(sets)
    )
    return action._replace(purpose=action.purpose._replace(expect=expect))


def plan_put(
    entity: Entity,
    name: str,
    condition: Condition | None,
    *,
    create: bool,
    loaded: Loaded | None,
    known: Key | None = None,
) -> Step:
    """A whole-item Put; `loaded` is the stored state (None: nothing stored)."""
    info = type(entity).__dynaorm__
    version = version_of(entity)
    old = None if create or loaded is None else loaded.unique
    new = unique_values(entity)
    relied, absent = ({}, False) if create else _guard_basis(info, old, new)
    expected = None if create else version
    checks = and_(
        None if expected is None else version_condition(info, expected),
        _relied_condition(info, relied),
        Path(info.table.partition_key).not_exists() if absent else None,
    )
    stamps = stamps_for(info, entity, whole=True)
    action = put_action(
        stamped(_with_version(entity, version), stamps),
        name,
        must_not_exist=create,
        condition=and_(condition, checks),
        known=known,
    )
    action = _expect(action, info, version=expected, relied=relied, absent=absent, user=condition)
    guards = guard_actions(info, name, action.purpose.key, old, new)
    return Step([action, *guards], _then(_bump(entity, version), apply(entity, stamps)))


def plan_delete(key: Key, name: str, condition: Condition | None, loaded: Loaded | None) -> Step:
    """A Delete; `loaded` says what was read: version to check, guards to release."""
    info = key.entity.__dynaorm__
    version = loaded.version if loaded else None
    old = loaded.unique if loaded and info.unique else None
    relied = old or {}
    checks = and_(_version_check(info, version), _relied_condition(info, relied))
    action = delete_action(key, name, condition=and_(condition, checks))
    action = _expect(action, info, version=version, relied=relied, user=condition)
    guards = guard_actions(info, name, action.purpose.key, old, None) if old else []
    return Step([action, *guards])


def _plain_sets(changes: FieldChanges, new_values: Mapping[str, Any]) -> dict[str, Any] | None:
    """The update's whole effect as field values, when it only sets and removes fields."""
    others = (changes.add, changes.append, changes.delete, changes.if_not_exists)
    paths = [*changes.assign, *changes.remove]
    if any(others) or any(isinstance(p, Path) for p in paths):
        return None
    return dict(new_values)


def plan_update(
    key: Key,
    name: str,
    changes: FieldChanges,
    condition: Condition | None,
    basis: Loaded | None,
    refresh: Entity | None = None,
    composite: Mapping[str, Any] | None = None,
) -> Step:
    """An explicit update; `basis` is the state it was planned from (None: a bare key).

    `composite`: for a bare key, the stored values of the other slot fields of each index
    the update rebuilds; the update is conditioned on them (stale-source rule).
    """
    info = key.entity.__dynaorm__
    if info.version is not None and info.version in changes.touched_fields():
        raise _version_field(info, key)
    changes, stamps = _stamp_changes(info, changes, basis)
    touched = changes.touched_fields()
    update, new_values = build_update(info, changes, key)
    current = (
        basis.values if basis else _composite_values(info, key, touched, new_values, composite)
    )
    schema = schema_of(info.table)
    update = _with_keys(update, *derived_key_update(schema, info, touched, new_values, current))
    relied = {f: current[f] for f in _sources(info, touched, set(new_values))} if current else {}
    version = basis.version if basis else None
    if info.version is not None:
        update = update.add(info.paths[info.version], 1)
    moved = sorted({f for group in info.unique for f in group} & touched)
    guards: list[Action] = []
    if moved:
        missing = [f for f in moved if f not in new_values]
        if missing:
            raise ExpressionError(
                f"{info.name}: unique fields {missing} can only be changed with set=",
                entity=info.name,
                field=missing[0],
            )
        old = basis.unique if basis else {}
        new = {**old, **{k: v for k, v in new_values.items() if k in old}}
        guards = guard_actions(info, name, (key.pk, key.sk), old, new)
        relied.update(old)
    checks = and_(_version_check(info, version), _relied_condition(info, relied))
    action = update_action(key, name, update, condition=and_(condition, checks))
    sets = _plain_sets(changes, new_values)
    action = _expect(action, info, version=version, relied=relied, user=condition, sets=sets)
    return Step([action, *guards], _then(_bump(refresh, version), apply(refresh, stamps)), refresh)


def _stamp_changes(
    info: EntityInfo, changes: FieldChanges, basis: Loaded | None
) -> tuple[FieldChanges, dict[str, Any]]:
    """An update also sets `updated=` (unless it sets that field itself). An update with
    no changes (not even a version bump) stays refused, not turned into a timestamp write."""
    touched = changes.touched_fields()
    empty = not touched and info.version is None
    if info.updated is None or empty or info.updated in touched:
        return changes, {}
    stamps = stamps_for(info, basis.values if basis else {}, whole=False)
    assign: dict[str | Path, Any] = dict(changes.assign)
    assign.update(stamps)
    return dataclasses.replace(changes, assign=assign), stamps


def refuse_composite_with_entity(entity: Entity | None, composite: object) -> None:
    """`composite=` goes with a key: an entity passed in supplies its own values."""
    if entity is not None and composite:
        name = type(entity).__dynaorm__.name
        raise ExpressionError(
            f"{name}: composite= is for an update by key; the entity passed in already "
            "holds the values of every index slot",
            entity=name,
            key=entity.get_key(),
        )


def _composite_values(
    info: EntityInfo,
    key: Key,
    touched: set[str],
    new_values: Mapping[str, Any],
    composite: Mapping[str, Any] | None,
) -> dict[str, Any] | None:
    """What an update by bare key knows of the stored item: its key fields and the
    `composite` values given, which must be exactly the slot fields of the rebuilt
    indexes that the update does not set. None when no index is rebuilt."""
    given = dict(composite or {})
    placed = schema_of(info.table).entities[info.name].indexes.values()
    rebuilt = [p.index for p in placed if set(p.index.fields) & touched]
    keys = set(info.pk.fields + info.sk.fields)
    needs = {f: i.name for i in reversed(rebuilt) for f in i.fields if f not in keys}
    needed = {f: name for f, name in needs.items() if f not in touched}
    missing = sorted(set(needed) - set(given))
    if missing:
        raise KeyEncodingError(
            f"{info.name} {key!r}: this update changes {sorted(touched & set(needs))}, so "
            "it rebuilds index(es) "
            + ", ".join(sorted({i.name for i in rebuilt}))
            + f"; pass the stored values of {missing} with composite= "
            + "("
            + ", ".join(f"{f} feeds {needed[f]}" for f in missing)
            + ")",
            entity=info.name,
            key=key,
            field=missing[0],
        )
    extra = sorted(set(given) - set(needed))
    if extra:
        raise ExpressionError(
            f"{info.name} {key!r}: composite= takes the stored values of the slot fields "
            f"this update needs and does not set ({sorted(needed) or 'none'}); "
            f"{extra} are not among them",
            entity=info.name,
            key=key,
            field=extra[0],
        )
    if not rebuilt:
        return None
    known = {**key.slots, **given}
    return {name: coerce_field(info, name, value) for name, value in known.items()}


def _version_field(info: EntityInfo, key: Key) -> ExpressionError:
    return ExpressionError(
        f"{info.name}.{info.version} is the version field; dynaorm increments it ({key!r})",
        entity=info.name,
        key=key,
        field=info.version,
    )


def _with_keys(update: Update, to_set: Mapping[str, str], to_remove: list[str]) -> Update:
    for attribute, value in to_set.items():
        update = update.set(Path(attribute), value)
    return update.remove(*(Path(attribute) for attribute in to_remove))


def plan_changed_fields(entity: Entity, loaded: Loaded, changed: list[str], name: str) -> Step:
    """An Update of a tracked object's changed fields, plus the index keys built from them."""
    info = type(entity).__dynaorm__
    if info.version is not None and info.version in changed:
        raise _version_field(info, loaded.key)
    original = entity
    stamps = {} if info.updated in changed else stamps_for(info, loaded.values, whole=False)
    entity, changed = stamped(entity, stamps), [*changed, *stamps]
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
    relied = {f: loaded.values[f] for f in _sources(info, set(changed), set(changed))}
    version = loaded.version
    if version is not None:
        update = update.add(info.paths[str(info.version)], 1)
    new = unique_values(entity)
    guards: list[Action] = []
    if new != loaded.unique:
        guards = guard_actions(info, name, (loaded.key.pk, loaded.key.sk), loaded.unique, new)
        relied.update(loaded.unique)
    checks = and_(_version_check(info, version), _relied_condition(info, relied))
    action = update_action(loaded.key, name, update, condition=checks)
    action = _expect(action, info, version=version, relied=relied, sets=new_values)
    return Step([action, *guards], _then(_bump(original, version), apply(original, stamps)))


def plan_move(entity: Entity, loaded: Loaded, name: str) -> Step:
    """A changed primary key: Delete the old item, create the new one, move guards."""
    info = type(entity).__dynaorm__
    relied = loaded.unique if info.unique else {}
    checks = and_(_version_check(info, loaded.version), _relied_condition(info, relied))
    delete = delete_action(loaded.key, name, condition=checks)
    delete = _expect(delete, info, version=loaded.version, relied=relied)
    stamps = stamps_for(info, entity, whole=True)
    written = stamped(_with_version(entity, loaded.version), stamps)
    put = put_action(written, name, must_not_exist=True)
    put = _expect(put, info, version=None, relied={})  # decodes an item found in the way
    old_owner, new_owner = (loaded.key.pk, loaded.key.sk), put.purpose.key
    # Release and claim; a guard whose value stays is merged into one owner transfer.
    guards = guard_actions(info, name, old_owner, loaded.unique, None)
    guards += guard_actions(info, name, new_owner, None, unique_values(entity))
    return Step([delete, put, *guards], _then(_bump(entity, loaded.version), apply(entity, stamps)))
