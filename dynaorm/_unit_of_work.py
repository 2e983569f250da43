"""Unit of work: identity map, dirty tracking, commit as one TransactWriteItems."""

from __future__ import annotations

import enum
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, cast

from dynaorm._compiler import schema_of
from dynaorm._conditions import Condition, build_condition
from dynaorm._core import Changes
from dynaorm._entity import Entity, Key
from dynaorm._expressions import Path, Placeholders
from dynaorm._io import Call, Steps
from dynaorm._items import entity_from_item
from dynaorm._outcomes import transaction_error, transaction_request
from dynaorm._planner import (
    Loaded,
    Step,
    plan_delete,
    plan_update,
    refresh_from,
    refuse_composite_with_entity,
    version_of,
)
from dynaorm._retry import Backoff, send_transaction
from dynaorm._transaction_plan import (
    MAX_ACTIONS,
    Change,
    Entry,
    Ident,
    changed_fields,
    deleting,
    dirty,
    plan_commit,
)
from dynaorm._writes import Action, Expect, Purpose
from dynaorm.errors import (
    ConditionFailed,
    ExpressionError,
    TransactionCanceled,
    TransactionTooLarge,
    UnitOfWorkClosed,
)

if TYPE_CHECKING:
    from dynaorm._core import SessionCore
    from dynaorm._session import Session

__all__ = ["UnitOfWork", "UnitOfWorkCore", "UnitOfWorkState"]

E = TypeVar("E", bound=Entity)

# Retried with the same ClientRequestToken: another transaction held one of our items.


class UnitOfWorkState(enum.Enum):
    """Lifecycle of a unit of work; only ACTIVE accepts reads and changes."""

    ACTIVE = "active"
    COMMITTED = "committed"
    ROLLED_BACK = "rolled back"
    FAILED = "failed"


class UnitOfWorkCore:
    """A unit of work's logic, written once: reads, changes and the commit as steps.

    `UnitOfWork` (blocking) and `AsyncUnitOfWork` drive these steps on their session;
    `add`, `check` and `rollback` never send anything, so both shells share them as is.
    """

    def __init__(
        self,
        session: SessionCore,
        *,
        attempts: int = 5,
        base_delay: float = 0.05,
        max_delay: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._session = session
        self.retry = Backoff(
            attempts=attempts, base_delay=base_delay, max_delay=max_delay, sleep=sleep
        )
        self.token: str | None = None  # ClientRequestToken of the commit, once sent
        self._state = UnitOfWorkState.ACTIVE
        self._entries: dict[Ident, Entry] = {}
        self._objects: dict[int, Ident] = {}  # id(entity) -> where it is tracked

    @property
    def state(self) -> UnitOfWorkState:
        return self._state

    # -- reads --------------------------------------------------------------------------

    def _get_steps(self, entity: type[E], slots: dict[str, Any]) -> Steps[E | None]:
        self._require_active()
        key = entity.key(**slots)
        ident = self._ident(key)
        entry = self._entries.get(ident)
        if entry is not None and (entry.entity is not None or deleting(entry)):
            return None if deleting(entry) else cast(E, entry.entity)
        found = yield from self._session._get_steps(entity, slots, consistent=True)
        if found is not None:
            self._track(ident, key, found)
        return found

    def _get_many_steps(self, keys: Iterable[Key]) -> Steps[list[Entity]]:
        self._require_active()
        wanted = list(keys)
        if len(wanted) > MAX_ACTIONS:
            raise TransactionTooLarge(
                f"get_many() got {len(wanted)} keys; one TransactGetItems reads at most "
                f"{MAX_ACTIONS} items (a consistent snapshot cannot be split)"
            )
        unread: dict[Ident, Key] = {}
        for key in wanted:
            entry = self._entries.get(self._ident(key))
            if entry is None or (entry.entity is None and not deleting(entry)):
                unread.setdefault(self._ident(key), key)
        if unread:
            yield from self._read_steps(unread)
        found: list[Entity] = []
        for key in wanted:
            entry = self._entries.get(self._ident(key))
            if entry is not None and entry.entity is not None and not deleting(entry):
                found.append(entry.entity)
        return found

    def _read_steps(self, unread: dict[Ident, Key]) -> Steps[None]:
        request = {
            "TransactItems": [
                {"Get": {"TableName": ident[0], "Key": key.to_dynamodb()}}
                for ident, key in unread.items()
            ]
        }
        first = next(iter(unread.values())).entity.__dynaorm__.name
        response = yield from self._send_steps("TransactGetItems", request, entity=first)
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
        self._attach(ident, key, Change("add", entity, condition), entity)

    def _put_steps(self, entity: Entity, condition: Condition | None) -> Steps[None]:
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
            yield from self._get_steps(key.entity, dict(key.slots))
        self._attach(ident, key, Change("put", entity, condition), entity)

    def _delete_steps(self, target: Entity | Key, condition: Condition | None) -> Steps[None]:
        self._require_active()
        ident, key = self._locate(target)
        entry = self._entries.get(ident)
        change = entry.change if entry is not None else None
        if change is not None and change.kind == "delete" and condition is None:
            return  # deleting twice is deleting once
        self._refuse_conflict(ident, key, "delete", target)
        unique = bool(key.entity.__dynaorm__.unique)
        basis = yield from self._basis_steps(ident, key, target, read=unique)
        if basis is None and key.entity.__dynaorm__.unique:
            return  # nothing stored, so nothing to delete and no guards to release
        step = plan_delete(key, ident[0], condition, basis)
        self._attach(ident, key, Change("delete", step=step))

    def _update_steps(
        self,
        target: Entity | Key,
        changes: Changes,
        condition: Condition | None,
        composite: Mapping[str, Any] | None,
    ) -> Steps[None]:
        self._require_active()
        refuse_composite_with_entity(target if isinstance(target, Entity) else None, composite)
        ident, key = self._locate(target)
        self._refuse_conflict(ident, key, "update", target)
        info = key.entity.__dynaorm__
        named = changes.named(info)
        moved = {f for group in info.unique for f in group} & named.touched_fields()
        basis = yield from self._basis_steps(ident, key, target, read=bool(moved))
        if moved and basis is None:
            raise ConditionFailed(f"{info.name} {key!r} does not exist", entity=info.name, key=key)
        entry = self._entries.get(ident)
        owner = target if isinstance(target, Entity) else entry.entity if entry else None
        step = plan_update(key, ident[0], named, condition, basis, owner, composite)
        self._attach(ident, key, Change("update", step=step))

    def _basis_steps(
        self, ident: Ident, key: Key, target: Entity | Key, *, read: bool
    ) -> Steps[Loaded | None]:
        """The state a delete or update of `target` is planned from.

        A tracked item's snapshot; else the object passed in (its version is the one
        checked). With `read`, unique values come from a consistent read, never from
        an object that may have been edited locally (None: nothing is stored).
        """
        entry = self._entries.get(ident)
        entity = target if isinstance(target, Entity) else None
        tracked = entry is not None and (entity is None or entity is entry.entity)
        if entry is not None and entry.loaded is not None and tracked:
            return entry.loaded
        if read:
            if (yield from self._get_steps(key.entity, dict(key.slots))) is None:
                return None
            loaded = self._entries[ident].loaded
            assert loaded is not None
            if entity is None:
                return loaded
            return Loaded(key, entity.model_dump(), loaded.unique, version_of(entity))
        return None if entity is None else Loaded.of(entity)

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
        info = key.entity.__dynaorm__
        expect = Expect(info, None, {}, user=True)  # decodes the item a failed check found
        purpose = Purpose("check", info.name, (key.pk, key.sk), expect=expect)
        step = Step([Action("ConditionCheck", params, purpose)])
        self._attach(ident, key, Change("check", step=step))

    # -- lifecycle ----------------------------------------------------------------------

    def _commit_steps(self) -> Steps[None]:
        self._require_active()
        try:
            steps, actions = plan_commit(self._entries)
            if actions:
                yield from self._write_steps(actions)
        except BaseException:
            self._state = UnitOfWorkState.FAILED
            raise
        for step in steps:
            if step.on_success is not None:
                step.on_success()
        self._state = UnitOfWorkState.COMMITTED
        yield from self._refresh_steps([step.refresh for step in steps if step.refresh is not None])

    def _refresh_steps(self, targets: list[Entity]) -> Steps[None]:
        """Reload objects passed to update() from the stored items (one consistent read)."""
        if not targets:
            return
        keys = [target.get_key() for target in targets]
        gets = [{"TableName": self._ident(k)[0], "Key": k.to_dynamodb()} for k in keys]
        request = {"TransactItems": [{"Get": get} for get in gets]}
        name = type(targets[0]).__dynaorm__.name
        response = yield from self._send_steps("TransactGetItems", request, entity=name)
        for target, answer in zip(targets, response["Responses"], strict=True):
            item = answer.get("Item")
            if item is not None:
                schema = schema_of(type(target).__dynaorm__.table)
                stored = entity_from_item(schema, item, expected=type(target))
                assert stored is not None
                refresh_from(target, stored)

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

    def _ident(self, key: Key) -> Ident:
        return (self._session.table_name(key.entity.__dynaorm__.table), key.pk, key.sk)

    def _locate(self, target: Entity | Key) -> tuple[Ident, Key]:
        """Where a target lives: a tracked object by identity (its key may have changed)."""
        if isinstance(target, Entity):
            ident = self._objects.get(id(target))
            if ident is not None and self._entries[ident].entity is target:
                return ident, self._entries[ident].key
            target = target.get_key()
        return self._ident(target), target

    def _track(self, ident: Ident, key: Key, entity: Entity) -> None:
        entry = self._entries.setdefault(ident, Entry(key))
        entry.entity, entry.loaded = entity, Loaded.of(entity)
        self._objects[id(entity)] = ident

    def _attach(self, ident: Ident, key: Key, change: Change, entity: Entity | None = None) -> None:
        entry = self._entries.setdefault(ident, Entry(key))
        entry.change = change
        if entity is not None:
            entry.entity = entity
            self._objects[id(entity)] = ident

    def _refuse_moved(self, entity: Entity, ident: Ident) -> None:
        tracked = self._objects.get(id(entity))
        if tracked is not None and tracked != ident and self._entries[tracked].entity is entity:
            info = type(entity).__dynaorm__
            raise ExpressionError(
                f"{info.name} {self._entries[tracked].key!r} is tracked and its key fields "
                "changed; commit moves it (Delete + Put) without add() or put()",
                entity=info.name,
                key=self._entries[tracked].key,
            )

    def _refuse_conflict(self, ident: Ident, key: Key, kind: str, target: object) -> None:
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
        elif overrides and dirty(entry):
            reason = f"is tracked with unsaved changes to {changed_fields(entry)}"
        else:
            return
        raise ExpressionError(
            f"{name} {key!r} {reason}; a transaction takes one action per item, so {kind}() "
            "cannot be added",
            entity=name,
            key=key,
        )

    def _write_steps(self, actions: list[Action]) -> Steps[None]:
        self.token = uuid.uuid4().hex  # one per commit, the same on every retry of it
        request = transaction_request(actions, self.token)
        try:
            entity = actions[0].purpose.entity
            yield from self._send_steps("TransactWriteItems", request, entity=entity)
        except TransactionCanceled as error:
            mapped = transaction_error(error, actions)
            if mapped is error:
                raise
            raise mapped from error

    def _send_steps(
        self, operation: str, request: dict[str, Any], *, entity: str
    ) -> Steps[dict[str, Any]]:
        """Send, retrying transaction conflicts with exponential backoff and full jitter."""
        return send_transaction(Call(operation, request, entity=entity), self.retry)


class UnitOfWork(UnitOfWorkCore):
    """Collects reads and changes and commits them as one TransactWriteItems.

    Use it as a context manager (commit on a clean exit; if the block raises, nothing is
    sent) or call `commit()` / `rollback()`. Entities read with `get`/`get_many` are
    tracked: changed fields become an Update at commit. Nothing is sent before commit
    except reads. A unit of work belongs to one thread; its `Session` stays shareable.
    After commit, rollback or a failed commit it refuses all work (`UnitOfWorkClosed`).
    """

    def __init__(self, session: Session, **options: Any) -> None:
        super().__init__(session, **options)
        self._host = session

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

    def get(self, entity: type[E], **slots: Any) -> E | None:
        """The tracked entity with this key (one consistent read the first time), or None."""
        return self._host._drive(self._get_steps(entity, slots))

    def get_many(self, keys: Iterable[Key]) -> list[Entity]:
        """The entities found for `keys`, in key order, read as one consistent snapshot.

        Keys already known here answer from the identity map; the others are read with one
        TransactGetItems, so more than 100 keys are refused rather than split.
        """
        return self._host._drive(self._get_many_steps(keys))

    def put(self, entity: Entity, *, condition: Condition | None = None) -> None:
        """Write the whole item at commit, replacing any (version and guards kept)."""
        return self._host._drive(self._put_steps(entity, condition))

    def delete(self, target: Entity | Key, *, condition: Condition | None = None) -> None:
        """Delete the item at commit (with its unique guards; version-checked if loaded)."""
        return self._host._drive(self._delete_steps(target, condition))

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
        composite: Mapping[str, Any] | None = None,
    ) -> None:
        """An explicit update at commit, like `Session.update` (the object is not changed)."""
        changes = Changes(set, add, remove, append, delete, if_not_exists)
        return self._host._drive(self._update_steps(target, changes, condition, composite))

    def commit(self) -> None:
        """Send every change as one TransactWriteItems (nothing to do: nothing sent)."""
        return self._host._drive(self._commit_steps())
