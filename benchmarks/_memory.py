"""Memory of a long query: iterating holds about one page, whatever the item count."""

from __future__ import annotations

import json
import tracemalloc
from typing import Any

from botocore.awsrequest import AWSResponse, HeadersDict

from benchmarks._fake import _headers, _Raw

__all__ = ["iteration_peak"]

PAGE = 1000  # items per page: ~1 MB with these ~800-byte items, like DynamoDB's page limit


class _PagingFake:
    """Answers Query with `pages` pages of the same items, then stops."""

    def __init__(self, items: list[dict[str, Any]], pages: int) -> None:
        last = items[-1]
        more = {"PK": last["PK"], "SK": last["SK"]}
        self._middle = self._answer({"Items": items, "Count": len(items), "LastEvaluatedKey": more})
        self._last = self._answer({"Items": items, "Count": len(items)})
        self.pages = pages
        self.sent = 0

    @staticmethod
    def _answer(payload: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
        body = json.dumps(payload, separators=(",", ":")).encode()
        return body, _headers(body)

    def __call__(self, request: Any, **_: Any) -> AWSResponse:
        self.sent += 1
        body, headers = self._middle if self.sent < self.pages else self._last
        return AWSResponse(request.url, 200, HeadersDict(headers), _Raw(body))


def iteration_peak(peer: Any, entity: Any, post_items: list[dict[str, Any]], total: int) -> int:
    """tracemalloc peak (bytes) while iterating a `total`-item query one entity at a time."""
    page = (post_items * (PAGE // len(post_items) + 1))[:PAGE]
    fake = _PagingFake(page, total // PAGE)
    session = peer.session
    client = session.transport.botocore_client
    client.meta.events.unregister("before-send.dynamodb.*", peer.fake)
    client.meta.events.register("before-send.dynamodb.Query", fake)
    try:
        tracemalloc.start()
        count = 0
        for _post in session.query(entity, user_id="u1"):
            count += 1
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    finally:
        client.meta.events.unregister("before-send.dynamodb.Query", fake)
        peer.fake.attach(client)
    if count != total:
        raise AssertionError(f"iterated {count} items, expected {total}")
    return peak
