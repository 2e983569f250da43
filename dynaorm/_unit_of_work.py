"""Unit of work: identity map, dirty tracking, commit as one TransactWriteItems."""

from __future__ import annotations

import enum
import random
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, cast

from dynaorm._codec import from_attribute_value, item_size
from dynaorm._compiler import schema_of
from dynaorm._entity import Entity, EntityInfo, Key
from dynaorm._expressions import Condition, Path, Placeholders, and_, build_condition
from dynaorm._items import entity_from_item, entity_to_item
from dynaorm._update import Update
from dynaorm._writes import (
    Action,
    FieldChanges,
    Purpose,
    build_update,
    cancellation_error,
    condition_unchanged,
    delete_action,
    derived_key_update,
    guard_actions,
    put_action,
    unique_values,
    update_action,
    version_condition,
)
from dynaorm.errors import (
    ConditionFailed,
    ExpressionError,
    ServiceError,
    TransactionCanceled,
    TransactionTooLarge,
    UniqueConstraintViolation,
    UnitOfWorkClosed,
)

if TYPE_CHECKING:
    from dynaorm._session import Session

__all__ = ["UnitOfWork", "UnitOfWorkState"]

E = TypeVar("E", bound=Entity)

MAX_ACTIONS = 100  # TransactWriteItems / TransactGetItems take at most 100 actions
MAX_BYTES = 4 * 1024 * 1024  # and at most 4 MB of item data
# Retried with the same ClientRequestToken: another transaction held one of our items.
_CONFLICT = "TransactionConflict"
_IN_PROGRESS = "TransactionInProgressException"

_Ident = tuple[str, str, str]  # (physical table, partition key, sort key)


class UnitOfWorkState(enum.Enum):
    """Lifecycle of a unit of work; only ACTIVE accepts reads and changes."""

    ACTIVE = "active"
    COMMITTED = "committed"
    ROLLED_BACK = "rolled back"
    FAILED = "failed"


@dataclass(frozen=True)
class _Loaded:
    """An entity as read (or last committed): what dirty tracking compares with."""

    key: Key
    values: dict[str, Any]
    unique: dict[str, Any]
    version: int | None

    @classmethod
    def of(cls, entity: Entity) -> _Loaded:
        # model_dump copies containers, so in-place edits of lists and sets show as changes.
        return cls(entity.get_key(), entity.model_dump(), unique_values(entity), _version(entity))


@dataclass
class _Step:
    """The actions for one item (its guards included) and what to do once they succeed."""

    actions: list[Action]
    on_success: Callable[[], None] | None = None


@dataclass
class _Change:
    """An explicit change: add/put keep the entity (built at commit), others a built step."""

    kind: str  # "add", "put", "delete", "update", "check"
    entity: Entity | None = None
    condition: Condition | None = None
    step: _Step | None = None


@dataclass(eq=False)
class _Entry:
    """Everything the unit of work knows about one item."""

    key: Key
    entity: Entity | None = None  # what get() hands out for this key
    loaded: _Loaded | None = None  # set for items read (or committed) here: tracked
    change: _Change | None = None


class UnitOfWork:
    """Collects reads and changes and commits them as one TransactWriteItems.

    Use it as a context manager (commit on a clean exit; if the block raises, nothing is
    sent) or call `commit()` / `rollback()`. Entities read with `get`/`get_many` are
    tracked: changed fields become an Update at commit. Nothing is sent before commit
    except reads. A unit of work belongs to one thread; its `Session` stays shareable.
    After commit, rollback or a failed commit it refuses all work (`UnitOfWorkClosed`).
    """

    def __init__(
        self,
        session: Session,
        *,
        attempts: int = 5,
        base_delay: float = 0.05,
        max_delay: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._session = session
        self.attempts = attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.sleep = sleep
        self.token: str | None = None  # ClientRequestToken of the commit, once sent
        self._state = UnitOfWorkState.ACTIVE
        self._entries: dict[_Ident, _Entry] = {}
        self._objects: dict[int, _Ident] = {}  # id(entity) -> where it is tracked

    @property
    def state(self) -> UnitOfWorkState:
        return self._state

    def __enter__(self) -> UnitOfWork:
        self._require_active()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._state is not UnitOfWorkState.ACTIVE:
            return  # committed or rolled back explicitly inside the block
        if exc_type is None:
            self.commit()
        else:
            self.rollback()

    # -- reads --------------------------------------------------------------------------

    def get(self, entity: type[E], **slots: Any) -> E | None:
        """The tracked entity with this key (one consistent read the first time), or None."""
        self._require_active()
        key = entity.key(**slots)
        ident = self._ident(key)
        entry = self._entries.get(ident)
        if entry is not None and (entry.entity is not None or _deleting(entry)):
            return None if _deleting(entry) else cast(E, entry.entity)
        found = self._session.get(entity, consistent=True, **slots)
        if found is not None:
            self._track(ident, key, found)
        return found

    def get_many(self, keys: Iterable[Key]) -> list[Entity]:
        """The entities found for `keys`, in key order, read as one consistent snapshot.

        Keys already known here answer from the identity map; the others are read with one
        TransactGetItems, so more than 100 keys are refused rather than split.
        """
        self._require_active()
        wanted = list(keys)
        if len(wanted) > MAX_ACTIONS:
            raise TransactionTooLarge(
                f"get_many() got {len(wanted)} keys; one TransactGetItems reads at most "
                f"{MAX_ACTIONS} items (a consistent snapshot cannot be split)"
            )
        unread: dict[_Ident, Key] = {}
        for key in wanted:
            entry = self._entries.get(self._ident(key))
            if entry is None or (entry.entity is None and not _deleting(entry)):
                unread.setdefault(self._ident(key), key)
        if unread:
            self._read(unread)
        found: list[Entity] = []
        for key in wanted:
            entry = self._entries.get(self._ident(key))
            if entry is not None and entry.entity is not None and not _deleting(entry):
                found.append(entry.entity)
        return found

    def _read(self, unread: dict[_Ident, Key]) -> None:
        request = {
            "TransactItems": [
                {"Get": {"TableName": ident[0], "Key": key.to_dynamodb()}}
                for ident, key in unread.items()
            ]
        }
        first = next(iter(unread.values())).entity.__dynaorm__.name
        response = self._send("TransactGetItems", request, entity=first)
        for (ident, key), answer in zip(unread.items(), response["Responses"], strict=True):
            item = answer.get("Item")
            if item is not None:
                schema = schema_of(key.entity.__dynaorm__.table)
                found = entity_from_item(schema, item, expected=key.entity)
                assert found is not None  # `expected` raises rather than return None
                self._track(ident, key, found)

    # -- changes ------------------------------------------------------------------------

    def add(self, entity: Entity, *, condition: Condition | None = None) -> None:
        """Create `entity` at commit: Put with attribute_not_exists (+ unique guards)."""
        self._require_active()
        key = entity.get_key()
        ident = self._ident(key)
        self._refuse_moved(entity, ident)
        self._refuse_conflict(ident, key, "add", entity)
        self._attach(ident, key, _Change("add", entity, condition), entity)

    def put(self, entity: Entity, *, condition: Condition | None = None) -> None:
        """Write the whole item at commit, replacing any (version and guards kept)."""
        self._require_active()
        key = entity.get_key()
        ident = self._ident(key)
        self._refuse_moved(entity, ident)
        entry = self._entries.get(ident)
        change = entry.change if entry is not None else None
        repeated = change is not None and change.kind == "put" and change.entity is entity
        if repeated and condition is None and change is not None and change.condition is None:
            return  # the same put twice
        self._refuse_conflict(ident, key, "put", entity)
        if type(entity).__dynaorm__.unique and (entry is None or entry.loaded is None):
            # The guards of the values stored now must move: learn them with one read.
            self.get(key.entity, **key.slots)
        self._attach(ident, key, _Change("put", entity, condition), entity)

    def delete(self, target: Entity | Key, *, condition: Condition | None = None) -> None:
        """Delete the item at commit (with its unique guards; version-checked if loaded)."""
        self._require_active()
        ident, key = self._locate(target)
        entry = self._entries.get(ident)
        change = entry.change if entry is not None else None
        if change is not None and change.kind == "delete" and condition is None:
            return  # deleting twice is deleting once
        self._refuse_conflict(ident, key, "delete", target)
        info = key.entity.__dynaorm__
        if info.unique and not isinstance(target, Entity) and (entry is None or not entry.loaded):
            if self.get(key.entity, **key.slots) is None:
                return  # nothing stored, so nothing to delete and no guards to release
            entry = self._entries[ident]
        loaded = entry.loaded if entry is not None else None
        entity = target if isinstance(target, Entity) else None
        version = loaded.version if loaded else _version(entity)
        old = loaded.unique if loaded else unique_values(entity) if entity else None
        step = _plan_delete(key, ident[0], condition, version, old)
        self._attach(ident, key, _Change("delete", step=step))

    def update(
        self,
        target: Entity | Key,
        *,
        set: Mapping[str | Path, Any] | None = None,  # mirrors DynamoDB's SET, like Session.update
        add: Mapping[str | Path, Any] | None = None,
        remove: Iterable[str | Path] = (),
        append: Mapping[str | Path, Any] | None = None,
        delete: Mapping[str | Path, Any] | None = None,
        if_not_exists: Mapping[str | Path, Any] | None = None,
        condition: Condition | None = None,
    ) -> None:
        """An explicit update at commit, like `Session.update` (the object is not changed)."""
        self._require_active()
        ident, key = self._locate(target)
        self._refuse_conflict(ident, key, "update", target)
        changes = FieldChanges(
            set or {}, add or {}, list(remove), append or {}, delete or {}, if_not_exists or {}
        )
        info = key.entity.__dynaorm__
        entry = self._entries.get(ident)
        moved = {f for group in info.unique for f in group} & changes.touched_fields()
        if moved and not isinstance(target, Entity) and (entry is None or not entry.loaded):
            if self.get(key.entity, **key.slots) is None:
                raise ConditionFailed(
                    f"{info.name} {key!r} does not exist", entity=info.name, key=key
                )
            entry = self._entries[ident]
        loaded = entry.loaded if entry is not None else None
        owner = target if isinstance(target, Entity) else entry.entity if entry else None
        step = _plan_update(key, ident[0], changes, condition, owner, loaded)
        self._attach(ident, key, _Change("update", step=step))

    def check(self, target: Entity | Key, condition: Condition) -> None:
        """A ConditionCheck: the commit fails unless `condition` holds for this item."""
        self._require_active()
        ident, key = self._locate(target)
        self._refuse_conflict(ident, key, "check", target)
        ph = Placeholders()
        params: dict[str, Any] = {
            "TableName": ident[0],
            "Key": key.to_dynamodb(),
            "ConditionExpression": build_condition(condition, ph),
            **ph.to_request(),
        }
        purpose = Purpose("check", key.entity.__dynaorm__.name, (key.pk, key.sk))
        step = _Step([Action("ConditionCheck", params, purpose)])
        self._attach(ident, key, _Change("check", step=step))

    # -- lifecycle ----------------------------------------------------------------------

    def commit(self) -> None:
        """Send every change as one TransactWriteItems (nothing to do: nothing sent)."""
        self._require_active()
        try:
            steps = [step for step in map(self._plan, self._entries.items()) if step]
            actions = _one_action_per_item(
                [action for step in steps for action in step.actions], self._key_names()
            )
            if actions:
                _check_limits(actions)
                self._write(actions)
        except BaseException:
            self._state = UnitOfWorkState.FAILED
            raise
        for step in steps:
            if step.on_success is not None:
                step.on_success()
        self._mark_clean()
        self._state = UnitOfWorkState.COMMITTED

    def rollback(self) -> None:
        """Forget every pending change; nothing is sent. Objects keep their values."""
        if self._state is UnitOfWorkState.COMMITTED:
            raise UnitOfWorkClosed("this unit of work has committed; it cannot roll back")
        self._entries.clear()
        self._objects.clear()
        self._state = UnitOfWorkState.ROLLED_BACK

    # -- internals ----------------------------------------------------------------------

    def _require_active(self) -> None:
        if self._state is not UnitOfWorkState.ACTIVE:
            raise UnitOfWorkClosed(
                f"this unit of work is {self._state.value}; start a new one with "
                "session.unit_of_work()"
            )

    def _ident(self, key: Key) -> _Ident:
        return (self._session.table_name(key.entity.__dynaorm__.table), key.pk, key.sk)

    def _locate(self, target: Entity | Key) -> tuple[_Ident, Key]:
        """Where a target lives: a tracked object by identity (its key may have changed)."""
        if isinstance(target, Entity):
            ident = self._objects.get(id(target))
            if ident is not None and self._entries[ident].entity is target:
                return ident, self._entries[ident].key
            target = target.get_key()
        return self._ident(target), target

    def _track(self, ident: _Ident, key: Key, entity: Entity) -> None:
        entry = self._entries.setdefault(ident, _Entry(key))
        entry.entity, entry.loaded = entity, _Loaded.of(entity)
        self._objects[id(entity)] = ident

    def _attach(
        self, ident: _Ident, key: Key, change: _Change, entity: Entity | None = None
    ) -> None:
        entry = self._entries.setdefault(ident, _Entry(key))
        entry.change = change
        if entity is not None:
            entry.entity = entity
            self._objects[id(entity)] = ident

    def _refuse_moved(self, entity: Entity, ident: _Ident) -> None:
        tracked = self._objects.get(id(entity))
        if tracked is not None and tracked != ident and self._entries[tracked].entity is entity:
            info = type(entity).__dynaorm__
            raise ExpressionError(
                f"{info.name} {self._entries[tracked].key!r} is tracked and its key fields "
                "changed; commit moves it (Delete + Put) without add() or put()",
                entity=info.name,
                key=self._entries[tracked].key,
            )

    def _refuse_conflict(self, ident: _Ident, key: Key, kind: str, target: object) -> None:
        """DynamoDB refuses two actions on one item in a transaction: refuse them here."""
        entry = self._entries.get(ident)
        if entry is None:
            return
        name = key.entity.__dynaorm__.name
        # A delete wins over unsaved changes; an update, a check or a put of another
        # object would silently drop them.
        overrides = kind in ("update", "check") or (kind == "put" and target is not entry.entity)
        if entry.change is not None:
            reason = f"already has a pending {entry.change.kind}"
        elif kind == "add":
            reason = "was read in this unit of work, so it exists (use put, or change it)"
        elif overrides and _dirty(entry):
            reason = f"is tracked with unsaved changes to {_changed_fields(entry)}"
        else:
            return
        raise ExpressionError(
            f"{name} {key!r} {reason}; a transaction takes one action per item, so {kind}() "
            "cannot be added",
            entity=name,
            key=key,
        )

    def _plan(self, item: tuple[_Ident, _Entry]) -> _Step | None:
        (name, _, _), entry = item
        change = entry.change
        if change is None:
            return _plan_dirty(entry, name)
        if change.kind in ("update", "check") and _dirty(entry):
            fields = _changed_fields(entry)
            raise ExpressionError(
                f"{change.kind}() of {entry.key!r} conflicts with unsaved changes to {fields} "
                "of the tracked object; DynamoDB takes one action per item",
                entity=entry.key.entity.__dynaorm__.name,
                key=entry.key,
            )
        if change.kind == "add":
            assert change.entity is not None
            return _plan_put(change.entity, name, change.condition, create=True, old=None)
        if change.kind == "put":
            assert change.entity is not None
            old = entry.loaded.unique if entry.loaded else None
            return _plan_put(change.entity, name, change.condition, create=False, old=old)
        return change.step

    def _key_names(self) -> dict[str, tuple[str, str]]:
        tables = {
            ident[0]: entry.key.entity.__dynaorm__.table for ident, entry in self._entries.items()
        }
        return {name: (table.partition_key, table.sort_key) for name, table in tables.items()}

    def _write(self, actions: list[Action]) -> None:
        self.token = uuid.uuid4().hex  # one per commit, the same on every retry of it
        request = {
            "TransactItems": [{action.operation: action.params} for action in actions],
            "ClientRequestToken": self.token,
        }
        try:
            self._send("TransactWriteItems", request, entity=actions[0].purpose.entity)
        except TransactionCanceled as error:
            # Actions of versioned entities carry kind "version": no blanket `versioned`.
            mapped = cancellation_error(error, actions)
            if mapped is error:
                raise
            raise mapped from error

    def _send(self, operation: str, request: dict[str, Any], *, entity: str) -> dict[str, Any]:
        """Send, retrying transaction conflicts with exponential backoff and full jitter."""
        for attempt in range(1, self.attempts + 1):
            try:
                return self._session._call(operation, request, entity=entity)
            except TransactionCanceled as error:
                if attempt == self.attempts or not _conflicted(error):
                    raise
            except ServiceError as error:
                if attempt == self.attempts or error.aws_code != _IN_PROGRESS:
                    raise
            self.sleep(random.uniform(0, min(self.max_delay, self.base_delay * 2**attempt)))
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _mark_clean(self) -> None:
        """After success only: what was written is now what was loaded."""
        for entry in self._entries.values():
            if _deleting(entry):
                entry.entity = entry.loaded = None
            elif entry.entity is not None:
                entry.loaded = _Loaded.of(entry.entity)
            entry.change = None


# -- pure planning ------------------------------------------------------------------------


def _version(entity: Entity | None) -> int | None:
    if entity is None:
        return None
    field = type(entity).__dynaorm__.version
    return None if field is None else int(getattr(entity, field))


def _deleting(entry: _Entry) -> bool:
    return entry.change is not None and entry.change.kind == "delete"


def _changed_fields(entry: _Entry) -> list[str]:
    if entry.entity is None or entry.loaded is None:
        return []
    now, then = entry.entity.model_dump(), entry.loaded.values
    return [name for name in now if now[name] != then.get(name)]


def _dirty(entry: _Entry) -> bool:
    return bool(_changed_fields(entry))


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


def _checked(action: Action, check: Condition | None) -> Action:
    """Mark an action whose failure means a lost optimistic-locking race."""
    if check is None:
        return action
    return replace(action, purpose=replace(action.purpose, kind="version"))


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
) -> _Step:
    info = type(entity).__dynaorm__
    version = _version(entity)
    check = None if create or version is None else version_condition(info, version)
    if not create:
        condition = and_(condition, check, _unchanged(info, old))
    action = put_action(
        _with_version(entity, version), name, must_not_exist=create, condition=condition
    )
    guards = guard_actions(info, name, action.purpose.key, old, unique_values(entity))
    return _Step([_checked(action, check), *guards], _bump(entity, version))


def _plan_delete(
    key: Key,
    name: str,
    condition: Condition | None,
    version: int | None,
    old: dict[str, Any] | None,
) -> _Step:
    info = key.entity.__dynaorm__
    check = _version_check(info, version)
    unchanged = _unchanged(info, old) if old is not None else None
    action = delete_action(key, name, condition=and_(condition, check, unchanged))
    guards = guard_actions(info, name, action.purpose.key, old, None) if old else []
    return _Step([_checked(action, check), *guards])


def _with_keys(update: Update, to_set: Mapping[str, str], to_remove: list[str]) -> Update:
    for attribute, value in to_set.items():
        update = update.set(Path(attribute), value)
    return update.remove(*(Path(attribute) for attribute in to_remove))


def _plan_update(
    key: Key,
    name: str,
    changes: FieldChanges,
    condition: Condition | None,
    entity: Entity | None,
    loaded: _Loaded | None,
) -> _Step:
    info = key.entity.__dynaorm__
    touched = changes.touched_fields()
    if info.version is not None and info.version in touched:
        raise _version_field(info, key)
    update, new_values = build_update(info, changes)
    current = loaded.values if loaded else entity.model_dump() if entity else None
    schema = schema_of(info.table)
    update = _with_keys(update, *derived_key_update(schema, info, touched, new_values, current))
    version = loaded.version if loaded else _version(entity)
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
    return _Step([_checked(action, check), *guards], _bump(entity, version))


def _plan_dirty(entry: _Entry, name: str) -> _Step | None:
    """The writes that make the stored item match a tracked object, if it changed."""
    entity, loaded = entry.entity, entry.loaded
    if entity is None or loaded is None:
        return None
    changed = _changed_fields(entry)
    if not changed:
        return None
    info = type(entity).__dynaorm__
    if info.version is not None and info.version in changed:
        raise _version_field(info, loaded.key)
    if entity.get_key() != loaded.key:
        return _plan_move(entity, loaded, name)
    return _plan_changed_fields(entity, loaded, changed, name)


def _plan_changed_fields(entity: Entity, loaded: _Loaded, changed: list[str], name: str) -> _Step:
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
    return _Step([_checked(action, check), *guards], _bump(entity, loaded.version))


def _plan_move(entity: Entity, loaded: _Loaded, name: str) -> _Step:
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
    return _Step([_checked(delete, check), put, *guards], _bump(entity, loaded.version))


# -- the transaction as a whole -------------------------------------------------------------


_KeyNames = Mapping[str, tuple[str, str]]  # physical table -> (partition, sort) attribute


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
    size = sum(map(_size, actions))
    if size > MAX_BYTES:
        raise TransactionTooLarge(
            f"this commit carries {size:,} bytes; one TransactWriteItems takes at most "
            f"{MAX_BYTES:,} (4 MB). Nothing was sent: split the work",
            entity=actions[0].purpose.entity,
        )


def _conflicted(error: TransactionCanceled) -> bool:
    codes = {reason.get("Code") for reason in error.reasons if reason}
    return _CONFLICT in codes and "ConditionalCheckFailed" not in codes
