"""Fast serializing of dynaorm's own data-plane requests: json.dumps instead of botocore's walk.

botocore serializes a JSON-protocol request by walking the operation's input shape value by
value (serialize.py, `JSONSerializer.serialize_to_request` then `_serialize` for every
AttributeValue) and only then calling `json.dumps`. For a 25-item BatchWriteItem that walk
is about half of the client's time. For the data-plane operations the walk changes nothing
but blobs: every other member of their inputs is a string, number, boolean, list or map
that `json.dumps` writes the same way, and none has a timestamp. Blobs (`B`, `BS`) are
base64-encoded, which the `default` hook below does.

The fast path is taken only for `Encoded` parameters: the dicts `Transport.call` builds from
dynaorm's own encoder, whose binary payloads are always `bytes`. Anything else a user sends
through the same botocore client (a plain dict) keeps botocore's serializer. The headers,
method and URL still come from botocore's serializer, run on an empty body, so the request
differs from botocore's own in the body's whitespace and nothing else.
"""

from __future__ import annotations

import json
from base64 import b64encode
from typing import Any

from dynaorm._fast_parse import FAST_OPERATIONS

__all__ = ["Encoded", "FastSerializer"]

_FAST = frozenset(FAST_OPERATIONS)


class Encoded(dict[str, Any]):
    """Request parameters built by dynaorm: `bytes` for every blob, nothing botocore-only."""

    __slots__ = ()


def _blob(value: Any) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return b64encode(value).decode("ascii")
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


_dumps = json.JSONEncoder(separators=(",", ":"), default=_blob, ensure_ascii=True).encode


class FastSerializer:
    """Wraps a botocore client's serializer; `Encoded` data-plane requests skip its walk."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def serialize_to_request(self, parameters: Any, operation_model: Any) -> Any:
        if type(parameters) is not Encoded or operation_model.name not in _FAST:
            return self.inner.serialize_to_request(parameters, operation_model)
        try:
            body = _dumps(parameters).encode("ascii")
        except (TypeError, ValueError):  # not plain data after all: let botocore judge
            return self.inner.serialize_to_request(dict(parameters), operation_model)
        request = self.inner.serialize_to_request({}, operation_model)
        request["body"] = body
        return request
