"""The only module that talks to pynamodb and botocore: send requests, map errors, count."""

from __future__ import annotations

import os
import threading
import time
from types import TracebackType
from typing import Any

# botocore ships no type information; `unused-ignore` keeps this valid once stubs exist.
import botocore.exceptions  # type: ignore[import-untyped, unused-ignore]
from pynamodb.connection import Connection
from pynamodb.exceptions import PynamoDBException

from dynaorm._fast_parse import FAST_OPERATIONS, parse_fast
from dynaorm._fast_serialize import Encoded, FastSerializer
from dynaorm._reporting import (
    CONSUMED_CAPACITY_OPERATIONS,
    AttemptWatcher,
    Listener,
    Reporting,
    RequestEvent,
    Stats,
)
from dynaorm._schema import physical_table_name
from dynaorm._wire import THROTTLING_CODES, map_error, tables_of
from dynaorm.errors import RequestError

__all__ = ["Listener", "RequestEvent", "Stats", "Transport", "reset_in_memory"]

# What the driver raises for an answer from DynamoDB (ClientError, which pynamodb re-raises
# as its subclass VerboseClientError; PynamoDBException wrapping one) or for a failure of the
# connection itself (BotoCoreError: connection refused or closed, timeouts, credentials).
_DRIVER_ERRORS = (
    botocore.exceptions.ClientError,
    botocore.exceptions.BotoCoreError,
    PynamoDBException,
)

# Re-exported for the modules that imported them from here.
_THROTTLING_CODES = THROTTLING_CODES
_CONSUMED_CAPACITY_OPERATIONS = CONSUMED_CAPACITY_OPERATIONS
_tables_of = tables_of

_MEMORY_REGION = "us-east-1"
_MEMORY_CREDENTIAL = "testing"


class Transport(Reporting):
    """Sends whole DynamoDB request dicts through one pynamodb `Connection`.

    One `Transport` is safe to share across threads: the botocore client is created once,
    under a lock, and botocore clients themselves are thread-safe.
    """

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
        self._region = region or _env("AWS_REGION", "AWS_DEFAULT_REGION") or "us-east-1"
        self._endpoint_url = endpoint_url or _env("AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL")
        if table_prefix is None:
            table_prefix = os.environ.get("DYNAMODB_TABLE_PREFIX", "")
        self._table_prefix = table_prefix
        # pynamodb turns max_retry_attempts into botocore's standard retry mode with
        # total_max_attempts = 1 + max_retry_attempts (its default is 3); throttling and
        # transient errors are retried there, with backoff, before we ever see them.
        self._connection = Connection(
            region=self._region,
            host=self._endpoint_url,
            read_timeout_seconds=read_timeout,
            connect_timeout_seconds=connect_timeout,
            max_retry_attempts=max_retry_attempts,
            aws_access_key_id=aws_access_key_id,
            aws_secret_access_key=aws_secret_access_key,
            aws_session_token=aws_session_token,
        )
        # pynamodb builds its botocore client lazily in the `Connection.client` property
        # without a lock, so two threads racing on a fresh Connection would each build one
        # and one would be dropped (with any event handlers registered on it). We force the
        # creation once under this lock; afterwards the property just returns the shared
        # client. Creation is deferred to the first use so that constructing a Transport
        # does no credential lookup.
        super().__init__()
        self._client_lock = threading.Lock()
        self._client: Any = None
        self._embedded = False  # moto in this process (see `in_memory`)

    @classmethod
    def in_memory(cls, **options: Any) -> Transport:
        """A transport backed by moto's in-process DynamoDB (the `memory` extra).

        All in-memory transports of a process share one moto backend, started on first use
        and kept for the life of the process, so a second call sees earlier data; call
        `reset_in_memory()` to wipe it. While it runs moto intercepts every botocore
        client in the process that targets an AWS endpoint. `options` are `Transport`'s;
        region defaults to us-east-1 and dummy credentials are set on the transport, not
        in the environment.
        """
        _MOTO.start()
        region = options.setdefault("region", _MEMORY_REGION)
        # An explicit AWS endpoint, so that an AWS_ENDPOINT_URL* in the environment (which
        # moto would not intercept) cannot redirect the in-memory backend.
        options.setdefault("endpoint_url", f"https://dynamodb.{region}.amazonaws.com")
        options.setdefault("aws_access_key_id", _MEMORY_CREDENTIAL)
        options.setdefault("aws_secret_access_key", _MEMORY_CREDENTIAL)
        transport = cls(**options)
        transport._embedded = True
        return transport

    @property
    def region(self) -> str:
        return self._region

    @property
    def endpoint_url(self) -> str | None:
        return self._endpoint_url

    @property
    def table_prefix(self) -> str:
        return self._table_prefix

    @property
    def botocore_client(self) -> Any:
        """The underlying botocore client, created if needed, for event hooks in tests.

        moto answers in a `before-send` handler too. botocore uses the first response a
        handler returns, but it still calls every `before-send` handler, so under moto a
        request an injector answers is applied all the same unless the injector also
        keeps moto's handler from running (tests/integration/test_faults.py shows how).
        """
        return self._ensure_client()

    def table_name(self, logical: str) -> str:
        """The physical name of a table: the configured prefix, then the logical name."""
        return physical_table_name(self._table_prefix, logical)

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
        exception (a bug, a malformed request) propagates unchanged.

        `table`, `entity` and `key` only enrich error messages and attributes. With a send
        hook (telemetry), the whole send, botocore's retries included, runs inside it.
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
        self._ensure_client()
        sent = Encoded(params)  # what listeners see: the request as dynaorm built it
        request = Encoded(sent)
        # The data plane reports consumed capacity (for stats and observers); the control
        # plane (DescribeTimeToLive, say) refuses the parameter.
        if operation in CONSUMED_CAPACITY_OPERATIONS:
            request.setdefault("ReturnConsumedCapacity", "TOTAL")
        # Only what DynamoDB or the network said is mapped (`_DRIVER_ERRORS`). Anything else
        # is a bug: in dynaorm's serializer or parser hooks, or a malformed request (with
        # botocore's parameter validation off that is a plain KeyError or TypeError), and
        # it propagates unchanged instead of posing as a service error.
        # `_make_api_call` rather than `dispatch`: dispatch only adds the capacity parameter,
        # a uuid4 and two blinker signals dynaorm does not use (its observers replace them).
        started = time.perf_counter()
        try:
            if self._embedded:
                # moto is not thread-safe (a condition is checked, then the item written,
                # with no lock; a first write to a partition can replace another's), and
                # all in-memory transports of a process share its backend. DynamoDB applies
                # each request atomically: one process-wide lock gives moto the same rule.
                with _MOTO.requests:
                    response: dict[str, Any] = self._connection._make_api_call(operation, request)
            else:
                response = self._connection._make_api_call(operation, request)
        except _DRIVER_ERRORS as error:
            failure = _translate(error, operation, sent, table=table, entity=entity, key=key)
            self._finish(operation, sent, None, failure, started)
            raise failure from error
        except Exception as error:
            # moto runs inside this process: an exception escaping its request handling is
            # the backend failing (moto's own server answers it with a 500), not a bug of
            # dynaorm's, so it is reported as the service error it stands for.
            if not (self._embedded and _raised_by_moto(error)):
                raise
            backend = EmbeddedBackendError(error=f"{type(error).__name__}: {error}")
            failure = _translate(backend, operation, sent, table=table, entity=entity, key=key)
            self._finish(operation, sent, None, failure, started)
            raise failure from error
        self._finish(operation, sent, response, None, started)
        return response

    def close(self) -> None:
        """Release pooled HTTP connections; a later call opens new ones."""
        with self._client_lock:
            if self._client is not None:
                self._client.close()

    def __enter__(self) -> Transport:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _ensure_client(self) -> Any:
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    client = self._connection.client
                    for operation in FAST_OPERATIONS:
                        client.meta.events.register(
                            f"before-parse.dynamodb.{operation}", parse_fast
                        )
                    # botocore keeps no public hook around its request serializer; the
                    # wrapper only takes over `Encoded` requests (dynaorm's own).
                    if not isinstance(client._serializer, FastSerializer):
                        client._serializer = FastSerializer(client._serializer)
                    endpoint = client._endpoint
                    if not isinstance(endpoint._response_parser_factory, _GuardedParsers):
                        endpoint._response_parser_factory = _GuardedParsers(
                            endpoint._response_parser_factory
                        )
                    self._client = client
        return self._client

    def watch_attempts(self, watcher: AttemptWatcher) -> None:
        """Call `watcher(code)` after every attempt: its error code, None for a success.

        Listens to botocore's `needs-retry` event, which fires after every attempt; the
        handler returns None, so it never takes part in botocore's retry decision.
        """

        def on_attempt(
            response: Any = None, caught_exception: BaseException | None = None, **_: Any
        ) -> None:
            watcher(_attempt_error(response, caught_exception))

        self._ensure_client().meta.events.register(
            "needs-retry.dynamodb", on_attempt, unique_id=f"dynaorm-attempts-{id(watcher)}"
        )


class MalformedResponse(botocore.exceptions.BotoCoreError):  # type: ignore[misc, unused-ignore]
    """An answer botocore's parser cannot read: not DynamoDB speaking (a proxy's error
    page, a truncated or garbled body). Mapped like any transport failure."""

    fmt = "the response could not be parsed ({error})"


class EmbeddedBackendError(botocore.exceptions.BotoCoreError):  # type: ignore[misc, unused-ignore]
    """An exception raised inside moto while it answered a request of the embedded backend
    (where moto's server would answer HTTP 500)."""

    fmt = "the embedded backend (moto) failed: {error}"


def _raised_by_moto(error: BaseException) -> bool:
    """True when the innermost frame of `error`'s traceback is moto's code."""
    trace = error.__traceback__
    if trace is None:
        return False
    while trace.tb_next is not None:
        trace = trace.tb_next
    return str(trace.tb_frame.f_globals.get("__name__", "")).startswith("moto.")


class _GuardedParsers:
    """Wraps the endpoint's response-parser factory so that a parser failure is reported
    as `MalformedResponse`, which `call` maps, instead of a bare AttributeError or
    UnicodeDecodeError that it would have to take for a bug."""

    def __init__(self, factory: Any) -> None:
        self._factory = factory

    def create_parser(self, protocol: str) -> _GuardedParser:
        return _GuardedParser(self._factory.create_parser(protocol))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._factory, name)


class _GuardedParser:
    def __init__(self, parser: Any) -> None:
        self._parser = parser

    def parse(self, response: dict[str, Any], shape: Any) -> Any:
        try:
            return self._parser.parse(response, shape)
        except Exception as error:
            raise MalformedResponse(error=f"{type(error).__name__}: {error}") from error

    def __getattr__(self, name: str) -> Any:
        return getattr(self._parser, name)


def reset_in_memory() -> None:
    """Delete every table and item of the in-memory (moto) DynamoDB backend."""
    _MOTO.reset()


class _MotoBackend:
    """moto's DynamoDB mock, started at most once per process and never stopped.

    Stopping it would let one test's teardown pull the backend from under a transport that
    another part of the process still uses; keeping it costs only moto's global patch.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._started = False
        self.requests = threading.Lock()  # held by each in-memory request (see `_send`)

    def start(self) -> None:
        with self._lock:
            if self._started:
                return
            try:
                from moto import mock_aws  # noqa: PLC0415  (optional extra, imported on use)
            except ImportError as error:
                raise ImportError(
                    'Transport.in_memory() needs moto: pip install "dynaorm[memory]"'
                ) from error
            # mock_credentials=False keeps moto from writing fake AWS_* variables into
            # os.environ; our transports carry their own dummy credentials instead.
            mock_aws(
                config={
                    "core": {
                        "mock_credentials": False,
                        "reset_boto3_session": False,
                        "passthrough": {"urls": [], "services": []},
                        "service_whitelist": None,
                    }
                }
            ).start()
            self._started = True

    def reset(self) -> None:
        with self._lock:
            if not self._started:
                return
            from moto.dynamodb.models import dynamodb_backends  # noqa: PLC0415

            for _account, _region, backend in dynamodb_backends.iter_backends():
                backend.reset()


_MOTO = _MotoBackend()


def _env(*names: str) -> str | None:
    """The first of these environment variables that is set and not empty."""
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return None


def _attempt_error(response: Any, caught_exception: BaseException | None) -> str | None:
    if caught_exception is not None:
        return type(caught_exception).__name__
    if not response:
        return None
    http, parsed = response
    if http is not None and getattr(http, "status_code", 200) < 300:
        return None
    code = (parsed or {}).get("Error", {}).get("Code")
    return str(code) if code else str(getattr(http, "status_code", "error"))


def _innermost(error: BaseException) -> BaseException:
    """Peel pynamodb's wrappers to reach botocore's own error.

    `Connection._make_api_call` re-raises a botocore `ClientError` as `VerboseClientError`
    (`from e`) keeping only `Error` of the response, so `Item` and the raw
    `CancellationReasons` live on the original; pynamodb's own exceptions keep it in `cause`.
    """
    while True:
        if isinstance(error, PynamoDBException) and error.cause is not None:
            error = error.cause
        elif isinstance(error, botocore.exceptions.ClientError) and isinstance(
            error.__cause__, botocore.exceptions.ClientError
        ):
            error = error.__cause__
        else:
            return error


def _translate(
    error: BaseException,
    operation: str,
    sent: dict[str, Any],
    *,
    table: str | None,
    entity: str | None,
    key: Any,
) -> RequestError:
    """The dynaorm error for a driver error, naming operation, table, entity and key."""
    inner = _innermost(error)
    response: dict[str, Any] = {}
    if isinstance(inner, botocore.exceptions.ClientError):
        response = inner.response
        code = response.get("Error", {}).get("Code") or "Unknown"
        detail = response.get("Error", {}).get("Message") or ""
    else:
        code, detail = type(inner).__name__, str(inner)
    return map_error(code, detail, response, operation, sent, table=table, entity=entity, key=key)
