"""The read methods of the async session: queries, scans, collections and batches.

`AsyncReads` is a mixin. Its host (the async session) provides `table_name(table)`,
`cursor_secret`, `_batches` (a `BatchRunner`) and `async _adrive(steps)`, which runs the
steps of `dynaorm._io` on an async transport. The reads themselves are the very steps the
sync `Session` drives: these methods only build them and await them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, TypeVar, overload

from dynaorm._collections import AsyncCollectionQuery, CollectionResult
from dynaorm._entity import Entity, EntityIndex, Key
from dynaorm._query import AsyncQuery
from dynaorm._scan import AsyncScan
from dynaorm._schema import Collection, Index
from dynaorm.errors import ExpressionError

if TYPE_CHECKING:
    from dynaorm._batch import BatchRunner
    from dynaorm._cursor import Secrets
    from dynaorm._io import Steps
    from dynaorm._schema import Table

__all__ = ["AsyncReads"]

E = TypeVar("E", bound=Entity)
T = TypeVar("T")


class AsyncReads:
    """Reads of many items for an async session; see the module docstring for the host."""

    if TYPE_CHECKING:
        cursor_secret: Secrets
        _batches: BatchRunner

        def table_name(self, table: Table) -> str: ...

        async def _adrive(self, steps: Steps[T]) -> T: ...

    @overload
    def query(self, target: type[E], **slots: Any) -> AsyncQuery[E]: ...

    # Type checkers see `Post.by_topic` as the declared `Index`; at run time the class
    # attribute is the bound `EntityIndex`.
    @overload
    def query(self, target: EntityIndex | Index, **slots: Any) -> AsyncQuery[Any]: ...

    def query(self, target: type[E] | EntityIndex | Index, **slots: Any) -> AsyncQuery[Any]:
        """A query on an entity's primary key or on one of its indexes (`Post.by_topic`):
        `await session.query(Post, user_id="u1").all()`, or `async for` over it."""
        if isinstance(target, Index):
            raise ExpressionError(
                f"{target!r} is not bound to an entity; query it through its entity "
                "class, e.g. session.query(Post.by_topic, topic=...)"
            )
        return AsyncQuery(self, target, dict(slots))

    def scan(self, entity: type[E]) -> AsyncScan[E]:
        """A scan of every item of one entity type."""
        return AsyncScan(self, entity)

    async def collection(self, collection: Collection, **slots: Any) -> CollectionResult:
        """Every item of the collection's entities in one partition: one Query per page."""
        return await self.collection_query(collection, **slots).all()

    def collection_query(self, collection: Collection, **slots: Any) -> AsyncCollectionQuery:
        """A collection read to order, bound, page or iterate lazily:
        `await session.collection_query(feed, user_id="u1").reverse().page(20, cursor)`."""
        return AsyncCollectionQuery(self, collection, dict(slots))

    async def batch_get(self, keys: Iterable[Key], *, consistent: bool = False) -> list[Entity]:
        """The entities found for `keys` (any mix of types), in the order of `keys`.

        Keys still unread after retries raise `BatchIncomplete`, whose `items` holds every
        entity that was read and `unprocessed` / `reasons` the keys that were not and why.
        """
        return await self._adrive(self._batches.get_steps(list(keys), consistent=consistent))

    async def batch_write(
        self, put: Iterable[Entity] = (), delete: Iterable[Entity | Key] = ()
    ) -> None:
        """Put and delete many items in chunks of 25, retrying what DynamoDB leaves over.

        Every chunk is sent whatever happened to the others; if any request is still not
        written, `BatchIncomplete` lists `written`, `unprocessed` and `reasons`.
        """
        await self._adrive(self._batches.write_steps(list(put), list(delete)))
