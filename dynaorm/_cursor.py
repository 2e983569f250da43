"""Pagination cursors: LastEvaluatedKey plus a query fingerprint.

With `cursor_secret`, a cursor is sealed with AES-256-GCM (authenticated encryption):
the key values cannot be read from a URL, and any edit or forgery is refused. Each secret
derives its own key (HKDF-SHA256) and a 4-byte key id that the cursor carries, so a list
of secrets (newest first) rotates them: new cursors use the first, older cursors still
open with the others. Without a secret a cursor is readable JSON, and `Query.page` binds
its key to the query's exact range (`check_resume_key`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from dynaorm._bounds import key_matches
from dynaorm.errors import InvalidCursor, KeyDecodingError

Secrets = bytes | Sequence[bytes] | None
"""`cursor_secret`: one secret, or several newest first (rotation), or None."""

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from dynaorm._compiler import QueryPlan
    from dynaorm._entity import EntityInfo
    from dynaorm._keys import KeyTemplate

__all__ = [
    "Secrets",
    "check_resume_key",
    "decode_cursor",
    "encode_cursor",
    "fingerprint",
    "sealer",
    "secrets_of",
    "string_key",
]

_VERSION = 1  # the JSON payload inside either form
_SEALED = 2  # first byte of a sealed cursor: version of the envelope
_KEY_ID_BYTES = 4
_NONCE_BYTES = 12
_MAX_CURSOR_CHARS = 8192  # a LastEvaluatedKey is at most a few KB of key attributes


def fingerprint(parts: Mapping[str, Any]) -> str:
    """A short digest of what identifies a query: table, index, partition, conditions."""
    canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def secrets_of(secret: Secrets) -> tuple[bytes, ...]:
    """The secrets, newest first; refuses an empty list or a secret that is not bytes."""
    if secret is None:
        return ()
    found = (secret,) if isinstance(secret, bytes | bytearray) else tuple(secret)
    if not found or not all(isinstance(s, bytes | bytearray) and s for s in found):
        raise TypeError("cursor_secret: give non-empty bytes, or a list of them newest first")
    return tuple(bytes(s) for s in found)


@lru_cache(maxsize=64)
def sealer(secret: bytes) -> tuple[bytes, AESGCM]:
    """This secret's key id and AES-256-GCM key, derived with HKDF-SHA256."""
    try:
        from cryptography.hazmat.primitives import hashes  # noqa: PLC0415 - `crypto` extra
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: PLC0415
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF  # noqa: PLC0415
    except ImportError as e:
        raise ImportError(
            'cursor_secret seals cursors with AES-GCM: pip install "dynaorm[crypto]"'
        ) from e

    key = HKDF(hashes.SHA256(), 32, salt=None, info=b"dynaorm cursor key v2").derive(secret)
    key_id = hashlib.sha256(b"dynaorm cursor key id" + key).digest()[:_KEY_ID_BYTES]
    return key_id, AESGCM(key)


def encode_cursor(
    last_evaluated_key: Mapping[str, Any], query_fingerprint: str, secret: Secrets
) -> str:
    """A URL-safe string: sealed with the newest secret, or readable JSON without one."""
    payload = json.dumps(
        {"v": _VERSION, "q": query_fingerprint, "k": last_evaluated_key},
        separators=(",", ":"),
        sort_keys=True,
    ).encode("utf-8")
    secrets = secrets_of(secret)
    if not secrets:
        return _b64(payload)
    key_id, aead = sealer(secrets[0])
    header = bytes([_SEALED]) + key_id
    nonce = os.urandom(_NONCE_BYTES)
    return _b64(header + nonce + aead.encrypt(nonce, payload, header))


def decode_cursor(cursor: str, query_fingerprint: str, secret: Secrets) -> dict[str, Any]:
    """The LastEvaluatedKey carried by `cursor`, after checking it belongs to this query.

    Raises InvalidCursor for anything malformed, unsealed when a secret is set, sealed
    with an unknown secret or altered, or made for a different query (which includes a
    different partition: the partition value is part of the fingerprint).
    """
    if not isinstance(cursor, str) or not cursor or len(cursor) > _MAX_CURSOR_CHARS:
        raise InvalidCursor("the cursor is empty, too long or not a string")
    try:
        raw = _unb64(cursor)
    except (binascii.Error, ValueError) as e:
        raise InvalidCursor("the cursor is not valid URL-safe base64") from e
    secrets = secrets_of(secret)
    if secrets:
        raw = _opened(raw, secrets)
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


def _opened(raw: bytes, secrets: tuple[bytes, ...]) -> bytes:
    from cryptography.exceptions import InvalidTag  # noqa: PLC0415 - `crypto` extra

    header_bytes = 1 + _KEY_ID_BYTES
    if len(raw) <= header_bytes + _NONCE_BYTES or raw[0] != _SEALED:
        raise InvalidCursor("the cursor is not sealed with this session's cursor_secret")
    header, nonce = raw[:header_bytes], raw[header_bytes : header_bytes + _NONCE_BYTES]
    for secret in secrets:
        key_id, aead = sealer(secret)
        if hmac.compare_digest(key_id, header[1:]):
            try:
                opened: bytes = aead.decrypt(nonce, raw[header_bytes + _NONCE_BYTES :], header)
            except InvalidTag:
                break
            return opened
    raise InvalidCursor(
        "the cursor does not open with any cursor_secret: it was altered, forged, or sealed "
        "with a secret no longer configured"
    )


def string_key(
    start: Mapping[str, Any], names: set[str], reader: str, *, entity: str | None = None
) -> dict[str, str]:
    """The cursor key's string values, refused unless it holds exactly the attributes
    `names`, each a string (`reader` names what resumes from it, for the message)."""
    values: dict[str, str] = {
        name: value["S"]
        for name, value in start.items()
        if isinstance(value, dict) and len(value) == 1 and isinstance(value.get("S"), str)
    }
    if set(start) != names or set(values) != names:
        raise InvalidCursor(
            f"the cursor's key holds {sorted(start)}; {reader} resumes from "
            f"string attributes {sorted(names)}",
            entity=entity,
        )
    return values


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
    values = string_key(start, names, f"a {info.name} query", entity=info.name)
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
