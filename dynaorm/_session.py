"""Session: CRUD, queries, collections and batches over one transport."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar, overload

from dynaorm._bulk import BulkResult, run_bulk
from dynaorm._collections import CollectionQuery, CollectionResult
from dynaorm._conditions import Condition
from dynaorm._core import Changes, SessionCore
from dynaorm._cursor import Secrets
from dynaorm._entity import Entity, EntityIndex, Key
from dynaorm._expressions import Path
from dynaorm._io import Steps, drive
from dynaorm._query import Query, Scan
from dynaorm._reporting import RequestEvent
from dynaorm._schema import Collection, Index, Table
from dynaorm._telemetry import Telemetry
from dynaorm._transports import TransportLike, sync_transport
from dynaorm._unit_of_work import UnitOfWork
from dynaorm.errors import ExpressionError

__all__ = ["CollectionResult", "Session"]

E = TypeVar("E", bound=Entity)
T = TypeVar("T")


class Session(SessionCore):
    """Reads and writes entities. Safe to share across threads.

    Region, endpoint and credentials come from the arguments or the usual AWS
    environment; `table_prefix` (or `DYNAMODB_TABLE_PREFIX`) prefixes physical table
    names; `cursor_secret` (bytes, or a list of them newest first) seals pagination
    cursors with authenticated encryption; `telemetry=True` (or a `Telemetry`) traces
    and measures every request with OpenTelemetry. `transport` is a transport name
    ("direct", the default: dynaorm's own signed HTTP client; or "botocore") or an
    instance; the session's operations are the steps of `SessionCore`, which
    `AsyncSession` awaits instead.
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
        transport: TransportLike | str | None = None,
    ) -> None:
        self._transport: TransportLike
        if transport is None or isinstance(transport, str):
            self._transport = sync_transport(
                transport,
                region=region,
                endpoint_url=endpoint_url,
                table_prefix=table_prefix,
                aws_access_key_id=aws_access_key_id,
                aws_secret_access_key=aws_secret_access_key,
                aws_session_token=aws_session_token,
                max_retry_attempts=max_retry_attempts,
            )
        else:
            self._transport = transport
        self._attach(
            self._transport,
            cursor_secret=cursor_secret,
            batch_attempts=batch_attempts,
            on_request=on_request,
            telemetry=telemetry,
        )

    @classmethod
    def in_memory(cls, **options: Any) -> Session:
        """A session on moto's in-process DynamoDB (extra `memory`); data persists
        across calls within one process."""
        from dynaorm._transport import Transport  # noqa: PLC0415  (moto patches botocore)

        transport_options = {k: options.pop(k) for k in ("table_prefix", "region") if k in options}
        return cls(transport=Transport.in_memory(**transport_options), **options)

    # -- plumbing ---------------------------------------------------------------------

    @property
    def transport(self) -> TransportLike:
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
        """Run steps of the core on this session's transport."""
        return drive(steps, self._transport)

    # -- tables -----------------------------------------------------------------------

    def create_table(self, table: Table, *, wait: bool = True, exists_ok: bool = False) -> None:
        """Create `table` from its compiled schema; wait until it and its GSIs are ACTIVE."""
        return self._drive(self._create_table_steps(table, wait=wait, exists_ok=exists_ok))

    def _wait_until_active(self, name: str, timeout: float = 300.0, interval: float = 0.2) -> None:
        """Poll DescribeTable until the table and every GSI are ACTIVE."""
        return self._drive(self._wait_steps(name, timeout, interval))

    def delete_table(self, table: Table) -> None:
        return self._drive(self._delete_table_steps(table))

    def drift(self, table: Table) -> list[str]:
        """Differences between the compiled schema and the live table (empty: none)."""
        return self._drive(self._drift_steps(table))

    def health_check(self, table: Table | None = None) -> bool:
        """True when the endpoint answers and, if given, `table` is ACTIVE."""
        return self._drive(self._health_steps(table))

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
        steps = self._get_steps(entity, slots, consistent=consistent, projection=projection)
        return self._drive(steps)

    def put(self, entity: Entity, *, condition: Condition | None = None) -> None:
        """Write the whole item (replacing any), keeping version and unique guarantees."""
        return self._drive(self._put_steps(entity, create=False, condition=condition))

    def create(self, entity: Entity, *, condition: Condition | None = None) -> None:
        """Write a new item; `ItemAlreadyExists` if one with the same key exists."""
        return self._drive(self._put_steps(entity, create=True, condition=condition))

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
        changes = Changes(set, add, remove, append, delete, if_not_exists)
        return self._drive(self._update_steps(target, changes, condition, composite))

    def delete(self, target: Entity | Key, *, condition: Condition | None = None) -> None:
        """Delete the item (no error if it does not exist, unless a condition says so)."""
        return self._drive(self._delete_steps(target, condition))

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
        jobs = self._bulk_jobs(create, put, delete)
        retry = self._batches.retry
        return run_bulk(jobs, max_concurrency=max_concurrency, retry=retry, drive=self._drive)
