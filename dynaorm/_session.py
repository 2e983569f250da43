"""Session: CRUD, queries, collections and batches over one transport."""

from __future__ import annotations

import dataclasses
import functools
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar, overload

from dynaorm._batch import BatchRunner
from dynaorm._bulk import BulkResult, run_bulk
from dynaorm._codec import decode_item
from dynaorm._collections import CollectionQuery, CollectionResult
from dynaorm._compiler import schema_of
from dynaorm._conditions import Condition
from dynaorm._crypto import refuse_encrypted_projection
from dynaorm._cursor import Secrets, sealer, secrets_of
from dynaorm._ddl import create_table_request, describe_drift, time_to_live_request
from dynaorm._entity import Entity, EntityIndex, Key
from dynaorm._expressions import Path, Placeholders
from dynaorm._io import Steps, drive
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
from dynaorm._query import Query, Scan
from dynaorm._retry import send_transaction
from dynaorm._schema import Collection, Index, Table
from dynaorm._telemetry import Telemetry
from dynaorm._transport import RequestEvent, Transport
from dynaorm._unit_of_work import UnitOfWork
from dynaorm._update import projection_expression
from dynaorm._writes import Action, FieldChanges
from dynaorm.errors import (
    ConditionFailed,
    DynaormError,
    ExpressionError,
    ServiceError,
    TransactionCanceled,
    WriteOutcomeUnknown,
)

__all__ = ["CollectionResult", "Session"]

E = TypeVar("E", bound=Entity)
T = TypeVar("T")


class Session:
    """Reads and writes entities. Safe to share across threads.

    Region, endpoint and credentials come from the arguments or the usual AWS
    environment; `table_prefix` (or `DYNAMODB_TABLE_PREFIX`) prefixes physical table
    names; `cursor_secret` (bytes, or a list of them newest first) seals pagination
    cursors with authenticated encryption; `telemetry=True` (or a `Telemetry`) traces
    and measures every request with OpenTelemetry.
    """

    def __init__(
        self,
        *,
        region: str | None = None,
        endpoint_url: str | None = None,
        table_prefix: str | None = None,
        cursor_secret: Secrets = None,
        aws_access_key_id: str | None = None,
        aws_secret_access_key: str | None = None,
        aws_session_token: str | None = None,
        max_retry_attempts: int | None = None,
        batch_attempts: int = 8,
        on_request: Callable[[RequestEvent], None] | None = None,
        telemetry: Telemetry | bool = False,
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
        for secret in secrets_of(cursor_secret):  # refuse a bad secret or a missing extra now
            sealer(secret)
        if on_request is not None:
            self._transport.add_observer(on_request)
        if telemetry:
            # Telemetry belongs to the transport: a transport shared by sessions is traced
            # for all of them.
            (Telemetry() if telemetry is True else telemetry).instrument(self._transport)
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

    def _drive(self, steps: Steps[T]) -> T:
        """Run the steps of a read or a write on this session's transport."""
        return drive(steps, self._transport)

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
            refuse_encrypted_projection(entity.__dynaorm__, projection)
            request["ProjectionExpression"] = projection_expression(projection, ph)
            request.update(ph.to_request())
        item = self._call("GetItem", request, entity=entity, key=key).get("Item")
        if item is None:
            return None
        return self._decode_as(entity, item, projection)  # type: ignore[return-value]

    def put(self, entity: Entity, *, condition: Condition | None = None) -> None:
        """Write the whole item (replacing any), keeping version and unique guarantees."""
        self._run(self._plan_put(entity, create=False, condition=condition))

    def create(self, entity: Entity, *, condition: Condition | None = None) -> None:
        """Write a new item; `ItemAlreadyExists` if one with the same key exists."""
        self._run(self._plan_put(entity, create=True, condition=condition))

    def _plan_put(self, entity: Entity, *, create: bool, condition: Condition | None) -> Step:
        info = type(entity).__dynaorm__
        # Guards move from the unique values stored now (a consistent read), never from
        # values of an object that may have been edited since it was read.
        loaded = self._read(entity.get_key()) if info.unique and not create else None
        name = self.table_name(info.table)
        return plan_put(entity, name, condition, create=create, loaded=loaded)

    def _read(self, key: Key) -> Loaded | None:
        current = self.get(key.entity, consistent=True, **key.slots)
        return None if current is None else Loaded.of(current)

    def _basis(self, key: Key, entity: Entity | None, *, read: bool) -> Loaded | None:
        """What a write of `entity` (or of a bare key) is planned from.

        The object passed in (its version is the one checked, its fields the sources of
        rebuilt index keys); with `read`, unique values as stored now (None: no item).
        """
        basis = None if entity is None else Loaded.of(entity)
        if not read:
            return basis
        stored = self._read(key)
        if stored is None or basis is None:
            return stored
        return dataclasses.replace(basis, unique=stored.unique)

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
        composite: Mapping[str, Any] | None = None,
    ) -> E:
        """Change some attributes of an existing item and return the updated entity.

        An entity passed in is refreshed from the stored item the update produced. With a
        key, an update that rebuilds an index key takes the stored values of that index's
        other slot fields in `composite` (the update requires them still stored).
        """
        key = target.get_key() if isinstance(target, Entity) else target
        info = key.entity.__dynaorm__
        entity = target if isinstance(target, Entity) else None
        refuse_composite_with_entity(entity, composite)
        changes = FieldChanges(
            set or {}, add or {}, list(remove), append or {}, delete or {}, if_not_exists or {}
        ).named(info)
        moved = {f for group in info.unique for f in group} & changes.touched_fields()
        basis = self._basis(key, entity, read=bool(moved))
        if moved and basis is None:
            raise ConditionFailed(f"{info.name} {key!r} does not exist", entity=info.name, key=key)
        name = self.table_name(info.table)
        step = plan_update(key, name, changes, condition, basis, entity, composite)
        item = self._run(step)
        if item is None:  # sent as a transaction, which returns no item: read it
            result = self.get(key.entity, consistent=True, **key.slots)
        else:
            result = self._decode_as(key.entity, item, None)  # type: ignore[assignment]
        assert isinstance(result, Entity)
        if entity is not None:
            refresh_from(entity, result)
        return result  # type: ignore[return-value]

    def delete(self, target: Entity | Key, *, condition: Condition | None = None) -> None:
        """Delete the item (no error if it does not exist, unless a condition says so)."""
        key = target.get_key() if isinstance(target, Entity) else target
        info = key.entity.__dynaorm__
        entity = target if isinstance(target, Entity) else None
        basis = self._basis(key, entity, read=bool(info.unique))
        if info.unique and basis is None:
            return  # nothing stored: nothing to delete, no guard to release
        self._run(plan_delete(key, self.table_name(info.table), condition, basis))

    def _run(self, step: Step) -> dict[str, Any] | None:
        """Send a planned step: one action alone, several as one transaction.

        Returns the stored item a single write reports (an update's new item), if any.
        """
        item = None
        if len(step.actions) == 1:
            item = self._single(step.actions[0])
        else:
            self._transact(step.actions)
        if step.on_success is not None:
            step.on_success()
        return item

    def _single(self, action: Action) -> dict[str, Any] | None:
        operation, request = single_request(action)
        purpose = action.purpose
        try:
            response = self._call(operation, request, entity=purpose.entity, key=purpose.key)
        except ConditionFailed as error:
            outcome = single_outcome(action, error)
            if isinstance(outcome, (ConditionFailed, WriteOutcomeUnknown)):
                raise outcome from error
            return outcome
        attributes: dict[str, Any] | None = response.get("Attributes")
        return attributes

    def _transact(self, actions: list[Action]) -> None:
        request = transaction_request(actions, uuid.uuid4().hex)
        try:
            send_transaction(
                lambda: self._call("TransactWriteItems", request, entity=actions[0].purpose.entity),
                self._batches.retry,
            )
        except TransactionCanceled as error:
            mapped = transaction_error(error, actions)
            if mapped is error:
                raise
            raise mapped from error

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
        return self.collection_query(collection, **slots).all()

    def collection_query(self, collection: Collection, **slots: Any) -> CollectionQuery:
        """A collection read to order, bound, page or iterate lazily:
        `session.collection_query(feed, user_id="u1").reverse().page(20, cursor)`."""
        return CollectionQuery(self, collection, dict(slots))

    def batch_get(self, keys: Iterable[Key], *, consistent: bool = False) -> list[Entity]:
        """The entities found for `keys` (any mix of types), in the order of `keys`.

        Keys still unread after retries raise `BatchIncomplete`, whose `items` holds every
        entity that was read and `unprocessed` / `reasons` the keys that were not and why.
        """
        return self._batches.get(list(keys), consistent=consistent)

    def batch_write(self, put: Iterable[Entity] = (), delete: Iterable[Entity | Key] = ()) -> None:
        """Put and delete many items in chunks of 25, retrying what DynamoDB leaves over.

        Every chunk is sent whatever happened to the others; if any request is still not
        written, `BatchIncomplete` lists `written`, `unprocessed` and `reasons`.
        """
        self._batches.write(list(put), list(delete))

    def bulk(
        self,
        create: Iterable[Entity] = (),
        put: Iterable[Entity] = (),
        delete: Iterable[Entity | Key] = (),
        *,
        max_concurrency: int = 8,
    ) -> BulkResult:
        """Create, put and delete many items, each as its own conditioned write.

        Unlike `batch_write`, every guarantee holds (versions, unique guards, existence):
        each item goes through `create`/`put`/`delete`, at most `max_concurrency` at a
        time. Throttled items are retried with backoff. Never raises for an item: the
        result's `written` and `failed` (item, error) hold every item given.
        """
        jobs: list[tuple[Entity | Key, Callable[[], None]]] = []
        jobs += [(item, functools.partial(self.create, item)) for item in create]
        jobs += [(item, functools.partial(self.put, item)) for item in put]
        jobs += [(item, functools.partial(self.delete, item)) for item in delete]
        return run_bulk(jobs, max_concurrency=max_concurrency, retry=self._batches.retry)
