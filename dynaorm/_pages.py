"""Reads of many items, page by page, as steps that a sync or an async shell drives.

A `Pages` is a read in progress: the key to resume from, how many items are still
wanted, and whether the last item handed out could be followed by more. Its `next()` is
the steps of one request (see `dynaorm._io`); a shell loops over it a page at a time, so
lazy iteration (`for` or `async for`) sends the next request only when the consumer asks
for more. Everything a page needs (request, limit, decoding, skipping foreign items) comes
from the query that made it; the shells only send and loop.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeAlias, TypeVar

from dynaorm._codec import decode_item
from dynaorm._compiler import schema_of
from dynaorm._io import Call, Steps
from dynaorm._items import entity_from_item

if TYPE_CHECKING:
    from dynaorm._cursor import Secrets
    from dynaorm._entity import Entity
    from dynaorm._schema import Table

__all__ = ["Fetch", "Pages", "ReadHost", "decode_as", "drain", "fetch_page"]

T = TypeVar("T")

Item: TypeAlias = dict[str, Any]
Fetch: TypeAlias = Callable[[Mapping[str, Any] | None, int | None], Steps[tuple[list[Item], Any]]]
"""(resume key, items still wanted) -> the steps of one request: (items, LastEvaluatedKey)."""


class ReadHost(Protocol):
    """What a read needs of the session it belongs to (sync or async alike)."""

    @property
    def cursor_secret(self) -> Secrets: ...

    def table_name(self, table: Table) -> str: ...


def fetch_page(
    operation: str, request: dict[str, Any], entity: str
) -> Steps[tuple[list[Item], Any]]:
    """Send one Query or Scan request: its items and its LastEvaluatedKey (None: the end)."""
    response = yield Call(operation, request, entity=entity)
    items: list[Item] = response.get("Items", [])
    return items, response.get("LastEvaluatedKey")


class Pages(Generic[T]):
    """A read in progress. `convert` turns an item into a result, or None to skip it
    (another type's item in a shared partition): skipped items do not count as wanted."""

    def __init__(
        self,
        fetch: Fetch,
        convert: Callable[[Item], T | None],
        want: int | None,
        start: Mapping[str, Any] | None = None,
    ) -> None:
        self._fetch = fetch
        self._convert = convert
        self.want = want
        self.key: Mapping[str, Any] | None = start
        self.done = want is not None and want <= 0
        self.last: Item | None = None  # the raw item of the last result handed out
        self.more = False  # whether anything could follow that item

    def next(self) -> Steps[list[T]]:
        """The steps of the next request: its results, at most the number still wanted."""
        items, self.key = yield from self._fetch(self.key, self.want)
        convert, want = self._convert, self.want
        results: list[T] = []
        taken = -1  # the position of the last item handed out
        for position, item in enumerate(items):
            result = convert(item)
            if result is None:
                continue
            results.append(result)
            taken = position
            if want is not None:
                want -= 1
                if want <= 0:
                    break
        if taken >= 0:
            self.last = items[taken]
            self.more = taken < len(items) - 1 or self.key is not None
        self.want = want
        self.done = self.key is None or (self.want is not None and self.want <= 0)
        return results


def drain(pages: Pages[T]) -> Steps[list[T]]:
    """Read every remaining page: the steps of `all()`."""
    results: list[T] = []
    while not pages.done:
        results += yield from pages.next()
    return results


def decode_as(entity: type[Entity], item: Item, projection: Any) -> Entity | dict[str, Any]:
    """An item as `entity`, or with a projection as a plain dict without derived keys."""
    schema = schema_of(entity.__dynaorm__.table)
    if projection is not None:
        derived = schema.entities[entity.__dynaorm__.name].derived
        return decode_item({k: v for k, v in item.items() if k not in derived})
    decoded = entity_from_item(schema, item, expected=entity)
    assert decoded is not None
    return decoded
