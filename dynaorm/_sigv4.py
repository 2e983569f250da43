"""AWS Signature Version 4 for DynamoDB's JSON protocol, with the signing key cached.

Every dynaorm request is `POST /` with no query string and the same four signed headers
(content-type, host, x-amz-date, x-amz-target, plus x-amz-security-token with temporary
credentials), so the canonical request is a fixed template. Deriving the signing key costs
four HMACs; it changes only with the secret, the UTC date, the region and the service, so
it is derived once per (secret, date, region, service) and reused: a signature is then
two SHA-256 digests and one HMAC. tests/unit/test_sigv4.py proves the headers equal to
botocore's `SigV4Auth` over random requests.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time

__all__ = ["CONTENT_TYPE", "Signer", "canonical_host"]

CONTENT_TYPE = "application/x-amz-json-1.0"
_ALGORITHM = "AWS4-HMAC-SHA256"
_DEFAULT_PORTS = {"http": 80, "https": 443}


def canonical_host(scheme: str, hostname: str, port: int | None) -> str:
    """The Host header botocore signs: the port only when it is not the scheme's default."""
    host = f"[{hostname}]" if ":" in hostname else hostname  # an IPv6 literal
    if port is None or _DEFAULT_PORTS.get(scheme) == port:
        return host
    return f"{host}:{port}"


class Signer:
    """Signs DynamoDB JSON requests; safe to share across threads and event loops."""

    _MAX_KEYS = 32  # secrets x days x regions seen by one process: a handful

    def __init__(self, service: str = "dynamodb") -> None:
        self.service = service
        self._keys: dict[tuple[str, str, str], bytes] = {}
        self._lock = threading.Lock()

    def signing_key(self, secret_key: str, date: str, region: str) -> bytes:
        """The derived key for `date` (YYYYMMDD), cached."""
        cache_key = (secret_key, date, region)
        key = self._keys.get(cache_key)
        if key is None:
            key = _hmac(f"AWS4{secret_key}".encode(), date)
            for part in (region, self.service, "aws4_request"):
                key = _hmac(key, part)
            with self._lock:
                if len(self._keys) >= self._MAX_KEYS:
                    self._keys.clear()  # yesterday's keys, or rotated secrets
                self._keys[cache_key] = key
        return key

    def headers(
        self,
        *,
        host: str,
        target: str,
        body: bytes,
        region: str,
        access_key: str,
        secret_key: str,
        token: str | None = None,
        timestamp: str | None = None,
    ) -> dict[str, str]:
        """Every header of the request, signed: Host, Content-Type, X-Amz-Target,
        X-Amz-Date, X-Amz-Security-Token (with a token) and Authorization.

        `target` is the whole X-Amz-Target value (`DynamoDB_20120810.GetItem`);
        `timestamp` (YYYYMMDDTHHMMSSZ) defaults to now.
        """
        stamp = timestamp or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        date = stamp[:8]
        if token:
            canonical_headers = (
                f"content-type:{CONTENT_TYPE}\nhost:{host}\nx-amz-date:{stamp}\n"
                f"x-amz-security-token:{_trim(token)}\nx-amz-target:{target}\n"
            )
            signed = "content-type;host;x-amz-date;x-amz-security-token;x-amz-target"
        else:
            canonical_headers = (
                f"content-type:{CONTENT_TYPE}\nhost:{host}\nx-amz-date:{stamp}\n"
                f"x-amz-target:{target}\n"
            )
            signed = "content-type;host;x-amz-date;x-amz-target"
        payload = hashlib.sha256(body).hexdigest()
        canonical = f"POST\n/\n\n{canonical_headers}\n{signed}\n{payload}"
        scope = f"{date}/{region}/{self.service}/aws4_request"
        digest = hashlib.sha256(canonical.encode()).hexdigest()
        to_sign = f"{_ALGORITHM}\n{stamp}\n{scope}\n{digest}"
        key = self.signing_key(secret_key, date, region)
        signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        headers = {
            "Host": host,
            "Content-Type": CONTENT_TYPE,
            "X-Amz-Target": target,
            "X-Amz-Date": stamp,
            "Authorization": (
                f"{_ALGORITHM} Credential={access_key}/{scope}, "
                f"SignedHeaders={signed}, Signature={signature}"
            ),
        }
        if token:
            headers["X-Amz-Security-Token"] = token
        return headers


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def _trim(value: str) -> str:
    """SigV4's Trimall: surrounding whitespace removed, inner runs made one space."""
    return " ".join(value.split())
