"""Pagination cursors: LastEvaluatedKey plus a query fingerprint, HMAC-signed with a secret.

The payload is readable JSON (the key values are not hidden): only a signed cursor is
tamper-proof. `Query.page` binds an unsigned cursor's key to the query's range.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from dynaorm._bounds import key_matches
from dynaorm.errors import InvalidCursor, KeyDecodingError

if TYPE_CHECKING:
    from dynaorm._compiler import QueryPlan
    from dynaorm._entity import EntityInfo
    from dynaorm._keys import KeyTemplate

__all__ = ["check_resume_key", "decode_cursor", "encode_cursor", "fingerprint"]

_VERSION = 1
_SIGNATURE_BYTES = 32  # HMAC-SHA256
_MAX_CURSOR_CHARS = 8192  # a LastEvaluatedKey is at most a few KB of key attributes


def fingerprint(parts: Mapping[str, Any]) -> str:
    """A short digest of what identifies a query: table, index, partition, conditions."""
    canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode_cursor(
    last_evaluated_key: Mapping[str, Any], query_fingerprint: str, secret: bytes | None
) -> str:
    """A URL-safe string (readable, not encrypted); HMAC-signed when a secret is given."""
    payload = json.dumps(
        {"v": _VERSION, "q": query_fingerprint, "k": last_evaluated_key},
        separators=(",", ":"),
        sort_keys=True,
    ).encode("utf-8")
    if secret is not None:
        payload += hmac.new(secret, payload, hashlib.sha256).digest()
    return _b64(payload)


def decode_cursor(cursor: str, query_fingerprint: str, secret: bytes | None) -> dict[str, Any]:
    """The LastEvaluatedKey carried by `cursor`, after checking it belongs to this query.

    Raises InvalidCursor for anything malformed, unsigned when a secret is set, signed
    with another secret, or made for a different query (which includes a different
    partition: the partition value is part of the fingerprint).
    """
    if not isinstance(cursor, str) or not cursor or len(cursor) > _MAX_CURSOR_CHARS:
        raise InvalidCursor("the cursor is empty, too long or not a string")
    try:
        raw = _unb64(cursor)
    except (binascii.Error, ValueError) as e:
        raise InvalidCursor("the cursor is not valid URL-safe base64") from e
    if secret is not None:
        raw = _verified(raw, secret)
    try:
        payload = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InvalidCursor("the cursor does not hold a valid payload") from e
    if (
        not isinstance(payload, dict)
        or payload.get("v") != _VERSION
        or not isinstance(payload.get("k"), dict)
    ):
        raise InvalidCursor("the cursor does not hold a valid payload")
    if not hmac.compare_digest(str(payload.get("q")), query_fingerprint):
        raise InvalidCursor(
            "the cursor was made for a different query or partition; start again without a cursor"
        )
    key: dict[str, Any] = payload["k"]
    return key


def _verified(raw: bytes, secret: bytes) -> bytes:
    payload, signature = raw[:-_SIGNATURE_BYTES], raw[-_SIGNATURE_BYTES:]
    expected = hmac.new(secret, payload, hashlib.sha256).digest()
    if len(raw) <= _SIGNATURE_BYTES or not hmac.compare_digest(signature, expected):
        raise InvalidCursor("the cursor's signature does not match: it was altered or forged")
    return payload


def check_resume_key(
    start: Mapping[str, Any], plan: QueryPlan, info: EntityInfo, index_sk: KeyTemplate | None
) -> None:
    """Bind a cursor's key to this query's exact range.

    An unsigned cursor is readable and editable JSON: refuse any key this query could
    not have returned (another partition, outside the sort-key condition, or a key no
    item of this entity can have), so an edit can at most move within the range.
    """
    table = info.table
    names = {table.partition_key, table.sort_key, plan.pk_attribute, plan.sk_attribute}
    values: dict[str, str] = {
        name: value["S"]
        for name, value in start.items()
        if isinstance(value, dict) and len(value) == 1 and isinstance(value.get("S"), str)
    }
    if set(start) != names or set(values) != names:
        raise InvalidCursor(
            f"the cursor's key holds {sorted(start)}; a {info.name} query resumes from "
            f"string attributes {sorted(names)}",
            entity=info.name,
        )
    if values[plan.pk_attribute] != plan.pk_value:
        raise InvalidCursor(
            "the cursor points into another partition",
            entity=info.name,
            key=values[plan.pk_attribute],
        )
    sort = values[plan.sk_attribute]
    if plan.sk_condition is not None and not key_matches(plan.sk_condition, sort):
        raise InvalidCursor(
            f"the cursor's sort key {sort!r} is outside this query's key range",
            entity=info.name,
            key=sort,
        )
    try:
        info.pk.decode(values[table.partition_key])
        info.sk.decode(values[table.sort_key])
        if index_sk is not None:
            index_sk.decode(sort)
    except KeyDecodingError as e:
        raise InvalidCursor(
            f"the cursor's key is not a {info.name} key: {e.message}",
            entity=info.name,
            key=e.key,
            field=e.field,
        ) from None
