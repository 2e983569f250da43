"""Fast parsing of successful DynamoDB responses: json.loads instead of botocore's walk."""

from __future__ import annotations

import json
from base64 import b64decode
from collections.abc import Callable
from typing import Any

__all__ = ["FAST_OPERATIONS", "parse_fast"]

# botocore parses a JSON response by walking the operation's output shape value by value
# (parsers.py:1110-1115 `_handle_json_body`, then `_parse_shape` for every AttributeValue);
# for a 100-item Query that walk is most of the client's time. Every value in these
# operations' outputs is already the Python value json.loads gives (AttributeValue
# payloads are strings, numbers and booleans; doubles go through `_default_handle`,
# parsers.py:363) except blobs, which botocore base64-decodes (parsers.py:232-236,
# 721-722). None of them has a timestamp; DescribeTable does, so it keeps botocore's parser.
FAST_OPERATIONS = (
    "GetItem",
    "Query",
    "Scan",
    "BatchGetItem",
    "TransactGetItems",
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "BatchWriteItem",
    "TransactWriteItems",
)

_Fixer = Callable[[Any], Any]


class _OutputPlan:
    """What to keep of a parsed body and where its blobs are, built once per operation."""

    def __init__(self, shape: Any) -> None:
        members = shape.members if shape is not None else {}
        # (name on the wire, name botocore returns) of every top-level output member.
        self.names = tuple(
            (member.serialization.get("name", name), name) for name, member in members.items()
        )
        self._fixers: dict[str, _Fixer | None] = {}
        self.fix_blobs = self._fixer(shape) if shape is not None else None

    def _fixer(self, shape: Any) -> _Fixer | None:
        """A function decoding, in place, every blob inside a value of `shape`."""
        if shape.type_name == "blob":
            return b64decode
        if not _has_blob(shape, ()):
            return None
        name = shape.name
        if name in self._fixers:
            return self._fixers[name] or self._late(name)
        self._fixers[name] = None
        fixer: _Fixer
        if shape.type_name == "structure":
            children = [
                (member.serialization.get("name", name), self._fixer(member))
                for name, member in shape.members.items()
            ]
            fixer = _fix_members([(name, fix) for name, fix in children if fix is not None])
        elif shape.type_name == "list":
            fixer = _fix_elements(self._fixer(shape.member))
        else:  # map
            fixer = _fix_values(self._fixer(shape.value))
        self._fixers[name] = fixer
        return fixer

    def _late(self, name: str) -> _Fixer:
        """The fixer of a shape still being built (AttributeValue's L and M recurse)."""

        def fix(value: Any) -> Any:
            fixer = self._fixers[name]
            assert fixer is not None
            return fixer(value)

        return fix


def _has_blob(shape: Any, open_shapes: tuple[str, ...]) -> bool:
    if shape.type_name == "blob":
        return True
    if shape.name in open_shapes:
        return False
    inside = (*open_shapes, shape.name)
    if shape.type_name == "structure":
        return any(_has_blob(member, inside) for member in shape.members.values())
    if shape.type_name == "list":
        return _has_blob(shape.member, inside)
    if shape.type_name == "map":
        return _has_blob(shape.value, inside)
    return False


def _fix_members(children: list[tuple[str, _Fixer]]) -> _Fixer:
    def fix(value: Any) -> Any:
        for name, child in children:
            member = value.get(name)
            if member is not None:
                value[name] = child(member)
        return value

    return fix


def _fix_elements(child: _Fixer | None) -> _Fixer:
    def fix(value: Any) -> Any:
        return [child(element) for element in value] if child is not None else value

    return fix


def _fix_values(child: _Fixer | None) -> _Fixer:
    def fix(value: Any) -> Any:
        if child is not None:
            for name, element in value.items():
                value[name] = child(element)
        return value

    return fix


_PLANS: dict[str, _OutputPlan] = {}


def parse_fast(
    operation_model: Any,
    response_dict: dict[str, Any],
    customized_response_dict: dict[str, Any],
    **_: Any,
) -> None:
    """botocore `before-parse` handler: parse a 200 DynamoDB JSON body with json.loads.

    endpoint.py:307-318 (botocore 1.44): the handler gets the response dict and an empty
    `customized_response_dict`; botocore then still runs its parser on `response_dict`
    and merges `customized_response_dict` over the result. So we put the parsed members
    there and leave botocore an empty body, from which it builds only
    `ResponseMetadata` (request id, status, headers; RetryAttempts is added later).
    Anything else is left to botocore untouched: error statuses (so errors, their
    modeled fields and retries behave exactly as before), bodies that are not a JSON
    object. The HTTP response object keeps the original body, so the retry handler's
    CRC32 check (`x-amz-crc32`) still sees it.
    """
    body = response_dict.get("body")
    if response_dict.get("status_code") != 200 or not isinstance(body, bytes) or not body:
        return
    try:
        parsed = json.loads(body)
    except ValueError:  # includes UnicodeDecodeError
        return
    if not isinstance(parsed, dict):
        return
    plan = _PLANS.get(operation_model.name)
    if plan is None:
        plan = _PLANS[operation_model.name] = _OutputPlan(operation_model.output_shape)
    # `"B"` / `"BS"` can only appear in the raw text if a binary tag might be present
    # (or a value or name happens to be "B"): only then walk the values.
    if plan.fix_blobs is not None and (b'"B"' in body or b'"BS"' in body):
        plan.fix_blobs(parsed)
    # Like botocore, keep only the modeled members and drop JSON nulls.
    for wire, name in plan.names:
        value = parsed.get(wire)
        if value is not None:
            customized_response_dict[name] = value
    # An empty body parses to {} without a second json.loads (parsers.py:769-771).
    response_dict["body"] = b""
