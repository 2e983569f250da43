"""Immutable Query and Scan builders: each has a pure `to_request()`; the session sends."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
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
from dynaorm._update import as_path, key_condition_expression, projection_expression
from dynaorm.errors import ExpressionError

if TYPE_CHECKING:
    from dynaorm._session import Session

__all__ = ["Page", "Query", "Scan"]

E = TypeVar("E", bound=Entity)
_RANGE_OPS = {"between": "between", "gt": ">", "ge": ">=", "lt": "<", "le": "<="}
MAX_SCAN_SEGMENTS = 1_000_000  # DynamoDB's TotalSegments upper bound


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
class Query(Generic[E]):
    """A Query on an entity's primary key or one of its indexes.

    Builders return new queries; nothing is sent until the query is iterated or one of
    `all()`, `first()`, `count()`, `page()` is called.
    """

    session: Session = field(repr=False)
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

    def begins_with(self, **slot: Any) -> Query[E]:
        """Items whose next sort-key slot starts with a partial value (str, date, datetime)."""
        name, value = _one_slot("begins_with", slot)
        return self._range("begins_with", name, value)

    def between(self, **slots: Any) -> Query[E]:
        """Items whose sort-key slot lies in the inclusive range (low, high).

        Several slots may be given: the one latest in the sort template takes the
        (low, high) pair and the ones before it are fixed, e.g.
        `.between(status="open", created_at=(lo, hi))`.
        """
        return self._ranged("between", slots)

    def gt(self, **slots: Any) -> Query[E]:
        """Items whose sort-key slot is greater; leading slots may be fixed alongside."""
        return self._ranged("gt", slots)

    def ge(self, **slots: Any) -> Query[E]:
        """Items whose sort-key slot is greater or equal; leading slots may be fixed."""
        return self._ranged("ge", slots)

    def lt(self, **slots: Any) -> Query[E]:
        """Items whose sort-key slot is less; leading slots may be fixed alongside."""
        return self._ranged("lt", slots)

    def le(self, **slots: Any) -> Query[E]:
        """Items whose sort-key slot is less or equal; leading slots may be fixed."""
        return self._ranged("le", slots)

    def _ranged(self, method: str, given: Mapping[str, Any]) -> Query[E]:
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
    ) -> Query[E]:
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

    def where(self, condition: Condition) -> Query[E]:
        """Add a filter (applied by DynamoDB after reading; combined with AND)."""
        if not isinstance(condition, Condition):
            raise ExpressionError(
                f".where() takes a condition such as Post.likes > 3, got {condition!r}"
            )
        return dataclasses.replace(self, filter=and_(self.filter, condition))

    def reverse(self) -> Query[E]:
        """Descending sort-key order."""
        return dataclasses.replace(self, forward=not self.forward)

    def limit(self, count: int) -> Query[E]:
        """Return at most `count` items (items returned, not items evaluated)."""
        if count < 1:
            raise ExpressionError(f".limit() needs a positive count, got {count}")
        return dataclasses.replace(self, max_items=count)

    def project(self, *paths: Path | str) -> Query[E]:
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

    def consistent(self) -> Query[E]:
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

    # -- execution --------------------------------------------------------------------

    def _raw_pages(
        self, start: Mapping[str, Any] | None, want: int | None
    ) -> Iterator[tuple[list[dict[str, Any]], dict[str, Any] | None]]:
        key = start
        while True:
            request = self.to_request(exclusive_start_key=key, limit=self._request_limit(want))
            response = self.session._call("Query", request, entity=self.entity)
            items: list[dict[str, Any]] = response.get("Items", [])
            key = response.get("LastEvaluatedKey")
            yield items, key
            if want is not None:
                want -= len(items)
                if want <= 0:
                    return
            if key is None:
                return

    def __iter__(self) -> Iterator[E]:
        """Lazily yields typed entities, reading one page at a time."""
        self._check_readable()
        returned = 0
        for items, _ in self._raw_pages(None, self.max_items):
            for item in items:
                yield self._decode(item)
                returned += 1
                if self.max_items is not None and returned >= self.max_items:
                    return

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
        return self.session._decode_as(self.entity, item, self.projection)  # type: ignore[return-value]

    @cached_property
    def _projected_attributes(self) -> frozenset[str] | None:
        """The top-level attributes `.project(...)` asks for (None: every attribute)."""
        if self.projection is None:
            return None
        return frozenset(str(as_path(path).segments[0]) for path in self.projection)

    def keys(self) -> list[Key]:
        """The primary keys of the matching items, in query order (up to `limit`).

        Any index can return these, KEYS_ONLY and INCLUDE ones too; read the entities
        with `session.batch_get(keys)`.
        """
        info = self.entity.__dynaorm__
        keyed = dataclasses.replace(self, projection=(info.table.partition_key,))
        result: list[Key] = []
        for items, _ in keyed._raw_pages(None, self.max_items):
            for item in items:
                result.append(key_from_item(info, item))
                if len(result) == self.max_items:
                    return result
        return result

    def all(self) -> list[E]:
        """Every matching item (up to `limit`), reading as many pages as needed."""
        return list(self)

    def first(self) -> E | None:
        """The first matching item, or None; reads one page when no filter applies."""
        return next(iter(self.limit(1)), None)

    def count(self) -> int:
        """The number of matching items (Select=COUNT, summed over pages)."""
        total = 0
        key: Mapping[str, Any] | None = None
        # Built without the projection: its names would be left unused in the request,
        # which DynamoDB refuses.
        counted = dataclasses.replace(self, projection=None)
        while True:
            request = counted.to_request(exclusive_start_key=key)
            request["Select"] = "COUNT"
            response = self.session._call("Query", request, entity=self.entity)
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

    def page(self, size: int, cursor: str | None = None) -> Page[E]:
        """Up to `size` items and a cursor for the next page (None at the end)."""
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
        results: list[E] = []
        last_item: dict[str, Any] | None = None
        more = False
        for items, key in self._raw_pages(start, size):
            for position, item in enumerate(items):
                if len(results) == size:
                    more = True
                    break
                results.append(self._decode(item))
                last_item = item
                if len(results) == size:
                    more = position < len(items) - 1 or key is not None
            if len(results) == size:
                break
        if not more or last_item is None:
            return Page(results, None)
        return Page(results, encode_cursor(self._key_of(last_item, plan), qfp, secret))

    def _key_of(self, item: Mapping[str, Any], plan: QueryPlan) -> dict[str, Any]:
        """The ExclusiveStartKey that resumes right after `item`."""
        table = self.entity.__dynaorm__.table
        names = {table.partition_key, table.sort_key, plan.pk_attribute, plan.sk_attribute}
        return {name: item[name] for name in sorted(names) if name in item}


@dataclass(frozen=True)
class Scan(Generic[E]):
    """A Scan of one entity type (filtered on the type attribute), optionally parallel."""

    session: Session = field(repr=False)
    entity: type[E]
    filter: Condition | None = None
    max_items: int | None = None
    total_segments: int = 1
    consistent_read: bool = False

    def where(self, condition: Condition) -> Scan[E]:
        return dataclasses.replace(self, filter=and_(self.filter, condition))

    def limit(self, count: int) -> Scan[E]:
        if count < 1:
            raise ExpressionError(f".limit() needs a positive count, got {count}")
        return dataclasses.replace(self, max_items=count)

    def consistent(self) -> Scan[E]:
        return dataclasses.replace(self, consistent_read=True)

    def segments(self, total: int) -> Scan[E]:
        """Read `total` segments in parallel threads (DynamoDB's parallel scan)."""
        if not 1 <= total <= MAX_SCAN_SEGMENTS:
            raise ExpressionError(f".segments() takes 1 to {MAX_SCAN_SEGMENTS}, got {total}")
        return dataclasses.replace(self, total_segments=total)

    def to_request(
        self, *, segment: int | None = None, exclusive_start_key: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        table = self.entity.__dynaorm__.table
        ph = Placeholders()
        condition = and_(Path(table.type_attribute) == self.entity.__dynaorm__.name, self.filter)
        assert condition is not None
        request: dict[str, Any] = {
            "TableName": self.session.table_name(table),
            "FilterExpression": build_condition(condition, ph),
        }
        if self.total_segments > 1 and segment is not None:
            request["Segment"] = segment
            request["TotalSegments"] = self.total_segments
        if self.consistent_read:
            request["ConsistentRead"] = True
        if exclusive_start_key is not None:
            request["ExclusiveStartKey"] = dict(exclusive_start_key)
        request.update(ph.to_request())
        return request

    def _segment_items(self, segment: int | None) -> Iterator[dict[str, Any]]:
        key: Mapping[str, Any] | None = None
        while True:
            request = self.to_request(segment=segment, exclusive_start_key=key)
            response = self.session._call("Scan", request, entity=self.entity)
            yield from response.get("Items", [])
            key = response.get("LastEvaluatedKey")
            if key is None:
                return

    def _read_segment(self, segment: int) -> list[dict[str, Any]]:
        return list(self._segment_items(segment))

    def _items(self) -> Iterator[dict[str, Any]]:
        if self.total_segments == 1:
            yield from self._segment_items(None)
            return
        # Each segment is read to completion in its own thread, so a parallel scan holds
        # whole segments in memory; iterate a single-segment scan to stream page by page.
        with ThreadPoolExecutor(max_workers=min(self.total_segments, 16)) as pool:
            futures = [
                pool.submit(self._read_segment, segment) for segment in range(self.total_segments)
            ]
            for future in futures:
                yield from future.result()

    def __iter__(self) -> Iterator[E]:
        for returned, item in enumerate(self._items(), start=1):
            yield self.session._decode_as(self.entity, item, None)  # type: ignore[misc]
            if self.max_items is not None and returned >= self.max_items:
                return

    def all(self) -> list[E]:
        return list(self)
