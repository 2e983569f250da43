"""Fast serializing of dynaorm's own data-plane requests: json.dumps instead of botocore's walk.

botocore serializes a JSON-protocol request by walking the operation's input shape value by
value (serialize.py, `JSONSerializer.serialize_to_request` then `_serialize` for every
AttributeValue) and only then calling `json.dumps`. For a 25-item BatchWriteItem that walk
is about two thirds of serializing. For the data-plane operations the walk changes nothing
but binary values: every other member of their inputs is a string, number, boolean, list
or map that `json.dumps` writes as botocore would, and none is a timestamp. Binary values
(`B`, `BS`) are base64-encoded by the walk, from `bytes` or from the UTF-8 of a `str`.

So the fast path writes the parameters with one `json.dumps`, and hands the request back to
botocore's own serializer whenever that could differ: when `json.dumps` refuses a value
(`bytes` among them) or when the JSON holds a `"B"` or `"BS"` token (a binary value, or an
attribute or string that happens to be named so). What it sends is then botocore's body
exactly, whatever the payload types. The method, URL and headers always come from
botocore's serializer, run on an empty body.

Only `Encoded` parameters take the fast path: the dicts `Transport.call` sends. Anything a
user sends through the same botocore client (a plain dict) keeps botocore's serializer.
"""

from __future__ import annotations

import json
from typing import Any

from dynaorm._fast_parse import FAST_OPERATIONS

__all__ = ["Encoded", "FastSerializer"]

_FAST = frozenset(FAST_OPERATIONS)
_dumps = json.JSONEncoder(separators=(",", ":")).encode


class Encoded(dict[str, Any]):
    """Request parameters built by dynaorm (the only ones the fast path takes)."""

    __slots__ = ()


class FastSerializer:
    """Wraps a botocore client's serializer; `Encoded` data-plane requests skip its walk."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def serialize_to_request(self, parameters: Any, operation_model: Any) -> Any:
        if type(parameters) is Encoded and operation_model.name in _FAST:
            try:
                body = _dumps(parameters).encode("ascii")  # ensure_ascii: ASCII only
            except (TypeError, ValueError):  # bytes, say: botocore's walk encodes them
                pass
            else:
                if b'"B"' not in body and b'"BS"' not in body:
                    request = self.inner.serialize_to_request({}, operation_model)
                    request["body"] = body
                    return request
        return self.inner.serialize_to_request(parameters, operation_model)
