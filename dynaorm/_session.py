"""Session: CRUD, queries, collections and batches over one transport."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar, overload

from dynaorm._batch import BatchRunner
from dynaorm._codec import decode_item
from dynaorm._compiler import schema_of
from dynaorm._conditions import Condition, and_
from dynaorm._ddl import create_table_request, describe_drift, time_to_live_request
from dynaorm._entity import Entity, EntityIndex, Key
from dynaorm._expressions import Path, Placeholders
from dynaorm._items import entity_from_item
from dynaorm._query import Query, Scan
from dynaorm._retry import send_transaction
from dynaorm._schema import Collection, Index, Table
from dynaorm._transport import RequestEvent, Transport
from dynaorm._unit_of_work import UnitOfWork
from dynaorm._update import key_condition_expression, projection_expression
from dynaorm._writes import (
    Action,
    FieldChanges,
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
    DynaormError,
    ExpressionError,
    ItemAlreadyExists,
    ServiceError,
    TransactionCanceled,
    VersionConflict,
)

__all__ = ["CollectionResult", "Session"]

E = TypeVar("E", bound=Entity)


class CollectionResult:
    """Typed lists per entity from one collection read: `result[User]` -> list[User]."""

    def __init__(self, collection: Collection) -> None:
        self._items: dict[type[Entity], list[Any]] = {e: [] for e in collection.entities}

    def __getitem__(self, entity: type[E]) -> list[E]:
        if entity not in self._items:
            raise KeyError(f"{entity.__name__} is not part of this collection")
        return self._items[entity]

    def _add(self, entity: Entity) -> None:
        bucket = self._items.get(type(entity))
        if bucket is not None:
            bucket.append(entity)

    def __repr__(self) -> str:
        counts = {e.__name__: len(v) for e, v in self._items.items()}
        return f"CollectionResult({counts})"


# The operation that sends one action on its own, outside a transaction.
_SINGLE_OPERATIONS = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem"}


class Session:
    """Reads and writes entities. Safe to share across threads.

    Region, endpoint and credentials come from the arguments or the usual AWS
    environment; `table_prefix` (or `DYNAMODB_TABLE_PREFIX`) prefixes physical table
    names; `cursor_secret` HMAC-signs pagination cursors.
    """

    def __init__(
        self,
        *,
        region: str | None = None,
        endpoint_url: str | None = None,
        table_prefix: str | None = None,
        cursor_secret: bytes | None = None,
        aws_access_key_id: str | None = None,
        aws_secret_access_key: str | None = None,
        aws_session_token: str | None = None,
        max_retry_attempts: int | None = None,
        batch_attempts: int = 8,
        on_request: Callable[[RequestEvent], None] | None = None,
        transport: Transport | None = None,
    ) -> None:
        self._transport = transport or Transport(
            region=region,
            endpoint_url=endpoint_url,
            table_prefix=table_prefix,
            aws_access_key_id=aws_access_key_id,
            aws_secret_access_key=aws_secret_access_key,
            aws_session_token=aws_session_token,
            max_retry_attempts=max_retry_attempts,
        )
        self.cursor_secret = cursor_secret
        if on_request is not None:
            self._transport.add_observer(on_request)
        self._batches = BatchRunner(self, attempts=batch_attempts)

    @classmethod
    def in_memory(cls, **options: Any) -> Session:
        """A session on moto's in-process DynamoDB (extra `memory`); data persists
        across calls within one process."""
        transport_options = {k: options.pop(k) for k in ("table_prefix", "region") if k in options}
        return cls(transport=Transport.in_memory(**transport_options), **options)

    # -- plumbing ---------------------------------------------------------------------

    @property
    def transport(self) -> Transport:
        return self._transport

    @property
    def stats(self) -> Any:
        """Calls and consumed capacity per operation."""
        return self._transport.stats

    def table_name(self, table: Table) -> str:
        """The physical name of `table` (with the session's prefix)."""
        return self._transport.table_name(table.name)

    def _call(
        self, operation: str, request: dict[str, Any], *, entity: Any = None, key: Any = None
    ) -> dict[str, Any]:
        name = entity if entity is None or isinstance(entity, str) else entity.__dynaorm__.name
        return self._transport.call(
            operation, request, table=request.get("TableName"), entity=name, key=key
        )

    def _decode_as(
        self, entity: type[Entity], item: dict[str, Any], projection: Any
    ) -> Entity | dict[str, Any]:
        schema = schema_of(entity.__dynaorm__.table)
        if projection is not None:
            derived = schema.entities[entity.__dynaorm__.name].derived
            return decode_item({k: v for k, v in item.items() if k not in derived})
        decoded = entity_from_item(schema, item, expected=entity)
        assert decoded is not None
        return decoded

    # -- tables -----------------------------------------------------------------------

    def create_table(self, table: Table, *, wait: bool = True, exists_ok: bool = False) -> None:
        """Create `table` from its compiled schema; wait until it and its GSIs are ACTIVE."""
        schema = schema_of(table)
        name = self.table_name(table)
        try:
            self._call("CreateTable", create_table_request(schema, name))
        except ServiceError as e:
            if not (exists_ok and e.aws_code == "ResourceInUseException"):
                raise
        if wait:
            self._wait_until_active(name)
        ttl = time_to_live_request(schema, name)
        if ttl is not None:
            self._enable_ttl(ttl)

    def _wait_until_active(self, name: str, timeout: float = 300.0, interval: float = 0.2) -> None:
        """Poll DescribeTable until the table and every GSI are ACTIVE."""
        deadline = time.monotonic() + timeout
        while True:
            table = self._call("DescribeTable", {"TableName": name})["Table"]
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
            time.sleep(interval)

    def _enable_ttl(self, request: dict[str, Any]) -> None:
        try:
            self._call("UpdateTimeToLive", request)
        except ServiceError as e:
            # Enabling TTL twice is refused with "TimeToLive is already enabled".
            if "already enabled" not in e.message:
                raise

    def delete_table(self, table: Table) -> None:
        self._call("DeleteTable", {"TableName": self.table_name(table)})

    def drift(self, table: Table) -> list[str]:
        """Differences between the compiled schema and the live table (empty: none)."""
        response = self._call("DescribeTable", {"TableName": self.table_name(table)})
        return describe_drift(schema_of(table), response["Table"])

    def health_check(self, table: Table | None = None) -> bool:
        """True when the endpoint answers and, if given, `table` is ACTIVE."""
        try:
            if table is None:
                self._call("ListTables", {"Limit": 1})
                return True
            response = self._call("DescribeTable", {"TableName": self.table_name(table)})
        except DynaormError:
            return False
        return bool(response["Table"].get("TableStatus") == "ACTIVE")

    # -- single items -----------------------------------------------------------------

    def get(
        self,
        entity: type[E],
        *,
        consistent: bool = False,
        projection: Iterable[Path | str] | None = None,
        **slots: Any,
    ) -> E | None:
        """The entity with this key, or None. With `projection`, a dict of those attributes."""
        key = entity.key(**slots)
        request: dict[str, Any] = {
            "TableName": self.table_name(entity.__dynaorm__.table),
            "Key": key.to_dynamodb(),
        }
        if consistent:
            request["ConsistentRead"] = True
        if projection is not None:
            ph = Placeholders()
            request["ProjectionExpression"] = projection_expression(projection, ph)
            request.update(ph.to_request())
        item = self._call("GetItem", request, entity=entity, key=key).get("Item")
        if item is None:
            return None
        return self._decode_as(entity, item, projection)  # type: ignore[return-value]

    def put(self, entity: Entity, *, condition: Condition | None = None) -> None:
        """Write the whole item (replacing any), keeping version and unique guarantees."""
        self._write(entity, must_not_exist=False, condition=condition)

    def create(self, entity: Entity, *, condition: Condition | None = None) -> None:
        """Write a new item; `ItemAlreadyExists` if one with the same key exists."""
        self._write(entity, must_not_exist=True, condition=condition)

    def _write(self, entity: Entity, *, must_not_exist: bool, condition: Condition | None) -> None:
        info = type(entity).__dynaorm__
        name = self.table_name(info.table)
        stored = entity
        expected = None
        if info.version is not None and not must_not_exist:
            expected = getattr(entity, info.version)
            condition = and_(condition, version_condition(info, expected))
        if info.version is not None:
            stored = entity.model_copy(update={info.version: getattr(entity, info.version) + 1})
        if not info.unique:
            action = put_action(stored, name, must_not_exist=must_not_exist, condition=condition)
            self._single(action, info.table, expected)
        else:
            old = None if must_not_exist else self._current_values(entity)
            if not must_not_exist and expected is None:
                # The guards are moved from the values read just now: the write must only
                # land if they still hold (or, if nothing was stored, nothing is yet).
                unchanged = (
                    condition_unchanged(info, old)
                    if old is not None
                    else Path(info.table.partition_key).not_exists()
                )
                condition = and_(condition, unchanged)
            action = put_action(
                stored, name, must_not_exist=must_not_exist, condition=condition
            ).checked(expected)
            guards = guard_actions(info, name, action.purpose.key, old, unique_values(entity))
            self._transact([action, *guards])
        if info.version is not None:
            setattr(entity, info.version, getattr(stored, info.version))

    def _current_values(self, entity: Entity | Key) -> dict[str, Any] | None:
        key = entity.get_key() if isinstance(entity, Entity) else entity
        current = self.get(key.entity, consistent=True, **key.slots)
        return None if current is None else unique_values(current)

    def update(
        self,
        target: E | Key,
        *,
        set: Mapping[str | Path, Any] | None = None,
        add: Mapping[str | Path, Any] | None = None,
        remove: Iterable[str | Path] = (),
        append: Mapping[str | Path, Any] | None = None,
        delete: Mapping[str | Path, Any] | None = None,
        if_not_exists: Mapping[str | Path, Any] | None = None,
        condition: Condition | None = None,
    ) -> E:
        """Change some attributes of an existing item and return the updated entity."""
        key = target.get_key() if isinstance(target, Entity) else target
        info = key.entity.__dynaorm__
        current = target.model_dump() if isinstance(target, Entity) else None
        changes = FieldChanges(
            set or {}, add or {}, list(remove), append or {}, delete or {}, if_not_exists or {}
        ).named(info)
        touched = changes.touched_fields()
        if info.version is not None and info.version in touched:
            raise ExpressionError(
                f"{info.name}.{info.version} is the version field; dynaorm increments it",
                entity=info.name,
                field=info.version,
            )
        update, new_values = build_update(info, changes)
        schema = schema_of(info.table)
        to_set, to_remove = derived_key_update(schema, info, touched, new_values, current)
        for attribute, value in to_set.items():
            update = update.set(Path(attribute), value)
        if to_remove:
            update = update.remove(*(Path(a) for a in to_remove))
        expected = None
        if info.version is not None:
            update = update.add(info.paths[info.version], 1)
            if isinstance(target, Entity):
                expected = getattr(target, info.version)
                condition = and_(condition, info.paths[info.version] == expected)
        name = self.table_name(info.table)
        moved = {f for group in info.unique for f in group} & touched
        if not moved:
            action = update_action(key, name, update, condition=condition)
            response = self._single(action, info.table, expected)
            result = self._decode_as(key.entity, response["Attributes"], None)
        else:
            result = self._update_with_guards(
                target, key, update, condition, new_values, moved, expected
            )
        if isinstance(target, Entity) and info.version is not None:
            setattr(target, info.version, getattr(result, info.version))
        return result  # type: ignore[return-value]

    def _update_with_guards(
        self,
        target: Entity | Key,
        key: Key,
        update: Any,
        condition: Condition | None,
        new_values: dict[str, Any],
        moved: set[str],
        expected: int | None,
    ) -> Entity:
        info = key.entity.__dynaorm__
        missing = sorted(moved - new_values.keys())
        if missing:
            raise ExpressionError(
                f"{info.name}: unique fields {missing} can only be changed with set=",
                entity=info.name,
                field=missing[0],
            )
        old = unique_values(target) if isinstance(target, Entity) else self._current_values(key)
        if old is None:
            raise ConditionFailed(f"{info.name} {key!r} does not exist", entity=info.name, key=key)
        new = {**old, **{k: v for k, v in new_values.items() if k in old}}
        name = self.table_name(info.table)
        action = update_action(
            key,
            name,
            update,
            condition=and_(condition, condition_unchanged(info, old)),
            return_values=False,
        )
        guards = guard_actions(info, name, action.purpose.key, old, new)
        self._transact([action.checked(expected), *guards])
        result = self.get(key.entity, consistent=True, **key.slots)
        assert result is not None
        return result

    def delete(self, target: Entity | Key, *, condition: Condition | None = None) -> None:
        """Delete the item (no error if it does not exist, unless a condition says so)."""
        key = target.get_key() if isinstance(target, Entity) else target
        info = key.entity.__dynaorm__
        expected = None
        if info.version is not None and isinstance(target, Entity):
            expected = getattr(target, info.version)
            condition = and_(condition, info.paths[info.version] == expected)
        name = self.table_name(info.table)
        if not info.unique:
            self._single(delete_action(key, name, condition=condition), info.table, expected)
            return
        old = unique_values(target) if isinstance(target, Entity) else self._current_values(key)
        if old is None:
            return
        condition = and_(condition, condition_unchanged(info, old))
        action = delete_action(key, name, condition=condition).checked(expected)
        guards = guard_actions(info, name, action.purpose.key, old, None)
        self._transact([action, *guards])

    def _single(self, action: Action, table: Table, expected: int | None) -> dict[str, Any]:
        """Send one conditional write; `expected` is the version it checks, if any."""
        params = dict(action.params)
        if "ConditionExpression" in params:
            params["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        purpose = action.purpose
        try:
            return self._call(
                _SINGLE_OPERATIONS[action.operation], params, entity=purpose.entity, key=purpose.key
            )
        except ConditionFailed as e:
            raise self._condition_error(e, action, table, expected) from e

    def _condition_error(
        self, error: ConditionFailed, action: Action, table: Table, expected: int | None
    ) -> ConditionFailed:
        purpose = action.purpose
        old = error.item
        current = entity_from_item(schema_of(table), old) if old else None
        context: dict[str, Any] = {
            "operation": error.operation,
            "table": error.table,
            "entity": purpose.entity,
            "key": purpose.key,
        }
        result: ConditionFailed
        if purpose.kind == "create" and old:
            result = ItemAlreadyExists(f"{purpose.entity} {purpose.key} already exists", **context)
        elif action.operation == "Update" and not old:
            result = ConditionFailed(
                f"{purpose.entity} {purpose.key} does not exist; update changes existing "
                "items only",
                **context,
            )
        elif expected is not None and _version_of(current) != expected:
            result = VersionConflict(
                f"{purpose.entity} {purpose.key} was changed by someone else since it was "
                "loaded (version check failed)",
                **context,
            )
        else:
            result = ConditionFailed(
                f"{purpose.entity} {purpose.key}: the condition of {action.operation} failed",
                **context,
            )
        result.item = current
        return result

    def _transact(self, actions: list[Action]) -> None:
        request = {
            "TransactItems": [{a.operation: a.params} for a in actions],
            "ClientRequestToken": uuid.uuid4().hex,
        }
        try:
            send_transaction(
                lambda: self._call("TransactWriteItems", request, entity=actions[0].purpose.entity),
                self._batches.retry,
            )
        except TransactionCanceled as e:
            raise cancellation_error(e, actions) from e

    def unit_of_work(self) -> UnitOfWork:
        """A unit of work: tracked reads and changes, committed as one TransactWriteItems."""
        return UnitOfWork(self)

    # -- reads of many items ----------------------------------------------------------

    @overload
    def query(self, target: type[E], **slots: Any) -> Query[E]: ...

    # Type checkers see `Post.by_topic` as the declared `Index`; at run time the class
    # attribute is the bound `EntityIndex`.
    @overload
    def query(self, target: EntityIndex | Index, **slots: Any) -> Query[Any]: ...

    def query(self, target: type[E] | EntityIndex | Index, **slots: Any) -> Query[Any]:
        """A query on an entity's primary key or on one of its indexes (`Post.by_topic`)."""
        if isinstance(target, Index):
            raise ExpressionError(
                f"{target!r} is not bound to an entity; query it through its entity "
                "class, e.g. session.query(Post.by_topic, topic=...)"
            )
        return Query(self, target, dict(slots))

    def scan(self, entity: type[E]) -> Scan[E]:
        """A scan of every item of one entity type."""
        return Scan(self, entity)

    def collection(self, collection: Collection, **slots: Any) -> CollectionResult:
        """Every item of the collection's entities in one partition: one Query per page."""
        first = collection.entities[0]
        info = first.__dynaorm__
        schema = schema_of(info.table)
        plan = schema.plan(first, {k: v for k, v in slots.items() if k in info.pk.fields})
        extra = sorted(set(slots) - set(info.pk.fields))
        if extra:
            raise ExpressionError(
                f"collection() takes the partition-key fields {list(info.pk.fields)}; "
                f"{extra} are not among them"
            )
        result = CollectionResult(collection)
        ph = Placeholders()
        base: dict[str, Any] = {
            "TableName": self.table_name(info.table),
            "KeyConditionExpression": key_condition_expression(
                plan.pk_attribute, plan.pk_value, None, None, (), ph
            ),
            **ph.to_request(),
        }
        start: dict[str, Any] | None = None
        while True:
            request = dict(base)
            if start is not None:
                request["ExclusiveStartKey"] = start
            response = self._call("Query", request, entity=first)
            for item in response.get("Items", []):
                entity = entity_from_item(schema, item)
                if entity is not None:
                    result._add(entity)
            start = response.get("LastEvaluatedKey")
            if start is None:
                return result

    def batch_get(self, keys: Iterable[Key], *, consistent: bool = False) -> list[Entity]:
        """The entities found for `keys` (any mix of types), in the order of `keys`."""
        return self._batches.get(list(keys), consistent=consistent)

    def batch_write(self, put: Iterable[Entity] = (), delete: Iterable[Entity | Key] = ()) -> None:
        """Put and delete many items in chunks of 25, retrying what DynamoDB leaves over."""
        self._batches.write(list(put), list(delete))


def _version_of(entity: Entity | None) -> int:
    """The stored version of an entity; an item that is not there has version 0."""
    if entity is None:
        return 0
    version = type(entity).__dynaorm__.version
    return int(getattr(entity, str(version)))
