"""Batches without I/O: chunks, retry rounds and an account of every request.

A plan is a generator of steps (`dynaorm._io`): a `Call` per request, answered with the
response dict or with the mapped `RequestError` thrown in, and the `Sleep` of its
`Backoff` before each retry. When the generator returns, its value says what failed and
why. `drive` runs it for the sync session, `adrive` for an async one, and a test can drive
it with canned responses and no transport at all.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeAlias

from dynaorm._io import Call, Steps
from dynaorm._retry import Backoff, transient
from dynaorm.errors import RequestError

__all__ = [
    "GET_CHUNK",
    "WRITE_CHUNK",
    "BatchPlan",
    "Failures",
    "Ident",
]

WRITE_CHUNK = 25  # BatchWriteItem accepts at most 25 requests
GET_CHUNK = 100  # BatchGetItem accepts at most 100 keys

Ident: TypeAlias = tuple[str, str, str]
"""(physical table, partition key value, sort key value) of one item."""


Failures: TypeAlias = dict[Ident, RequestError | None]
"""What was not done, and why: the error of the last attempt, or None when DynamoDB
handed the request back unprocessed on every attempt."""


class BatchPlan:
    """The rules for one batch: chunk sizes, what is retried, how much, and accounting.

    `key_names` maps each physical table to its (partition key, sort key) attribute names,
    to recognise items and keys as DynamoDB hands them back; `retry` is the budget of
    attempts per chunk and the backoff between them.
    """

    def __init__(self, key_names: Mapping[str, tuple[str, str]], *, retry: Backoff) -> None:
        self.key_names = key_names
        self.retry = retry

    def write(self, requests: Mapping[Ident, dict[str, Any]]) -> Steps[Failures]:
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
    ) -> Steps[tuple[dict[Ident, dict[str, Any]], Failures]]:
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
    ) -> Steps[Failures]:
        """Send one chunk until nothing is left over, the budget is spent, or an error
        that a resend cannot cure (a refused request, a missing table) ends it."""
        pending: list[Ident] = chunk
        reason: RequestError | None = None
        for attempt in range(self.retry.attempts):
            if attempt:
                yield self.retry.wait(attempt)
            try:
                response = yield Call(operation, body(pending))
            except RequestError as error:
                reason = error
                if not transient(error):
                    break
                continue
            if response is None:
                raise TypeError(f"a batch plan expects the response to {operation}, got None")
            pending, reason = left_over(response), None
            if not pending:
                return {}
        return dict.fromkeys(pending, reason)
