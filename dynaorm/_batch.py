"""BatchGetItem / BatchWriteItem for a session: build the requests, run the plan, report."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from dynaorm._batch_plan import BatchPlan, Failures, Ident
from dynaorm._compiler import schema_of
from dynaorm._entity import Entity, Key
from dynaorm._io import Steps
from dynaorm._items import entity_from_item, entity_to_item
from dynaorm._pages import ReadHost
from dynaorm._retry import Backoff
from dynaorm._timestamps import Stamps, stamped, stamps_for
from dynaorm.errors import (
    BatchIncomplete,
    DefinitionError,
    ExpressionError,
    RequestError,
    ServiceError,
    Throttled,
)

if TYPE_CHECKING:
    from dynaorm._session import Session

__all__ = ["BatchRunner"]


class BatchRunner:
    """Batches for a session, sync or async: chunking, retries with jittered backoff,
    accounting. `get_steps` and `write_steps` are the batches as steps for any shell."""

    def __init__(
        self,
        session: ReadHost,
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
        """For the sync session: `write_steps` run by its `_drive`."""
        cast("Session", self._session)._drive(self.write_steps(put, delete))

    def write_steps(self, put: list[Entity], delete: list[Entity | Key]) -> Steps[None]:
        """The steps of `batch_write`: every chunk sent, leftovers retried with backoff;
        `BatchIncomplete` when anything is still not written."""
        requests: list[tuple[Ident, dict[str, Any], Entity | Key]] = []
        stamps: dict[Ident, Stamps] = {}  # set on the caller's objects once written
        for entity in put:
            info = type(entity).__dynaorm__
            stamps_now = stamps_for(info, entity, whole=True)
            requests.append(self._put_request(entity, stamped(entity, stamps_now)))
            stamps[requests[-1][0]] = stamps_now
        for target in delete:
            requests.append(self._delete_request(target))
        _refuse_duplicates([ident for ident, _, _ in requests])
        plan = self._plan()
        failures = yield from plan.write({ident: body for ident, body, _ in requests})
        for ident, _, target in requests:
            if ident not in failures and ident in stamps:
                target.__dict__.update(stamps[ident])
        if not failures:
            return
        targets = {ident: target for ident, _, target in requests}
        reasons = self._reasons("BatchWriteItem", failures, targets)
        raise BatchIncomplete(
            _summary("batch_write", "written", len(requests), reasons, ".written what was written"),
            operation="BatchWriteItem",
            unprocessed=[targets[ident] for ident in reasons],
            reasons=list(reasons.values()),
            written=[target for ident, _, target in requests if ident not in failures],
        )

    def _put_request(
        self, entity: Entity, written: Entity
    ) -> tuple[Ident, dict[str, Any], Entity | Key]:
        info = type(entity).__dynaorm__
        _refuse_guarded(info.name, bool(info.unique), info.version)
        item = entity_to_item(written)
        table = self._physical(type(entity))
        ident = (table, item[info.table.partition_key]["S"], item[info.table.sort_key]["S"])
        return ident, {"PutRequest": {"Item": item}}, entity

    def _delete_request(self, target: Entity | Key) -> tuple[Ident, dict[str, Any], Entity | Key]:
        key = target.get_key() if isinstance(target, Entity) else target
        if not isinstance(key, Key):
            raise ExpressionError(f"batch_write(delete=...) takes entities or keys, got {target!r}")
        info = key.entity.__dynaorm__
        _refuse_guarded(info.name, bool(info.unique), info.version)
        table = self._physical(key.entity)
        return (table, key.pk, key.sk), {"DeleteRequest": {"Key": key.to_dynamodb()}}, target

    # -- reads ------------------------------------------------------------------------

    def get(self, keys: list[Key], *, consistent: bool) -> list[Entity]:
        """For the sync session: `get_steps` run by its `_drive`."""
        return cast("Session", self._session)._drive(self.get_steps(keys, consistent=consistent))

    def get_steps(self, keys: list[Key], *, consistent: bool) -> Steps[list[Entity]]:
        """The steps of `batch_get`: the entities found, in the order of `keys`;
        `BatchIncomplete` when some keys are still unread after retries."""
        idents: dict[Ident, Key] = {}
        for key in keys:
            if not isinstance(key, Key):
                raise ExpressionError(f"batch_get takes keys such as User.key(...), got {key!r}")
            idents.setdefault((self._physical(key.entity), key.pk, key.sk), key)
        plan = self._plan()
        bodies = {ident: key.to_dynamodb() for ident, key in idents.items()}
        items, failures = yield from plan.get(bodies, consistent=consistent)
        found = [self._decode(items[ident], idents[ident]) for ident in idents if ident in items]
        if not failures:
            return found
        reasons = self._reasons("BatchGetItem", failures, idents)
        raise BatchIncomplete(
            _summary("batch_get", "read", len(idents), reasons, ".items the entities read"),
            operation="BatchGetItem",
            unprocessed=[idents[ident] for ident in reasons],
            reasons=list(reasons.values()),
            items=found,
        )

    def _decode(self, item: dict[str, Any], key: Key) -> Entity:
        decoded = entity_from_item(
            schema_of(key.entity.__dynaorm__.table), item, expected=key.entity
        )
        assert decoded is not None
        return decoded

    # -- plumbing ---------------------------------------------------------------------

    def _plan(self) -> BatchPlan:
        return BatchPlan(self._key_names, retry=self.retry)

    def _reasons(
        self, operation: str, failures: Failures, targets: dict[Ident, Any]
    ) -> dict[Ident, RequestError]:
        """Why each failed request failed; a request handed back unprocessed on every
        attempt gets a `Throttled` naming its entity and key."""
        reasons: dict[Ident, RequestError] = {}
        for ident, target in targets.items():  # in the order the caller gave them
            if ident not in failures:
                continue
            error = failures[ident]
            if error is None:
                key = target.get_key() if isinstance(target, Entity) else target
                error = Throttled(
                    f"{operation} on table {ident[0]!r} (entity {key.entity.__name__}, key "
                    f"{key!r}): DynamoDB returned it unprocessed in each of "
                    f"{self.retry.attempts} attempts",
                    operation=operation,
                    table=ident[0],
                    entity=key.entity.__name__,
                    key=key,
                )
            reasons[ident] = error
        return reasons

    def _physical(self, entity: type[Entity]) -> str:
        table = entity.__dynaorm__.table
        name = self._session.table_name(table)
        self._key_names[name] = (table.partition_key, table.sort_key)
        return name


def _summary(
    operation: str, done: str, total: int, reasons: dict[Ident, RequestError], kept: str
) -> str:
    """`batch_write: 25 of 1000 requests were not written (25 InternalServerError): ...`"""
    why = Counter(
        error.aws_code if isinstance(error, ServiceError) and error.aws_code else error.code
        for error in reasons.values()
    )
    counts = ", ".join(f"{count} {code}" for code, count in why.most_common())
    noun = "keys" if operation == "batch_get" else "requests"
    return (
        f"{operation}: {len(reasons)} of {total} {noun} were not {done} ({counts}); "
        f".unprocessed holds them and .reasons[i] why, {kept}"
    )


def _refuse_duplicates(idents: list[Ident]) -> None:
    seen: set[Ident] = set()
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
            "conditions); use session.bulk(create=..., put=..., delete=...), which writes "
            "each item with its conditions, concurrently, or a unit of work",
            entity=entity,
        )
