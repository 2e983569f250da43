"""Collections: every member entity of one partition, in key order, with pages and cursors.

`session.collection(c, **slots)` reads the whole partition into a `CollectionResult`;
`session.collection_query(c, **slots)` is the builder behind it: `.reverse()`, `.limit(n)`,
lazy iteration over entities of any member type, and `.page(n, cursor=...)` with the
same cursor guarantees as `Query.page` (sealed with `cursor_secret`, bound to the
collection, the partition and the direction, range-bound when unsealed).

The request is built by `collection_request` from a `CollectionPlan` alone (table or
index, partition attribute and value, sort attribute and per-member templates), so a
collection placed on a GSI plugs in by producing another plan.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

from dynaorm._compiler import schema_of
from dynaorm._cursor import decode_cursor, encode_cursor, fingerprint, string_key
from dynaorm._entity import SK_MAX_BYTES, Entity, EntityIndex
from dynaorm._expressions import Placeholders
from dynaorm._io import Steps
from dynaorm._items import entity_from_item, item_type
from dynaorm._keys import KeyTemplate
from dynaorm._pages import Pages, ReadHost, drain, fetch_page
from dynaorm._update import key_condition_expression
from dynaorm.errors import ExpressionError, InvalidCursor, KeyDecodingError

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self from Python 3.11

    from dynaorm._async_reads import AsyncReads
    from dynaorm._keys import KeyTemplate
    from dynaorm._schema import Collection, Table
    from dynaorm._session import Session

__all__ = [
    "AsyncCollectionQuery",
    "CollectionMember",
    "CollectionPage",
    "CollectionPlan",
    "CollectionQuery",
    "CollectionResult",
    "check_collection_resume_key",
    "collection_request",
    "plan_collection",
]

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

    def __len__(self) -> int:
        return sum(len(v) for v in self._items.values())

    def __repr__(self) -> str:
        counts = {e.__name__: len(v) for e, v in self._items.items()}
        return f"CollectionResult({counts})"


@dataclass(frozen=True)
class CollectionMember:
    """One member: its entity and the template of the sort attribute the query orders on."""

    entity: type[Entity]
    sk: KeyTemplate
    # The constant start of every sort key this member stores ("" when none).
    sk_prefix: str = ""


@dataclass(frozen=True)
class CollectionPlan:
    """Where a collection lives: everything `collection_request` needs, nothing more."""

    table: Table
    index_name: str | None
    pk_attribute: str
    pk_value: str
    sk_attribute: str
    members: tuple[CollectionMember, ...]
    # (type name, sort value) -> whether the item is a member's: its type and the shape
    # of its sort value (see `_compiler.CollectionPlan.accepts`).
    accepts: Callable[[str, str | None], bool] = field(repr=False, compare=False)

    @property
    def sk_prefix(self) -> str:
        """The sort-key prefix every member shares ("" reads the whole partition)."""
        prefix = self.members[0].sk_prefix
        for member in self.members[1:]:
            while not member.sk_prefix.startswith(prefix):
                prefix = prefix[:-1]
        return prefix

    @property
    def type_names(self) -> frozenset[str]:
        return frozenset(m.entity.__dynaorm__.name for m in self.members)


def plan_collection(collection: Collection, slots: Mapping[str, Any]) -> CollectionPlan:
    """The plan of a collection, on its members' primary key or on the one GSI its index
    members share (placed by the compiler), given the partition slots."""
    first = collection.entities[0]
    info = first.__dynaorm__
    extra = sorted(set(slots) - set(collection.slots))
    if extra:
        raise ExpressionError(
            f"collection() takes the partition-key fields {list(collection.slots)}; "
            f"{extra} are not among them"
        )
    placed = schema_of(info.table).plan_collection(collection, dict(slots))
    members = tuple(_member(m) for m in collection.members)
    return CollectionPlan(
        table=info.table,
        index_name=placed.index_name,
        pk_attribute=placed.pk_attribute,
        pk_value=placed.pk_value,
        sk_attribute=placed.sk_attribute,
        members=members,
        accepts=placed.accepts,
    )


def _member(member: type[Entity] | EntityIndex) -> CollectionMember:
    if not isinstance(member, EntityIndex):
        sk = member.__dynaorm__.sk
        return CollectionMember(member, sk, sk.prefix({}))
    info = member.entity.__dynaorm__
    # An index declared without sk stores the entity's type name as its sort value.
    sk = member.sk or KeyTemplate.parse(
        info.name, {}, entity=info.name, role=f"index {member.name} sk", max_bytes=SK_MAX_BYTES
    )
    return CollectionMember(member.entity, sk, sk.prefix({}))


def collection_request(
    plan: CollectionPlan,
    table_name: str,
    *,
    forward: bool = True,
    limit: int | None = None,
    exclusive_start_key: Mapping[str, Any] | None = None,
    consistent: bool = False,
) -> dict[str, Any]:
    """The Query request for one page of a collection, without sending anything.

    With several members the partition is read whole and foreign types are skipped when
    decoding (no filter, so `Limit` counts exactly the items returned).
    """
    ph = Placeholders()
    prefix = plan.sk_prefix
    request: dict[str, Any] = {
        "TableName": table_name,
        "KeyConditionExpression": key_condition_expression(
            plan.pk_attribute,
            plan.pk_value,
            plan.sk_attribute if prefix else None,
            "begins_with" if prefix else None,
            (prefix,) if prefix else (),
            ph,
        ),
    }
    if plan.index_name is not None:
        request["IndexName"] = plan.index_name
    if not forward:
        request["ScanIndexForward"] = False
    if consistent:
        request["ConsistentRead"] = True
    if limit is not None:
        request["Limit"] = limit
    if exclusive_start_key is not None:
        request["ExclusiveStartKey"] = dict(exclusive_start_key)
    request.update(ph.to_request())
    return request


def check_collection_resume_key(start: Mapping[str, Any], plan: CollectionPlan, name: str) -> None:
    """Bind an unsealed cursor's key to this collection's partition and member keys.

    The key must hold exactly the key attributes as strings, lie in this partition (and
    under the shared sort-key prefix), and be a key some member of the collection stores.
    """
    table = plan.table
    names = {table.partition_key, table.sort_key, plan.pk_attribute, plan.sk_attribute}
    values = string_key(start, names, f"collection {name}")
    if values[plan.pk_attribute] != plan.pk_value:
        raise InvalidCursor(
            "the cursor points into another partition", key=values[plan.pk_attribute]
        )
    sort = values[plan.sk_attribute]
    if not sort.startswith(plan.sk_prefix):
        raise InvalidCursor(
            f"the cursor's sort key {sort!r} is outside collection {name}", key=sort
        )
    for member in plan.members:
        info = member.entity.__dynaorm__
        try:
            info.pk.decode(values[table.partition_key])
            info.sk.decode(values[table.sort_key])
            member.sk.decode(sort)
        except KeyDecodingError:
            continue
        return
    raise InvalidCursor(
        f"the cursor's key is not the key of any member of collection {name}", key=sort
    )


@dataclass(frozen=True)
class CollectionPage:
    """One page of a collection: the entities in key order, typed lists, and the cursor."""

    items: list[Entity]
    result: CollectionResult
    cursor: str | None


@dataclass(frozen=True)
class _CollectionCore:
    """What a collection read is, whichever shell sends it: builders, requests and the
    steps of every read. `CollectionQuery` and `AsyncCollectionQuery` only drive them."""

    session: ReadHost = field(repr=False)
    collection: Collection
    slots: Mapping[str, Any]
    forward: bool = True
    max_items: int | None = None
    consistent_read: bool = False

    def reverse(self) -> Self:
        """Descending sort-key order (newest first for time-ordered keys)."""
        return dataclasses.replace(self, forward=not self.forward)

    def limit(self, count: int) -> Self:
        """Return at most `count` member entities (items of foreign types do not count)."""
        if count < 1:
            raise ExpressionError(f".limit() needs a positive count, got {count}")
        return dataclasses.replace(self, max_items=count)

    def consistent(self) -> Self:
        """Strongly consistent reads (a collection on the base table; GSIs cannot)."""
        plan = self.plan()
        if plan.index_name is not None:
            raise ExpressionError(
                f"collection {self.name} is read from global secondary index "
                f"{plan.index_name!r}; DynamoDB offers only eventually consistent reads on GSIs"
            )
        return dataclasses.replace(self, consistent_read=True)

    def plan(self) -> CollectionPlan:
        """Where the collection is read (computed once per query)."""
        return self._plan

    @cached_property
    def _plan(self) -> CollectionPlan:
        return plan_collection(self.collection, self.slots)

    @property
    def name(self) -> str:
        return self.collection.name or "(" + ", ".join(self._member_names) + ")"

    @property
    def _member_names(self) -> Sequence[str]:
        return [m.entity.__dynaorm__.name for m in self.plan().members]

    def to_request(
        self, *, exclusive_start_key: Mapping[str, Any] | None = None, limit: int | None = None
    ) -> dict[str, Any]:
        """The Query request parameters, without sending anything."""
        plan = self.plan()
        return collection_request(
            plan,
            self.session.table_name(plan.table),
            forward=self.forward,
            limit=limit,
            exclusive_start_key=exclusive_start_key,
            consistent=self.consistent_read,
        )

    # -- steps (shared by the sync and the async shell) ----------------------------------

    def _fetch(
        self, key: Mapping[str, Any] | None, want: int | None
    ) -> Steps[tuple[list[dict[str, Any]], Any]]:
        # Without a filter DynamoDB returns exactly `Limit` items: ask for what is still
        # wanted; foreign items only cost another round trip.
        request = self.to_request(exclusive_start_key=key, limit=want)
        return fetch_page("Query", request, self.plan().members[0].entity.__dynaorm__.name)

    def _pages(
        self, start: Mapping[str, Any] | None = None, want: int | None = None
    ) -> Pages[Entity]:
        """The read of the member entities (up to `want`, else up to `limit`)."""
        plan = self.plan()
        schema = schema_of(plan.table)

        def member(item: dict[str, Any]) -> Entity | None:
            sort_value = item.get(plan.sk_attribute, {}).get("S")
            if not plan.accepts(item_type(plan.table, item) or "", sort_value):
                return None  # another type's item, or not of its member's sort shape
            return entity_from_item(schema, item)

        return Pages(self._fetch, member, self.max_items if want is None else want, start)

    def _all_steps(self) -> Steps[CollectionResult]:
        result = CollectionResult(self.collection)
        for entity in (yield from drain(self._pages())):
            result._add(entity)
        return result

    def _fingerprint(self) -> str:
        plan = self.plan()
        return fingerprint(
            {
                "collection": sorted(self._member_names),
                "table": self.session.table_name(plan.table),
                "index": plan.index_name,
                "pk": plan.pk_value,
                "sk": plan.sk_prefix,
                "forward": self.forward,
            }
        )

    def _page_steps(self, size: int, cursor: str | None) -> Steps[CollectionPage]:
        if size < 1:
            raise ExpressionError(f".page() needs a positive size, got {size}")
        plan = self.plan()
        secret = self.session.cursor_secret
        qfp = self._fingerprint()
        start = None
        if cursor is not None:
            start = decode_cursor(cursor, qfp, secret)
            check_collection_resume_key(start, plan, self.name)
        pages = self._pages(start, size)
        items = yield from drain(pages)
        result = CollectionResult(self.collection)
        for entity in items:
            result._add(entity)
        if not pages.more or pages.last is None:
            return CollectionPage(items, result, None)
        return CollectionPage(items, result, encode_cursor(self._key_of(pages.last), qfp, secret))

    def _key_of(self, item: Mapping[str, Any]) -> dict[str, Any]:
        plan = self.plan()
        table = plan.table
        names = {table.partition_key, table.sort_key, plan.pk_attribute, plan.sk_attribute}
        return {n: item[n] for n in sorted(names) if n in item}


@dataclass(frozen=True)
class CollectionQuery(_CollectionCore):
    """An immutable collection read: builders return new ones, nothing is sent until
    the query is iterated or `all()` / `page()` is called."""

    session: Session = field(repr=False)

    def __iter__(self) -> Iterator[Entity]:
        """Lazily yields member entities of any type in key order, a page at a time."""
        pages = self._pages()
        while not pages.done:
            yield from self.session._drive(pages.next())

    def all(self) -> CollectionResult:
        """Every member entity (up to `limit`), sorted into typed lists."""
        return self.session._drive(self._all_steps())

    def page(self, size: int, cursor: str | None = None) -> CollectionPage:
        """Up to `size` member entities and a cursor for the next page (None at the end)."""
        return self.session._drive(self._page_steps(size, cursor))


@dataclass(frozen=True)
class AsyncCollectionQuery(_CollectionCore):
    """`CollectionQuery` for an async session: `await .all()`, `await .page()`,
    `async for`."""

    session: AsyncReads = field(repr=False)

    async def __aiter__(self) -> AsyncIterator[Entity]:
        """Lazily yields member entities of any type in key order, a page at a time."""
        pages = self._pages()
        while not pages.done:
            for entity in await self.session._adrive(pages.next()):
                yield entity

    async def all(self) -> CollectionResult:
        """Every member entity (up to `limit`), sorted into typed lists."""
        return await self.session._adrive(self._all_steps())

    async def page(self, size: int, cursor: str | None = None) -> CollectionPage:
        """Up to `size` member entities and a cursor for the next page (None at the end)."""
        return await self.session._adrive(self._page_steps(size, cursor))
