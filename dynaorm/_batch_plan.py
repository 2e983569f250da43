"""Batches without I/O: chunks, retry rounds and an account of every request.

A plan is a generator. It yields `Send` (a request dict to send) and `Pause` (back off
before retry n); the driver sends back the response dict, the mapped `RequestError`, or
None after a pause. When the generator returns, its value says what failed and why. The
sync session drives it with `time.sleep`; an async shell can drive the same generator with
`await`, and a test can drive it with canned responses and no transport at all.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

from dynaorm._retry import transient
from dynaorm.errors import RequestError

__all__ = [
    "GET_CHUNK",
    "WRITE_CHUNK",
    "BatchPlan",
    "Failures",
    "Ident",
    "Outcome",
    "Pause",
    "Send",
    "Step",
]

WRITE_CHUNK = 25  # BatchWriteItem accepts at most 25 requests
GET_CHUNK = 100  # BatchGetItem accepts at most 100 keys

Ident: TypeAlias = tuple[str, str, str]
"""(physical table, partition key value, sort key value) of one item."""


@dataclass(frozen=True)
class Send:
    """Send this request and answer with its response dict or its `RequestError`."""

    operation: str
    params: dict[str, Any]


@dataclass(frozen=True)
class Pause:
    """Back off before retry number `attempt` (1 for the first retry); answer None."""

    attempt: int


Step: TypeAlias = Send | Pause
Outcome: TypeAlias = dict[str, Any] | RequestError | None

Failures: TypeAlias = dict[Ident, RequestError | None]
"""What was not done, and why: the error of the last attempt, or None when DynamoDB
handed the request back unprocessed on every attempt."""

Plan: TypeAlias = Generator[Step, Outcome, Any]


class BatchPlan:
    """The rules for one batch: chunk sizes, what is retried, how much, and accounting.

    `key_names` maps each physical table to its (partition key, sort key) attribute names,
    to recognise items and keys as DynamoDB hands them back.
    """

    def __init__(self, key_names: Mapping[str, tuple[str, str]], *, attempts: int) -> None:
        self.key_names = key_names
        self.attempts = attempts

    def write(self, requests: Mapping[Ident, dict[str, Any]]) -> Generator[Step, Outcome, Failures]:
        """BatchWriteItem `requests` (PutRequest / DeleteRequest bodies) in chunks of 25.

        A chunk that fails, whatever the error, never stops the next one from being sent.
        Returns the requests not written; every other one was.
        """

        def body(pending: list[Ident]) -> dict[str, Any]:
            items: dict[str, list[dict[str, Any]]] = {}
            for ident in pending:
                items.setdefault(ident[0], []).append(requests[ident])
            return {"RequestItems": items}

        def left_over(response: dict[str, Any]) -> list[Ident]:
            return [
                self.ident(
                    table,
                    request.get("PutRequest", {}).get("Item") or request["DeleteRequest"]["Key"],
                )
                for table, left in response.get("UnprocessedItems", {}).items()
                for request in left
            ]

        failures: Failures = {}
        order = list(requests)
        for start in range(0, len(order), WRITE_CHUNK):
            chunk = order[start : start + WRITE_CHUNK]
            failures.update((yield from self._rounds("BatchWriteItem", chunk, body, left_over)))
        return failures

    def get(
        self, keys: Mapping[Ident, dict[str, Any]], *, consistent: bool
    ) -> Generator[Step, Outcome, tuple[dict[Ident, dict[str, Any]], Failures]]:
        """BatchGetItem `keys` (Key bodies) in chunks of 100.

        Returns the items read (by ident) and the keys not read. A key in neither was read
        and has no item. A failed chunk keeps nothing from being read elsewhere.
        """
        found: dict[Ident, dict[str, Any]] = {}

        def body(pending: list[Ident]) -> dict[str, Any]:
            tables: dict[str, dict[str, Any]] = {}
            for ident in pending:
                entry = tables.setdefault(ident[0], {"Keys": []})
                if consistent:
                    entry["ConsistentRead"] = True
                entry["Keys"].append(keys[ident])
            return {"RequestItems": tables}

        def left_over(response: dict[str, Any]) -> list[Ident]:
            for table, items in response.get("Responses", {}).items():
                for item in items:
                    found[self.ident(table, item)] = item
            return [
                self.ident(table, key)
                for table, left in response.get("UnprocessedKeys", {}).items()
                for key in left.get("Keys", [])
            ]

        failures: Failures = {}
        order = list(keys)
        for start in range(0, len(order), GET_CHUNK):
            chunk = order[start : start + GET_CHUNK]
            failures.update((yield from self._rounds("BatchGetItem", chunk, body, left_over)))
        return found, failures

    def ident(self, table: str, body: dict[str, Any]) -> Ident:
        """(table, pk, sk) of an item or key, as DynamoDB hands it back."""
        pk, sk = self.key_names[table]
        return (table, body[pk]["S"], body[sk]["S"])

    def _rounds(
        self,
        operation: str,
        chunk: list[Ident],
        body: Callable[[list[Ident]], dict[str, Any]],
        left_over: Callable[[dict[str, Any]], list[Ident]],
    ) -> Generator[Step, Outcome, Failures]:
        """Send one chunk until nothing is left over, the budget is spent, or an error
        that a resend cannot cure (a refused request, a missing table) ends it."""
        pending, reason = chunk, None
        for attempt in range(self.attempts):
            if attempt:
                yield Pause(attempt)
            outcome = yield Send(operation, body(pending))
            if isinstance(outcome, RequestError):
                reason = outcome
                if not transient(outcome):
                    break
                continue
            if outcome is None:
                raise TypeError(f"a batch plan expects the response to {operation}, got None")
            pending, reason = left_over(outcome), None
            if not pending:
                return {}
        return dict.fromkeys(pending, reason)
