"""BatchGetItem / BatchWriteItem in chunks, with backoff, and nothing dropped silently."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dynaorm._compiler import schema_of
from dynaorm._entity import Entity, Key
from dynaorm._items import entity_from_item, entity_to_item
from dynaorm._retry import Backoff
from dynaorm.errors import BatchIncomplete, DefinitionError, ExpressionError, Throttled

if TYPE_CHECKING:
    from dynaorm._session import Session

__all__ = ["BatchRunner"]

WRITE_CHUNK = 25  # BatchWriteItem accepts at most 25 requests
GET_CHUNK = 100  # BatchGetItem accepts at most 100 keys

_Ident = tuple[str, str, str]  # (table, partition key, sort key)


class BatchRunner:
    """Runs batches for a session: chunking, retries with jittered backoff, accounting."""

    def __init__(
        self,
        session: Session,
        *,
        attempts: int = 8,
        base_delay: float = 0.05,
        max_delay: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._session = session
        self.retry = Backoff(
            attempts=attempts, base_delay=base_delay, max_delay=max_delay, sleep=sleep
        )
        self._key_names: dict[str, tuple[str, str]] = {}

    # -- writes -----------------------------------------------------------------------

    def write(self, put: list[Entity], delete: list[Entity | Key]) -> None:
        requests: list[tuple[_Ident, dict[str, Any], Entity | Key]] = []
        for entity in put:
            requests.append(self._put_request(entity))
        for target in delete:
            requests.append(self._delete_request(target))
        _refuse_duplicates([ident for ident, _, _ in requests])
        failed: list[Entity | Key] = []
        for start in range(0, len(requests), WRITE_CHUNK):
            failed.extend(self._write_chunk(requests[start : start + WRITE_CHUNK]))
        if failed:
            raise BatchIncomplete(
                f"batch_write: {len(failed)} of {len(requests)} requests were not processed "
                f"after {self.retry.attempts} attempts; they are in .unprocessed",
                unprocessed=failed,
            )

    def _put_request(self, entity: Entity) -> tuple[_Ident, dict[str, Any], Entity | Key]:
        info = type(entity).__dynaorm__
        _refuse_guarded(info.name, bool(info.unique), info.version)
        item = entity_to_item(entity)
        table = self._physical(type(entity))
        ident = (table, item[info.table.partition_key]["S"], item[info.table.sort_key]["S"])
        return ident, {"PutRequest": {"Item": item}}, entity

    def _delete_request(self, target: Entity | Key) -> tuple[_Ident, dict[str, Any], Entity | Key]:
        key = target.get_key() if isinstance(target, Entity) else target
        if not isinstance(key, Key):
            raise ExpressionError(f"batch_write(delete=...) takes entities or keys, got {target!r}")
        info = key.entity.__dynaorm__
        _refuse_guarded(info.name, bool(info.unique), info.version)
        table = self._physical(key.entity)
        return (table, key.pk, key.sk), {"DeleteRequest": {"Key": key.to_dynamodb()}}, target

    def _write_chunk(self, chunk: list[tuple[_Ident, dict[str, Any], Entity | Key]]) -> list[Any]:
        by_ident = {ident: (request, original) for ident, request, original in chunk}
        pending = list(by_ident)
        for attempt in range(self.retry.attempts):
            if attempt:
                self.retry.pause(attempt)
            request_items: dict[str, list[dict[str, Any]]] = {}
            for ident in pending:
                request_items.setdefault(ident[0], []).append(by_ident[ident][0])
            try:
                response = self._session._call("BatchWriteItem", {"RequestItems": request_items})
            except Throttled:
                continue  # the whole chunk stays pending
            pending = [
                self._ident(
                    table,
                    request.get("PutRequest", {}).get("Item") or request["DeleteRequest"]["Key"],
                )
                for table, left in response.get("UnprocessedItems", {}).items()
                for request in left
            ]
            if not pending:
                return []
        return [by_ident[ident][1] for ident in pending]

    # -- reads ------------------------------------------------------------------------

    def get(self, keys: list[Key], *, consistent: bool) -> list[Entity]:
        idents: dict[_Ident, Key] = {}
        for key in keys:
            if not isinstance(key, Key):
                raise ExpressionError(f"batch_get takes keys such as User.key(...), got {key!r}")
            idents.setdefault((self._physical(key.entity), key.pk, key.sk), key)
        found: dict[_Ident, Entity] = {}
        failed: list[Key] = []
        order = list(idents)
        for start in range(0, len(order), GET_CHUNK):
            chunk = order[start : start + GET_CHUNK]
            failed.extend(self._get_chunk(chunk, idents, found, consistent))
        if failed:
            raise BatchIncomplete(
                f"batch_get: {len(failed)} of {len(order)} keys were not read after "
                f"{self.retry.attempts} attempts; they are in .unprocessed",
                unprocessed=failed,
            )
        return [found[ident] for ident in order if ident in found]

    def _get_chunk(
        self,
        chunk: list[_Ident],
        keys: dict[_Ident, Key],
        found: dict[_Ident, Entity],
        consistent: bool,
    ) -> list[Key]:
        pending = chunk
        for attempt in range(self.retry.attempts):
            if attempt:
                self.retry.pause(attempt)
            request_items: dict[str, dict[str, Any]] = {}
            for ident in pending:
                entry = request_items.setdefault(ident[0], {"Keys": []})
                if consistent:
                    entry["ConsistentRead"] = True
                entry["Keys"].append(keys[ident].to_dynamodb())
            try:
                response = self._session._call("BatchGetItem", {"RequestItems": request_items})
            except Throttled:
                continue
            for table, items in response.get("Responses", {}).items():
                for item in items:
                    self._collect(table, item, keys, found)
            pending = [
                self._ident(table, key)
                for table, left in response.get("UnprocessedKeys", {}).items()
                for key in left.get("Keys", [])
            ]
            if not pending:
                return []
        return [keys[ident] for ident in pending]

    def _collect(
        self, table: str, item: dict[str, Any], keys: dict[_Ident, Key], found: dict[_Ident, Entity]
    ) -> None:
        ident = self._ident(table, item)
        key = keys[ident]
        decoded = entity_from_item(
            schema_of(key.entity.__dynaorm__.table), item, expected=key.entity
        )
        assert decoded is not None
        found[ident] = decoded

    def _ident(self, table: str, body: dict[str, Any]) -> _Ident:
        """(table, pk, sk) of an item or key, as DynamoDB hands it back."""
        pk, sk = self._key_names[table]
        return (table, body[pk]["S"], body[sk]["S"])

    def _physical(self, entity: type[Entity]) -> str:
        table = entity.__dynaorm__.table
        name = self._session.table_name(table)
        self._key_names[name] = (table.partition_key, table.sort_key)
        return name


def _refuse_duplicates(idents: list[_Ident]) -> None:
    seen: set[_Ident] = set()
    for ident in idents:
        if ident in seen:
            raise ExpressionError(
                f"batch_write names the item {ident[1:]!r} of table {ident[0]!r} twice; "
                "DynamoDB refuses a batch with two requests for one item"
            )
        seen.add(ident)


def _refuse_guarded(entity: str, unique: bool, version: str | None) -> None:
    if unique or version is not None:
        guarantee = "unique=" if unique else f"version={version!r}"
        raise DefinitionError(
            f"batch_write cannot keep {entity}'s {guarantee} guarantee (a batch has no "
            "conditions); use session.put/create/delete or a unit of work",
            entity=entity,
        )
