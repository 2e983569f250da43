"""An infinitely fast DynamoDB: canned bytes handed back where the socket would be.

For botocore it is a `before-send` hook: botocore emits `before-send.<service>.<operation>`
just before it would open a socket and uses the first handler that returns a response
instead (botocore endpoint.py, `_do_get_response`). For dynaorm's direct transport it is
the urllib3 pool the transport posts to (`opener()`). Everything else — serializing,
signing, retries, parsing, the library's own work — runs as it would against the real
service.
"""

from __future__ import annotations

import json
from binascii import crc32
from typing import Any

from botocore.awsrequest import AWSResponse, HeadersDict

__all__ = ["CannedOpener", "FakeDynamoDB"]


class _Raw:
    """The `raw` of an AWSResponse: botocore reads the body through `stream()`."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Any:
        yield self._body


_EMPTY = b"{}"


def _headers(body: bytes) -> dict[str, str]:
    return {
        "x-amzn-requestid": "BENCHMARKREQUESTID",
        "content-type": "application/x-amz-json-1.0",
        "content-length": str(len(body)),
        # Real DynamoDB sends it and botocore checks it on every response.
        "x-amz-crc32": str(crc32(body) & 0xFFFFFFFF),
    }


class FakeDynamoDB:
    """Answers each operation with the body set by `set()`; can record requests.

    One instance per library, so each library reads back the items it wrote itself.
    Bodies and their headers (with the CRC32) are built once, outside the timed code.
    """

    inside_botocore = True  # only a library that sends through botocore can be answered

    def __init__(self) -> None:
        self._responses: dict[str, tuple[bytes, dict[str, str]]] = {}
        self.recording = False
        self.requests: list[tuple[str, dict[str, Any]]] = []

    def set(self, operation: str, payload: dict[str, Any]) -> int:
        """Answer `operation` with this JSON from now on; returns the body's size."""
        body = json.dumps(payload, separators=(",", ":")).encode()
        self._responses[operation] = (body, _headers(body))
        return len(body)

    def attach(self, client: Any) -> None:
        """Answer every DynamoDB request of this botocore client."""
        client.meta.events.register("before-send.dynamodb.*", self)

    def opener(self) -> CannedOpener:
        """A stand-in for the urllib3 pool of dynaorm's direct transport."""
        return CannedOpener(self)

    def __call__(self, request: Any, event_name: str, **_: Any) -> AWSResponse:
        body, headers = self.answer(event_name.rsplit(".", 1)[1], request.body)
        return AWSResponse(request.url, 200, HeadersDict(headers), _Raw(body))

    def answer(self, operation: str, sent: bytes) -> tuple[bytes, dict[str, str]]:
        """The canned body and headers for `operation` (recording what was sent)."""
        if self.recording:
            self.requests.append((operation, json.loads(sent)))
            return _EMPTY, _headers(_EMPTY)
        if operation in self._responses:
            return self._responses[operation]
        raise RuntimeError(f"the fake DynamoDB has no answer for {operation}")

    def record(self, action: Any) -> list[dict[str, Any]]:
        """Run `action` answering `{}`, and return the Items it put (PutItem, batches)."""
        self.recording, self.requests = True, []
        try:
            action()
        finally:
            self.recording = False
        items: list[dict[str, Any]] = []
        for operation, body in self.requests:
            if operation == "PutItem":
                items.append(body["Item"])
            elif operation == "BatchWriteItem":
                for requests in body["RequestItems"].values():
                    items.extend(r["PutRequest"]["Item"] for r in requests)
        return items


class _Answer:
    """What urllib3's `urlopen` returns, as far as the direct transport reads it."""

    __slots__ = ("data", "headers", "status")

    def __init__(self, data: bytes, headers: dict[str, str]) -> None:
        self.status = 200
        self.headers = headers
        self.data = data


class CannedOpener:
    """`urlopen` as the direct transport calls it, answered by a `FakeDynamoDB`."""

    def __init__(self, fake: FakeDynamoDB) -> None:
        self._fake = fake

    def urlopen(self, method: str, url: str, *, body: bytes, headers: Any, **_: Any) -> _Answer:
        operation = headers["X-Amz-Target"].rsplit(".", 1)[1]
        data, answer_headers = self._fake.answer(operation, body)
        return _Answer(data, answer_headers)
