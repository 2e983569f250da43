"""Where the direct transports find credentials, region and endpoint, as AWS users expect.

Credentials, first found wins:

1. the keys given to the transport;
2. `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`), read here
   without importing botocore (the Lambda case: a cold start pays no botocore import);
3. botocore's whole chain (profiles, SSO, web identity, container, IMDS, assume-role),
   imported on first use; refreshable credentials are read before every request with
   `get_frozen_credentials()`, which refreshes them ahead of expiry;
4. for a loopback endpoint (DynamoDB Local), dummy keys;
5. otherwise every request fails with `ServiceError` (aws_code `NoCredentialsError`).

Nothing is looked up before the first request.
"""

from __future__ import annotations

import ipaddress
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dynaorm._wire import Failure

__all__ = ["CredentialSource", "Credentials", "Endpoint", "is_loopback", "resolve_region"]

DEFAULT_REGION = "us-east-1"  # what the botocore transport has always fallen back to
LOOPBACK_KEY = "local"  # DynamoDB Local accepts any key of letters and digits


@dataclass(frozen=True, slots=True)
class Credentials:
    access_key: str
    secret_key: str
    token: str | None = None


def env(*names: str) -> str | None:
    """The first of these environment variables that is set and not empty."""
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return None


def resolve_region(region: str | None) -> str:
    """The argument, `AWS_REGION`, `AWS_DEFAULT_REGION`, the profile's, then us-east-1."""
    found = region or env("AWS_REGION", "AWS_DEFAULT_REGION")
    if found:
        return found
    if _has_aws_config():
        found = _botocore_session().get_config_variable("region")
    return str(found) if found else DEFAULT_REGION


def _has_aws_config() -> bool:
    """Whether a profile could name a region (only then is botocore worth importing)."""
    if env("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_CONFIG_FILE"):
        return True
    return (Path.home() / ".aws" / "config").is_file()


def _botocore_session() -> Any:
    import botocore.session  # noqa: PLC0415  (lazily: env credentials never need it)

    return botocore.session.get_session()


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where requests go: the URL and what the signer needs of it."""

    url: str
    scheme: str
    hostname: str
    port: int | None

    @classmethod
    def resolve(cls, endpoint_url: str | None, region: str) -> Endpoint:
        """The argument, `AWS_ENDPOINT_URL_DYNAMODB`, `AWS_ENDPOINT_URL`, then AWS's."""
        url = endpoint_url or env("AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL")
        if not url:
            suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
            url = f"https://dynamodb.{region}.{suffix}"
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"endpoint_url must be an http(s) URL with a host: {url!r}")
        if parts.path not in ("", "/") or parts.query:
            raise ValueError(f"endpoint_url must have no path or query (DynamoDB's is /): {url!r}")
        return cls(url.rstrip("/"), parts.scheme, parts.hostname, parts.port)

    @property
    def loopback(self) -> bool:
        return is_loopback(self.hostname)


def is_loopback(hostname: str) -> bool:
    """localhost, 127.0.0.0/8 or ::1."""
    if hostname.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(hostname.strip("[]")).is_loopback
    except ValueError:
        return False


class CredentialSource:
    """The credentials of one transport, looked up on first use; thread-safe."""

    def __init__(
        self,
        endpoint: Endpoint,
        access_key: str | None = None,
        secret_key: str | None = None,
        token: str | None = None,
    ) -> None:
        self._endpoint = endpoint
        self._static: Credentials | None = None
        if access_key and secret_key:
            self._static = Credentials(access_key, secret_key, token or None)
        self._chain: Any = None  # botocore's Credentials / RefreshableCredentials
        self._resolved = self._static is not None
        self._lock = threading.Lock()

    @property
    def resolved(self) -> bool:
        """Whether `get()` is known not to block on a lookup (static or fresh credentials)."""
        if not self._resolved:
            return False
        chain = self._chain
        return chain is None or not _refresh_needed(chain)

    def get(self) -> Credentials:
        """The credentials to sign the next request with; `Failure` when there are none.

        May block: the first lookup through botocore's chain, or a refresh.
        """
        if not self._resolved:
            self._resolve()
        if self._static is not None:
            return self._static
        if self._chain is None:
            raise Failure(
                "NoCredentialsError",
                "Unable to locate credentials: pass aws_access_key_id and "
                "aws_secret_access_key, set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                "or configure a profile",
            )
        frozen = self._chain.get_frozen_credentials()
        return Credentials(frozen.access_key, frozen.secret_key, frozen.token or None)

    def _resolve(self) -> None:
        with self._lock:
            if self._resolved:
                return
            key, secret = env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")
            if key and secret:
                token = env("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")
                self._static = Credentials(key, secret, token)
            else:
                self._chain = _botocore_session().get_credentials()
                if self._chain is None and self._endpoint.loopback:
                    self._static = Credentials(LOOPBACK_KEY, LOOPBACK_KEY)
            self._resolved = True


def _refresh_needed(chain: Any) -> bool:
    check = getattr(chain, "refresh_needed", None)
    return bool(check()) if check is not None else False
