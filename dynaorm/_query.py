"""Immutable Query builders with a pure `to_request()`, and their sync and async shells."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from dynaorm._bounds import split_range
from dynaorm._compiler import QueryPlan, schema_of
from dynaorm._conditions import Condition, and_, build_condition
from dynaorm._crypto import refuse_encrypted_projection
from dynaorm._cursor import check_resume_key, decode_cursor, encode_cursor, fingerprint
from dynaorm._entity import Entity, EntityIndex, Key
from dynaorm._expressions import Path, Placeholders
from dynaorm._index_reads import (
    check_entities_readable,
    check_filter_readable,
    key_field_attributes,
    key_from_item,
    sendable_paths,
)
from dynaorm._io import Call, Steps
from dynaorm._pages import Pages, ReadHost, decode_as, drain, fetch_page
from dynaorm._scan import AsyncScan, Scan
from dynaorm._update import as_path, key_condition_expression, projection_expression
from dynaorm.errors import ExpressionError

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self from Python 3.11

    from dynaorm._async_reads import AsyncReads
    from dynaorm._session import Session

__all__ = ["AsyncQuery", "AsyncScan", "Page", "Query", "Scan"]

E = TypeVar("E", bound=Entity)
_RANGE_OPS = {"between": "between", "gt": ">", "ge": ">=", "lt": "<", "le": "<="}


@dataclass(frozen=True)
class Page(Generic[E]):
    """One page of results and the cursor to continue from (None when there is no more)."""

    items: list[E]
    cursor: str | None


def _one_slot(method: str, slots: Mapping[str, Any]) -> tuple[str, Any]:
    if len(slots) != 1:
        raise ExpressionError(
            f".{method}() takes a sort-key field, e.g. .{method}(created_at=...); "
            f"got {sorted(slots)}"
        )
    ((name, value),) = slots.items()
    return name, value


@dataclass(frozen=True)
class _QueryCore(Generic[E]):
    """What a Query is, whichever shell sends it: builders, requests and the steps of
    every read. `Query` and `AsyncQuery` only drive those steps."""

    session: ReadHost = field(repr=False)
    target: type[E] | EntityIndex
    slots: Mapping[str, Any]
    range_op: str | None = None
    range_field: str | None = None
    range_operand: Any = None
    filter: Condition | None = None
    forward: bool = True
    max_items: int | None = None
    projection: tuple[Path | str, ...] | None = None
    consistent_read: bool = False

    # -- builders ---------------------------------------------------------------------

    def begins_with(self, **slot: Any) -> Self:
        """Items whose next sort-key slot starts with a partial value (str, date, datetime)."""
        name, value = _one_slot("begins_with", slot)
        return self._range("begins_with", name, value)

    def between(self, **slots: Any) -> Self:
        """Items whose sort-key slot lies in the inclusive range (low, high).

        Several slots may be given: the one latest in the sort template takes the
        (low, high) pair and the ones before it are fixed, e.g.
        `.between(status="open", created_at=(lo, hi))`.
        """
        return self._ranged("between", slots)

    def gt(self, **slots: Any) -> Self:
        """Items whose sort-key slot is greater; leading slots may be fixed alongside."""
        return self._ranged("gt", slots)

    def ge(self, **slots: Any) -> Self:
        """Items whose sort-key slot is greater or equal; leading slots may be fixed."""
        return self._ranged("ge", slots)

    def lt(self, **slots: Any) -> Self:
        """Items whose sort-key slot is less; leading slots may be fixed alongside."""
        return self._ranged("lt", slots)

    def le(self, **slots: Any) -> Self:
        """Items whose sort-key slot is less or equal; leading slots may be fixed."""
        return self._ranged("le", slots)

    def _ranged(self, method: str, given: Mapping[str, Any]) -> Self:
        if len(given) < 2:
            name, value = _one_slot(method, given)
            fixed: dict[str, Any] = {}
        else:
            target = self.target
            if isinstance(target, EntityIndex):
                name_of, sort = repr(target), target.sk
            else:
                name_of, sort = self.entity.__name__, self.entity.__dynaorm__.sk
            fields = sort.fields if sort is not None else ()
            split = split_range(name_of, fields, self.slots, method, given)
            name, value, fixed = split.field, split.operand, split.fixed
        if method == "between" and (not isinstance(value, tuple) or len(value) != 2):
            raise ExpressionError(f".between({name}=...) takes a (low, high) tuple, got {value!r}")
        return self._range(method, name, value, fixed)

    def _range(
        self, op: str, name: str, value: Any, fixed: Mapping[str, Any] | None = None
    ) -> Self:
        if self.range_op is not None:
            raise ExpressionError(
                f"this query already has a {self.range_op} condition on {self.range_field!r}; "
                "DynamoDB allows one sort-key condition"
            )
        return dataclasses.replace(
            self,
            slots={**self.slots, **(fixed or {})},
            range_op=_RANGE_OPS.get(op, op),
            range_field=name,
            range_operand=value,
        )

    def where(self, condition: Condition) -> Self:
        """Add a filter (applied by DynamoDB after reading; combined with AND)."""
        if not isinstance(condition, Condition):
            raise ExpressionError(
                f".where() takes a condition such as Post.likes > 3, got {condition!r}"
            )
        return dataclasses.replace(self, filter=and_(self.filter, condition))

    def reverse(self) -> Self:
        """Descending sort-key order."""
        return dataclasses.replace(self, forward=not self.forward)

    def limit(self, count: int) -> Self:
        """Return at most `count` items (items returned, not items evaluated)."""
        if count < 1:
            raise ExpressionError(f".limit() needs a positive count, got {count}")
        return dataclasses.replace(self, max_items=count)

    def project(self, *paths: Path | str) -> Self:
        """Read only these attributes; results are then plain dicts, not entities.

        On a KEYS_ONLY or INCLUDE index, key fields are decoded from the keys and a path
        the index does not hold raises `ExpressionError` before sending.
        """
        if not paths:
            raise ExpressionError(".project() needs at least one attribute")
        target = self.target
        entity = target.entity if isinstance(target, EntityIndex) else target
        refuse_encrypted_projection(entity.__dynaorm__, paths)
        return dataclasses.replace(self, projection=paths)

    def consistent(self) -> Self:
        """Strongly consistent reads (base table only; GSIs are eventually consistent)."""
        if isinstance(self.target, EntityIndex):
            raise ExpressionError(
                f"{self.target!r} is a global secondary index; DynamoDB offers only "
                "eventually consistent reads on GSIs"
            )
        return dataclasses.replace(self, consistent_read=True)

    # -- requests ---------------------------------------------------------------------

    @property
    def partial_index(self) -> EntityIndex | None:
        """The target when it is an index that does not project every attribute."""
        target = self.target
        if isinstance(target, EntityIndex) and target.projection != "ALL":
            return target
        return None

    @property
    def entity(self) -> type[E]:
        target = self.target
        return target.entity if isinstance(target, EntityIndex) else target  # type: ignore[return-value]

    def plan(self) -> QueryPlan:
        """The key condition and index this query uses (computed once per query)."""
        return self._plan

    # A query is immutable, and every page, limit decision and cursor fingerprint needs
    # the plan: compute it once (cached_property works on a frozen dataclass).
    @cached_property
    def _plan(self) -> QueryPlan:
        schema = schema_of(self.entity.__dynaorm__.table)
        return schema.plan(
            self.target,
            self.slots,
            op=self.range_op,
            field=self.range_field,
            operand=self.range_operand,
        )

    def to_request(
        self, *, exclusive_start_key: Mapping[str, Any] | None = None, limit: int | None = None
    ) -> dict[str, Any]:
        """The Query request parameters, without sending anything."""
        plan = self.plan()
        table = self.entity.__dynaorm__.table
        ph = Placeholders()
        sk_op = plan.sk_condition.op if plan.sk_condition else None
        sk_values = plan.sk_condition.values if plan.sk_condition else ()
        request: dict[str, Any] = {
            "TableName": self.session.table_name(table),
            "KeyConditionExpression": key_condition_expression(
                plan.pk_attribute, plan.pk_value, plan.sk_attribute, sk_op, sk_values, ph
            ),
        }
        if plan.index_name is not None:
            request["IndexName"] = plan.index_name
        condition = self.filter
        keys = dict.fromkeys(
            (table.partition_key, table.sort_key, plan.pk_attribute, plan.sk_attribute)
        )
        if condition is not None and self.partial_index is not None:
            check_filter_readable(self.partial_index, condition, set(keys))
        if plan.type_filter is not None:
            condition = and_(Path(table.type_attribute) == plan.type_filter, condition)
        if condition is not None:
            request["FilterExpression"] = build_condition(condition, ph)
        if self.projection is not None:
            # Key attributes ride along so a page can end in a cursor; they are dropped
            # again when the rows are decoded.
            wanted = self.projection
            if self.partial_index is not None:
                wanted = sendable_paths(self.partial_index, wanted, set(keys))
            paths = (*wanted, *keys)
            request["ProjectionExpression"] = projection_expression(paths, ph)
        if not self.forward:
            request["ScanIndexForward"] = False
        if self.consistent_read:
            request["ConsistentRead"] = True
        if limit is not None:
            request["Limit"] = limit
        if exclusive_start_key is not None:
            request["ExclusiveStartKey"] = dict(exclusive_start_key)
        request.update(ph.to_request())
        return request

    def _request_limit(self, remaining: int | None) -> int | None:
        # Without a filter DynamoDB returns exactly `remaining` items for Limit=remaining,
        # so one round trip suffices; with a filter Limit would count evaluated items and
        # only add round trips, so read full pages instead.
        if remaining is None or self.filter is not None or self.plan().type_filter:
            return None
        return remaining

    # -- steps (shared by the sync and the async shell) ----------------------------------

    def _fetch(
        self, key: Mapping[str, Any] | None, want: int | None
    ) -> Steps[tuple[list[dict[str, Any]], Any]]:
        request = self.to_request(exclusive_start_key=key, limit=self._request_limit(want))
        return fetch_page("Query", request, self.entity.__dynaorm__.name)

    def _pages(self, start: Mapping[str, Any] | None = None, want: int | None = None) -> Pages[E]:
        """The read of the matching entities (up to `want`, else up to `limit`)."""
        self._check_readable()
        return Pages(self._fetch, self._decode, self.max_items if want is None else want, start)

    def _key_pages(self) -> Pages[Key]:
        info = self.entity.__dynaorm__
        keyed = dataclasses.replace(self, projection=(info.table.partition_key,))
        return Pages(keyed._fetch, lambda item: key_from_item(info, item), self.max_items)

    def _check_readable(self) -> None:
        """Before sending: entities need every field; a projection only what is there."""
        index = self.partial_index
        if index is None:
            return
        if self.projection is None:
            check_entities_readable(index)
        else:
            self.to_request()  # refuses paths the index does not project

    def _decode(self, item: dict[str, Any]) -> E:
        index = self.partial_index
        if index is not None:
            # Key fields are not projected as attributes: decode them from the keys.
            plan = self.plan()
            attributes = (plan.pk_attribute, plan.sk_attribute)
            wanted = self._projected_attributes
            item = {**item, **key_field_attributes(index, item, attributes, wanted)}
        return decode_as(self.entity, item, self.projection)  # type: ignore[return-value]

    @cached_property
    def _projected_attributes(self) -> frozenset[str] | None:
        """The top-level attributes `.project(...)` asks for (None: every attribute)."""
        if self.projection is None:
            return None
        return frozenset(str(as_path(path).segments[0]) for path in self.projection)

    def _count_steps(self) -> Steps[int]:
        total = 0
        key: Mapping[str, Any] | None = None
        # Built without the projection: its names would be left unused in the request,
        # which DynamoDB refuses.
        counted = dataclasses.replace(self, projection=None)
        while True:
            request = counted.to_request(exclusive_start_key=key)
            request["Select"] = "COUNT"
            response = yield Call("Query", request, entity=self.entity.__dynaorm__.name)
            total += int(response.get("Count", 0))
            key = response.get("LastEvaluatedKey")
            if key is None or (self.max_items is not None and total >= self.max_items):
                return min(total, self.max_items) if self.max_items is not None else total

    def _fingerprint(self) -> str:
        plan = self.plan()
        request = self.to_request()
        return fingerprint(
            {
                "table": request["TableName"],
                "index": plan.index_name,
                "pk": plan.pk_value,
                "key": request["KeyConditionExpression"],
                "filter": request.get("FilterExpression"),
                "values": request.get("ExpressionAttributeValues"),
                "forward": self.forward,
            }
        )

    def _page_steps(self, size: int, cursor: str | None) -> Steps[Page[E]]:
        if size < 1:
            raise ExpressionError(f".page() needs a positive size, got {size}")
        self._check_readable()
        plan = self.plan()
        secret = self.session.cursor_secret
        qfp = self._fingerprint()
        start = None
        if cursor is not None:
            start = decode_cursor(cursor, qfp, secret)
            index_sk = self.target.sk if isinstance(self.target, EntityIndex) else None
            check_resume_key(start, plan, self.entity.__dynaorm__, index_sk)
        pages = self._pages(start, size)
        results = yield from drain(pages)
        if not pages.more or pages.last is None:
            return Page(results, None)
        return Page(results, encode_cursor(self._key_of(pages.last, plan), qfp, secret))

    def _key_of(self, item: Mapping[str, Any], plan: QueryPlan) -> dict[str, Any]:
        """The ExclusiveStartKey that resumes right after `item`."""
        table = self.entity.__dynaorm__.table
        names = {table.partition_key, table.sort_key, plan.pk_attribute, plan.sk_attribute}
        return {name: item[name] for name in sorted(names) if name in item}


@dataclass(frozen=True)
class Query(_QueryCore[E]):
    """A Query on an entity's primary key or one of its indexes.

    Builders return new queries; nothing is sent until the query is iterated or one of
    `all()`, `first()`, `count()`, `keys()`, `page()` is called.
    """

    session: Session = field(repr=False)

    def __iter__(self) -> Iterator[E]:
        """Lazily yields typed entities, reading one page at a time."""
        pages = self._pages()
        while not pages.done:
            yield from self.session._drive(pages.next())

    def all(self) -> list[E]:
        """Every matching item (up to `limit`), reading as many pages as needed."""
        return self.session._drive(drain(self._pages()))

    def first(self) -> E | None:
        """The first matching item, or None; reads one page when no filter applies."""
        found = self.limit(1).all()
        return found[0] if found else None

    def count(self) -> int:
        """The number of matching items (Select=COUNT, summed over pages)."""
        return self.session._drive(self._count_steps())

    def keys(self) -> list[Key]:
        """The primary keys of the matching items, in query order (up to `limit`).

        Any index can return these, KEYS_ONLY and INCLUDE ones too; read the entities
        with `session.batch_get(keys)`.
        """
        return self.session._drive(drain(self._key_pages()))

    def page(self, size: int, cursor: str | None = None) -> Page[E]:
        """Up to `size` items and a cursor for the next page (None at the end)."""
        return self.session._drive(self._page_steps(size, cursor))


@dataclass(frozen=True)
class AsyncQuery(_QueryCore[E]):
    """`Query` for an async session: the same builders; reads are awaited or `async for`."""

    session: AsyncReads = field(repr=False)

    async def __aiter__(self) -> AsyncIterator[E]:
        """Lazily yields typed entities, reading one page at a time."""
        pages = self._pages()
        while not pages.done:
            for entity in await self.session._adrive(pages.next()):
                yield entity

    async def all(self) -> list[E]:
        """Every matching item (up to `limit`), reading as many pages as needed."""
        return await self.session._adrive(drain(self._pages()))

    async def first(self) -> E | None:
        """The first matching item, or None; reads one page when no filter applies."""
        found = await self.limit(1).all()
        return found[0] if found else None

    async def count(self) -> int:
        """The number of matching items (Select=COUNT, summed over pages)."""
        return await self.session._adrive(self._count_steps())

    async def keys(self) -> list[Key]:
        """The primary keys of the matching items, in query order (up to `limit`)."""
        return await self.session._adrive(drain(self._key_pages()))

    async def page(self, size: int, cursor: str | None = None) -> Page[E]:
        """Up to `size` items and a cursor for the next page (None at the end)."""
        return await self.session._adrive(self._page_steps(size, cursor))
