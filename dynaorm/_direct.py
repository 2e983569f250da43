"""The direct transport: DynamoDB's JSON protocol over urllib3, signed by `_sigv4`.

No botocore and no pynamodb on this path (see `_credentials` for the one lazy exception:
credentials that only botocore's chain can find). `DirectBase` holds what the blocking and
the async transport share: configuration, signing, the retry loop's bookkeeping and
reporting; each shell adds only its HTTP client.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NewConnectionError,
    ProtocolError,
    ProxyError,
    ReadTimeoutError,
    SSLError,
)

from dynaorm._credentials import CredentialSource, Endpoint, resolve_region
from dynaorm._reporting import CONSUMED_CAPACITY_OPERATIONS, AttemptWatcher, Reporting
from dynaorm._sigv4 import Signer, canonical_host
from dynaorm._wire import (
    TARGET_PREFIX,
    Failure,
    RetryPolicy,
    encode_body,
    map_error,
    read_response,
)
from dynaorm.errors import RequestError

__all__ = ["DirectBase", "DirectTransport", "ca_bundle", "proxy_for"]

# The botocore transport's defaults (pynamodb's settings), kept.
DEFAULT_CONNECT_TIMEOUT = 15.0
DEFAULT_READ_TIMEOUT = 30.0
POOL_SIZE = 10  # botocore's max_pool_connections


class DirectBase(Reporting):
    """Configuration, signing, retries and reporting of the direct transports."""

    def __init__(
        self,
        *,
        region: str | None = None,
        endpoint_url: str | None = None,
        aws_access_key_id: str | None = None,
        aws_secret_access_key: str | None = None,
        aws_session_token: str | None = None,
        table_prefix: str | None = None,
        max_retry_attempts: int | None = None,
        connect_timeout: float | None = None,
        read_timeout: float | None = None,
    ) -> None:
        super().__init__()
        self._region = resolve_region(region)
        self._endpoint = Endpoint.resolve(endpoint_url, self._region)
        if table_prefix is None:
            table_prefix = os.environ.get("DYNAMODB_TABLE_PREFIX", "")
        self._table_prefix = table_prefix
        self._credentials = CredentialSource(
            self._endpoint, aws_access_key_id, aws_secret_access_key, aws_session_token
        )
        self._signer = Signer()
        self.retry = RetryPolicy(max_retry_attempts)
        self.connect_timeout = connect_timeout or DEFAULT_CONNECT_TIMEOUT
        self.read_timeout = read_timeout or DEFAULT_READ_TIMEOUT
        self._host = _host_header(self._endpoint)
        self._watchers: list[AttemptWatcher] = []
        self._setup()

    def _setup(self) -> None:
        """Prepare the HTTP side (no connection is opened before the first request)."""

    @property
    def region(self) -> str:
        return self._region

    @property
    def endpoint_url(self) -> str:
        return self._endpoint.url

    @property
    def table_prefix(self) -> str:
        return self._table_prefix

    def table_name(self, logical: str) -> str:
        """The physical name of a table: the configured prefix, then the logical name."""
        # Imported here: the schema module (and what it imports) is no part of sending.
        from dynaorm._schema import physical_table_name  # noqa: PLC0415

        return physical_table_name(self._table_prefix, logical)

    def watch_attempts(self, watcher: AttemptWatcher) -> None:
        """Call `watcher(code)` after every attempt: its error code, None for a success."""
        with self._listeners_lock:
            if watcher not in self._watchers:
                self._watchers.append(watcher)

    def _body(self, operation: str, params: Mapping[str, Any]) -> bytes:
        # The data plane reports consumed capacity (for stats and observers); the control
        # plane (DescribeTimeToLive, say) refuses the parameter.
        if operation in CONSUMED_CAPACITY_OPERATIONS and "ReturnConsumedCapacity" not in params:
            params = {**params, "ReturnConsumedCapacity": "TOTAL"}
        return encode_body(params)

    def _headers(self, operation: str, body: bytes) -> dict[str, str]:
        credentials = self._credentials.get()
        return self._signer.headers(
            host=self._host,
            target=TARGET_PREFIX + operation,
            body=body,
            region=self._region,
            access_key=credentials.access_key,
            secret_key=credentials.secret_key,
            token=credentials.token,
        )

    def _attempted(self, failure: Failure | None) -> None:
        self.retry.after_attempt(failure)
        for watcher in self._watchers:
            watcher(None if failure is None else failure.code)

    def _failed(
        self,
        failure: Failure,
        operation: str,
        sent: dict[str, Any],
        started: float,
        context: tuple[str | None, str | None, Any],
    ) -> RequestError:
        table, entity, key = context
        error = map_error(
            failure.code,
            failure.message,
            failure.response,
            operation,
            sent,
            table=table,
            entity=entity,
            key=key,
        )
        self._finish(operation, sent, None, error, started)
        return error


class DirectTransport(DirectBase):
    """Sends DynamoDB requests itself: keep-alive HTTP(S) through one urllib3 pool manager.

    Safe to share across threads (urllib3's pools are). Options are `Transport`'s.
    """

    def _setup(self) -> None:
        self.sleep: Callable[[float], None] = time.sleep  # tests record instead of waiting
        self._manager_lock = threading.Lock()
        self._manager: urllib3.PoolManager | None = None
        self._opener: urllib3.PoolManager | urllib3.HTTPConnectionPool | None = None
        self._path = "/"
        self._timeout = urllib3.Timeout(connect=self.connect_timeout, read=self.read_timeout)

    def call(
        self,
        operation: str,
        params: dict[str, Any],
        *,
        table: str | None = None,
        entity: str | None = None,
        key: Any = None,
    ) -> dict[str, Any]:
        """Send one request and return the response dict.

        What DynamoDB or the network answered becomes a `RequestError`; any other
        exception (a bug, a value that is not DynamoDB JSON) propagates unchanged.
        """
        hook = self._send_hook
        if hook is None:
            return self._send(operation, params, table, entity, key)
        return hook(
            operation, params, entity, lambda: self._send(operation, params, table, entity, key)
        )

    def _send(
        self,
        operation: str,
        params: dict[str, Any],
        table: str | None,
        entity: str | None,
        key: Any,
    ) -> dict[str, Any]:
        body = self._body(operation, params)
        started = time.perf_counter()
        try:
            response = self._exchange(operation, body)
        except Failure as failure:
            error = self._failed(failure, operation, params, started, (table, entity, key))
            raise error from failure
        self._finish(operation, params, response, None, started)
        return response

    def _exchange(self, operation: str, body: bytes) -> dict[str, Any]:
        """Attempts until one succeeds or the retry policy gives up (`Failure`)."""
        attempt, last = 0, None
        while True:
            attempt += 1
            wait = self.retry.before_attempt()
            if wait:
                self.sleep(wait)
            try:
                headers = self._headers(operation, body)
                status, answer_headers, answer = self._post(body, headers)
                response = read_response(status, answer_headers, answer, attempt)
            except Failure as failure:
                self._attempted(failure)
                delay = self.retry.delay(failure, attempt)
                if delay is None:
                    raise
                last = failure
                self.sleep(delay)
                continue
            self._attempted(None)
            self.retry.succeeded(attempt, last)
            return response

    def _post(self, body: bytes, headers: dict[str, str]) -> tuple[int, Any, bytes]:
        opener = self._opener or self._open()
        try:
            answer = opener.urlopen(
                "POST",
                self._path,
                body=body,
                headers=headers,
                retries=False,
                redirect=False,
                timeout=self._timeout,
            )
        except HTTPError as error:
            raise connection_failure(error) from error
        return answer.status, answer.headers, answer.data

    def _open(self) -> urllib3.PoolManager | urllib3.HTTPConnectionPool:
        with self._manager_lock:
            if self._opener is None:
                manager = _pool_manager(self._endpoint)
                # `_path` before `_opener`: another thread may use the opener at once.
                if isinstance(manager, urllib3.ProxyManager):
                    self._path = self._endpoint.url + "/"
                    self._opener = manager
                else:
                    # Straight to the host's pool: the manager would parse the URL and
                    # look the pool up again on every request.
                    self._path = "/"
                    self._opener = manager.connection_from_url(self._endpoint.url)
                self._manager = manager
            return self._opener

    def close(self) -> None:
        """Release pooled HTTP connections; a later call opens new ones."""
        with self._manager_lock:
            manager, self._manager, self._opener = self._manager, None, None
        if manager is not None:
            manager.clear()

    def __enter__(self) -> DirectTransport:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def connection_failure(error: HTTPError) -> Failure:
    """The failure of an attempt that got no answer, named as botocore names it."""
    text = str(error)
    if isinstance(error, ProxyError):
        return Failure("ProxyConnectionError", text, connection=True)
    if isinstance(error, SSLError):
        # A certificate that does not verify will not verify on the next attempt either.
        return Failure("SSLError", text)
    if isinstance(error, NewConnectionError):  # refused, unreachable, name not resolved
        return Failure("EndpointConnectionError", text, connection=True)
    if isinstance(error, ConnectTimeoutError):
        return Failure("ConnectTimeoutError", text, connection=True, timeout=True)
    if isinstance(error, ReadTimeoutError):
        return Failure("ReadTimeoutError", text, connection=True, timeout=True)
    if isinstance(error, ProtocolError):  # closed, reset or cut short mid-answer
        return Failure("ConnectionClosedError", text, connection=True)
    return Failure("HTTPClientError", text, connection=True)


def ca_bundle() -> str | None:
    """`AWS_CA_BUNDLE`, else certifi's bundle if installed, else None (the system's)."""
    configured = os.environ.get("AWS_CA_BUNDLE")
    if configured:
        return configured
    try:
        import certifi  # noqa: PLC0415  (optional)
    except ImportError:
        return None
    return str(certifi.where())


def proxy_for(endpoint: Endpoint) -> str | None:
    """The proxy URL for `endpoint` from HTTPS_PROXY / HTTP_PROXY, None under NO_PROXY."""
    if not any(name.lower().endswith("_proxy") for name in os.environ):
        return None  # the usual case, without importing urllib.request
    import urllib.request  # noqa: PLC0415

    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(endpoint.scheme)
    if not proxy:
        return None
    netloc = endpoint.hostname if endpoint.port is None else f"{endpoint.hostname}:{endpoint.port}"
    # NO_PROXY matching as urllib (and requests) do it; typeshed does not list it.
    bypass: Callable[[str, dict[str, str]], bool] = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
    if bypass(netloc, proxies):
        return None
    return proxy if "://" in proxy else f"http://{proxy}"


def _pool_manager(endpoint: Endpoint) -> urllib3.PoolManager:
    options: dict[str, Any] = {"maxsize": POOL_SIZE, "block": False}
    if endpoint.scheme == "https":
        options |= {"cert_reqs": "CERT_REQUIRED", "ca_certs": ca_bundle()}
    proxy = proxy_for(endpoint)
    if proxy is not None:
        return urllib3.ProxyManager(proxy, **options)
    return urllib3.PoolManager(**options)


def _host_header(endpoint: Endpoint) -> str:
    return canonical_host(endpoint.scheme, endpoint.hostname, endpoint.port)
