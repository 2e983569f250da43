"""The session's operations written once, as steps: `Session` drives them blocking,
`AsyncSession` awaits them. Nothing here sends a request or sleeps (see `_io`)."""

from __future__ import annotations

import dataclasses
import functools
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from dynaorm._batch import BatchRunner
from dynaorm._codec import decode_item
from dynaorm._compiler import schema_of
from dynaorm._conditions import Condition
from dynaorm._crypto import refuse_encrypted_projection
from dynaorm._cursor import sealer, secrets_of
from dynaorm._ddl import create_table_request, describe_drift, time_to_live_request
from dynaorm._entity import Entity, Key
from dynaorm._expressions import Path, Placeholders
from dynaorm._io import Call, Sleep, Steps
from dynaorm._items import entity_from_item
from dynaorm._outcomes import (
    single_outcome,
    single_request,
    transaction_error,
    transaction_request,
)
from dynaorm._planner import (
    Loaded,
    Step,
    plan_delete,
    plan_put,
    plan_update,
    refresh_from,
    refuse_composite_with_entity,
)
from dynaorm._retry import send_transaction
from dynaorm._schema import Table
from dynaorm._telemetry import Telemetry
from dynaorm._update import projection_expression
from dynaorm._writes import Action, FieldChanges
from dynaorm.errors import (
    ConditionFailed,
    DynaormError,
    ServiceError,
    TransactionCanceled,
    WriteOutcomeUnknown,
)

if TYPE_CHECKING:
    from dynaorm._cursor import Secrets
    from dynaorm._reporting import RequestEvent
    from dynaorm._transports import AsyncTransportLike, TransportLike

__all__ = ["Changes", "SessionCore"]

E = TypeVar("E", bound=Entity)


@dataclasses.dataclass(frozen=True)
class Changes:
    """The arguments of an update, as `Session.update` and the unit of work take them."""

    set: Mapping[str | Path, Any] | None = None
    add: Mapping[str | Path, Any] | None = None
    remove: Iterable[str | Path] = ()
    append: Mapping[str | Path, Any] | None = None
    delete: Mapping[str | Path, Any] | None = None
    if_not_exists: Mapping[str | Path, Any] | None = None

    def named(self, info: Any) -> FieldChanges:
        return FieldChanges(
            self.set or {},
            self.add or {},
            list(self.remove),
            self.append or {},
            self.delete or {},
            self.if_not_exists or {},
        ).named(info)


class SessionCore:
    """Steps of every single-item operation and table operation of a session.

    A host (a shell) supplies `table_name(table)` and `_batches` (whose `retry` budget
    also paces transaction retries); each public method of the shell is one line that
    drives a `*_steps` generator from here.
    """

    _batches: BatchRunner

    def _attach(
        self,
        transport: TransportLike | AsyncTransportLike,
        *,
        cursor_secret: Secrets,
        batch_attempts: int,
        on_request: Callable[[RequestEvent], None] | None,
        telemetry: Telemetry | bool,
    ) -> None:
        """What both shells do with their transport and options once it is built."""
        self.cursor_secret = cursor_secret
        for secret in secrets_of(cursor_secret):  # refuse a bad secret or a missing extra now
            sealer(secret)
        if on_request is not None:
            transport.add_observer(on_request)
        if telemetry:
            # Telemetry belongs to the transport: a transport shared by sessions is traced
            # for all of them.
            (Telemetry() if telemetry is True else telemetry).instrument(transport)
        # The batch runner's retry budget also paces transaction and bulk retries.
        self._batches = BatchRunner(self, attempts=batch_attempts)

    def table_name(self, table: Table) -> str:
        raise NotImplementedError

    def _decode_as(
        self, entity: type[Entity], item: dict[str, Any], projection: Any
    ) -> Entity | dict[str, Any]:
        return _decode_as(entity, item, projection)

    # -- tables -----------------------------------------------------------------------

    def _create_table_steps(self, table: Table, *, wait: bool, exists_ok: bool) -> Steps[None]:
        schema = schema_of(table)
        name = self.table_name(table)
        try:
            yield Call("CreateTable", create_table_request(schema, name))
        except ServiceError as e:
            if not (exists_ok and e.aws_code == "ResourceInUseException"):
                raise
        if wait:
            yield from self._wait_steps(name)
        ttl = time_to_live_request(schema, name)
        if ttl is not None:
            yield from self._enable_ttl_steps(ttl)

    def _wait_steps(self, name: str, timeout: float = 300.0, interval: float = 0.2) -> Steps[None]:
        """Poll DescribeTable until the table and every GSI are ACTIVE."""
        deadline = time.monotonic() + timeout
        while True:
            table = (yield Call("DescribeTable", {"TableName": name}))["Table"]
            statuses = [table.get("TableStatus")] + [
                g.get("IndexStatus") for g in table.get("GlobalSecondaryIndexes", [])
            ]
            if all(status == "ACTIVE" for status in statuses):
                return
            if time.monotonic() > deadline:
                raise ServiceError(
                    f"table {name!r} is not ACTIVE after {timeout:.0f} s: {statuses}",
                    operation="DescribeTable",
                    table=name,
                )
            yield Sleep(interval)

    def _enable_ttl_steps(self, request: dict[str, Any]) -> Steps[None]:
        try:
            yield Call("UpdateTimeToLive", request)
        except ServiceError as e:
            # Enabling TTL twice is refused with "TimeToLive is already enabled".
            if "already enabled" not in e.message:
                raise

    def _delete_table_steps(self, table: Table) -> Steps[None]:
        yield Call("DeleteTable", {"TableName": self.table_name(table)})

    def _drift_steps(self, table: Table) -> Steps[list[str]]:
        response = yield Call("DescribeTable", {"TableName": self.table_name(table)})
        return describe_drift(schema_of(table), response["Table"])

    def _health_steps(self, table: Table | None) -> Steps[bool]:
        try:
            if table is None:
                yield Call("ListTables", {"Limit": 1})
                return True
            response = yield Call("DescribeTable", {"TableName": self.table_name(table)})
        except DynaormError:
            return False
        return bool(response["Table"].get("TableStatus") == "ACTIVE")

    # -- single items -----------------------------------------------------------------

    def _get_steps(
        self,
        entity: type[E],
        slots: dict[str, Any],
        *,
        consistent: bool = False,
        projection: Iterable[Path | str] | None = None,
    ) -> Steps[E | None]:
        key = entity.key(**slots)
        request: dict[str, Any] = {
            "TableName": self.table_name(entity.__dynaorm__.table),
            "Key": key.to_dynamodb(),
        }
        if consistent:
            request["ConsistentRead"] = True
        if projection is not None:
            ph = Placeholders()
            refuse_encrypted_projection(entity.__dynaorm__, projection)
            request["ProjectionExpression"] = projection_expression(projection, ph)
            request.update(ph.to_request())
        name = entity.__dynaorm__.name
        item = (yield Call("GetItem", request, entity=name, key=key)).get("Item")
        if item is None:
            return None
        return _decode_as(entity, item, projection)  # type: ignore[return-value]

    def _put_steps(
        self, entity: Entity, *, create: bool, condition: Condition | None
    ) -> Steps[None]:
        info = type(entity).__dynaorm__
        # Guards move from the unique values stored now (a consistent read), never from
        # values of an object that may have been edited since it was read.
        loaded = None
        if info.unique and not create:
            loaded = yield from self._read_steps(entity.get_key())
        name = self.table_name(info.table)
        yield from self._run_steps(plan_put(entity, name, condition, create=create, loaded=loaded))

    def _read_steps(self, key: Key) -> Steps[Loaded | None]:
        current = yield from self._get_steps(key.entity, dict(key.slots), consistent=True)
        return None if current is None else Loaded.of(current)

    def _basis_steps(self, key: Key, entity: Entity | None, *, read: bool) -> Steps[Loaded | None]:
        """What a write of `entity` (or of a bare key) is planned from.

        The object passed in (its version is the one checked, its fields the sources of
        rebuilt index keys); with `read`, unique values as stored now (None: no item).
        """
        basis = None if entity is None else Loaded.of(entity)
        if not read:
            return basis
        stored = yield from self._read_steps(key)
        if stored is None or basis is None:
            return stored
        return dataclasses.replace(basis, unique=stored.unique)

    def _update_steps(
        self,
        target: E | Key,
        changes: Changes,
        condition: Condition | None,
        composite: Mapping[str, Any] | None,
    ) -> Steps[E]:
        key = target.get_key() if isinstance(target, Entity) else target
        info = key.entity.__dynaorm__
        entity = target if isinstance(target, Entity) else None
        refuse_composite_with_entity(entity, composite)
        named = changes.named(info)
        moved = {f for group in info.unique for f in group} & named.touched_fields()
        basis = yield from self._basis_steps(key, entity, read=bool(moved))
        if moved and basis is None:
            raise ConditionFailed(f"{info.name} {key!r} does not exist", entity=info.name, key=key)
        name = self.table_name(info.table)
        item = yield from self._run_steps(
            plan_update(key, name, named, condition, basis, entity, composite)
        )
        result: Entity | dict[str, Any] | None
        if item is None:  # sent as a transaction, which returns no item: read it
            result = yield from self._get_steps(key.entity, dict(key.slots), consistent=True)
        else:
            result = _decode_as(key.entity, item, None)
        assert isinstance(result, Entity)
        if entity is not None:
            refresh_from(entity, result)
        return result  # type: ignore[return-value]

    def _delete_steps(self, target: Entity | Key, condition: Condition | None) -> Steps[None]:
        key = target.get_key() if isinstance(target, Entity) else target
        info = key.entity.__dynaorm__
        entity = target if isinstance(target, Entity) else None
        basis = yield from self._basis_steps(key, entity, read=bool(info.unique))
        if info.unique and basis is None:
            return  # nothing stored: nothing to delete, no guard to release
        yield from self._run_steps(plan_delete(key, self.table_name(info.table), condition, basis))

    def _bulk_jobs(
        self, create: Iterable[Entity], put: Iterable[Entity], delete: Iterable[Entity | Key]
    ) -> list[tuple[Entity | Key, Callable[[], Steps[None]]]]:
        """The writes of `bulk`: each item and how to start its steps afresh."""
        jobs: list[tuple[Entity | Key, Callable[[], Steps[None]]]] = []
        for item in create:
            jobs.append(
                (item, functools.partial(self._put_steps, item, create=True, condition=None))
            )
        for item in put:
            jobs.append(
                (item, functools.partial(self._put_steps, item, create=False, condition=None))
            )
        for target in delete:
            jobs.append((target, functools.partial(self._delete_steps, target, None)))
        return jobs

    # -- planned steps ----------------------------------------------------------------

    def _run_steps(self, step: Step) -> Steps[dict[str, Any] | None]:
        """Send a planned step: one action alone, several as one transaction.

        Returns the stored item a single write reports (an update's new item), if any.
        """
        item = None
        if len(step.actions) == 1:
            item = yield from self._single_steps(step.actions[0])
        else:
            yield from self._transact_steps(step.actions)
        if step.on_success is not None:
            step.on_success()
        return item

    def _single_steps(self, action: Action) -> Steps[dict[str, Any] | None]:
        operation, request = single_request(action)
        purpose = action.purpose
        try:
            response = yield Call(operation, request, entity=purpose.entity, key=purpose.key)
        except ConditionFailed as error:
            outcome = single_outcome(action, error)
            if isinstance(outcome, (ConditionFailed, WriteOutcomeUnknown)):
                raise outcome from error
            return outcome
        attributes: dict[str, Any] | None = response.get("Attributes")
        return attributes

    def _transact_steps(self, actions: list[Action]) -> Steps[None]:
        request = transaction_request(actions, uuid.uuid4().hex)
        call = Call("TransactWriteItems", request, entity=actions[0].purpose.entity)
        try:
            yield from send_transaction(call, self._batches.retry)
        except TransactionCanceled as error:
            mapped = transaction_error(error, actions)
            if mapped is error:
                raise
            raise mapped from error


def _decode_as(
    entity: type[Entity], item: dict[str, Any], projection: Any
) -> Entity | dict[str, Any]:
    schema = schema_of(entity.__dynaorm__.table)
    if projection is not None:
        derived = schema.entities[entity.__dynaorm__.name].derived
        return decode_item({k: v for k, v in item.items() if k not in derived})
    decoded = entity_from_item(schema, item, expected=entity)
    assert decoded is not None
    return decoded
