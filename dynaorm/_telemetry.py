"""Telemetry: an OpenTelemetry span and metrics per request, and a plain usage callback.

Spans follow the OpenTelemetry semantic conventions for database client spans and their
AWS DynamoDB page (`db.system.name` "aws.dynamodb", `aws.dynamodb.*` attributes). Nothing
here imports `opentelemetry` until a `Telemetry` with tracing or metrics is built, so an
application that never turns telemetry on pays one `is None` check per request.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from dynaorm._wire import THROTTLING_CODES, Failure, tables_of
from dynaorm.errors import ServiceError

if TYPE_CHECKING:
    # Type names only: at run time opentelemetry is imported once telemetry is turned on.
    from opentelemetry.metrics import Meter, MeterProvider
    from opentelemetry.trace import Span, Tracer, TracerProvider

    from dynaorm._transports import AsyncTransportLike, TransportLike

__all__ = ["TableCapacity", "Telemetry", "Usage"]

logger = logging.getLogger("dynaorm")

_SYSTEM = "aws.dynamodb"

# Operations whose `CapacityUnits` are read units when the response does not split them.
_READS = frozenset({"GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems"})

# Request parameter -> span attribute, as the DynamoDB conventions name them.
_REQUEST_ATTRIBUTES = {
    "IndexName": "aws.dynamodb.index_name",
    "Limit": "aws.dynamodb.limit",
    "ConsistentRead": "aws.dynamodb.consistent_read",
    "ScanIndexForward": "aws.dynamodb.scan_forward",
    "Select": "aws.dynamodb.select",
    "Segment": "aws.dynamodb.segment",
    "TotalSegments": "aws.dynamodb.total_segments",
    "AttributesToGet": "aws.dynamodb.attributes_to_get",
}

# The bucket boundaries the conventions advise for `db.client.operation.duration`.
_DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0)


@dataclass(frozen=True)
class TableCapacity:
    """Capacity units one request consumed on one table."""

    table: str
    read_units: float
    write_units: float


@dataclass(frozen=True)
class Usage:
    """What one request cost: capacity per table, throttled attempts and the outcome.

    `throttles` counts every attempt DynamoDB refused with a throttling error, including
    the ones botocore retried before the request succeeded, so it rises before any
    `Throttled` error reaches the application.
    """

    operation: str
    capacity: tuple[TableCapacity, ...]
    throttles: int
    attempts: int
    duration: float  # seconds, retries included
    error_type: str | None

    @property
    def read_units(self) -> float:
        return sum((entry.read_units for entry in self.capacity), 0.0)

    @property
    def write_units(self) -> float:
        return sum((entry.write_units for entry in self.capacity), 0.0)


UsageCallback = Callable[[Usage], None]


class Telemetry:
    """Spans and metrics for every request a session sends: `Session(telemetry=Telemetry())`.

    `tracing` and `metrics` use the OpenTelemetry API (the `otel` extra) with the given
    providers, or the global ones; `on_usage` is called after every request with its
    `Usage` and needs no OpenTelemetry at all (`Telemetry(tracing=False, metrics=False,
    on_usage=...)`). A failing callback is logged, never raised: telemetry must not turn
    a request that succeeded into an error.
    """

    def __init__(
        self,
        *,
        tracing: bool = True,
        metrics: bool = True,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        on_usage: UsageCallback | None = None,
    ) -> None:
        self._tracer: Tracer | None = None
        self._instruments: _Instruments | None = None
        if tracing or metrics:
            version = _dynaorm_version()
            trace, otel_metrics = _import_opentelemetry()
            if tracing:
                self._tracer = trace.get_tracer("dynaorm", version, tracer_provider=tracer_provider)
            if metrics:
                meter = otel_metrics.get_meter("dynaorm", version, meter_provider=meter_provider)
                self._instruments = _Instruments(meter)
        self._on_usage = on_usage

    def instrument(self, transport: TransportLike | AsyncTransportLike) -> None:
        """Send every request of `transport` through this telemetry."""
        transport.set_send_hook(_Hook(self, transport))


class _Instruments:
    """The OpenTelemetry instruments, created once per `Telemetry`."""

    def __init__(self, meter: Meter) -> None:
        self.duration = meter.create_histogram(
            "db.client.operation.duration",
            unit="s",
            description="Duration of DynamoDB requests, retries included.",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
        )
        self.read_units = meter.create_counter(
            "dynaorm.client.consumed_read_capacity",
            unit="{read_capacity_unit}",
            description="Read capacity units DynamoDB reported as consumed.",
        )
        self.write_units = meter.create_counter(
            "dynaorm.client.consumed_write_capacity",
            unit="{write_capacity_unit}",
            description="Write capacity units DynamoDB reported as consumed.",
        )
        self.throttles = meter.create_counter(
            "dynaorm.client.throttles",
            unit="{attempt}",
            description="Attempts DynamoDB refused with a throttling error, retried or not.",
        )


@dataclass
class _Attempts:
    """What the transport's retry loop saw during one request (see `_on_attempt`)."""

    attempts: int = 0
    throttles: int = 0
    failures: list[tuple[int, str, int]] = field(default_factory=list)  # attempt, code, ns


_CURRENT: ContextVar[_Attempts | None] = ContextVar("dynaorm_telemetry_attempt", default=None)


def _on_attempt(code: str | None) -> None:
    """The transport's attempt watcher: runs after every attempt of the current request
    with the attempt's error code (None for a success)."""
    state = _CURRENT.get()
    if state is None:
        return
    try:
        state.attempts += 1
        if code is None:
            return
        state.failures.append((state.attempts, code, time.time_ns()))
        if code in THROTTLING_CODES:
            state.throttles += 1
    except Exception:
        logger.exception("dynaorm telemetry failed to record a request attempt")


@dataclass
class _Outcome:
    """What the send wrapped by `_Hook._around` gave: its response or its error."""

    response: dict[str, Any] | None = None
    error: BaseException | None = None


class _Hook:
    """Wraps one transport's sends: the span is current while the request is on the wire."""

    def __init__(self, telemetry: Telemetry, transport: TransportLike | AsyncTransportLike) -> None:
        self._telemetry = telemetry
        self._transport = transport
        self._server = _server_attributes(transport.endpoint_url, transport.region)
        self._registered = False
        self._lock = threading.Lock()

    def __call__(
        self,
        operation: str,
        params: dict[str, Any],
        entity: str | None,
        send: Callable[[], dict[str, Any]],
    ) -> dict[str, Any]:
        with self._around(operation, params, entity) as outcome:
            response = outcome.response = send()
        return response

    async def acall(
        self,
        operation: str,
        params: dict[str, Any],
        entity: str | None,
        send: Callable[[], Awaitable[dict[str, Any]]],
    ) -> dict[str, Any]:
        """`__call__` for an async transport: the span is current while the send awaits."""
        with self._around(operation, params, entity) as outcome:
            response = outcome.response = await send()
        return response

    @contextmanager
    def _around(
        self, operation: str, params: dict[str, Any], entity: str | None
    ) -> Iterator[_Outcome]:
        self._register()
        tracer = self._telemetry._tracer
        with self._span(tracer, operation, params, entity) as span:
            state = _Attempts()
            token = _CURRENT.set(state)
            started = time.perf_counter()
            outcome = _Outcome()
            try:
                yield outcome
            except BaseException as failure:
                outcome.error = failure
                raise
            finally:
                _CURRENT.reset(token)
                duration = time.perf_counter() - started
                self._record(
                    operation, params, outcome.response, outcome.error, state, span, duration
                )

    @contextmanager
    def _span(
        self, tracer: Tracer | None, operation: str, params: dict[str, Any], entity: str | None
    ) -> Iterator[Span | None]:
        if tracer is None:
            yield None
            return
        from opentelemetry.trace import SpanKind  # noqa: PLC0415  (imported once tracing is on)

        tables = _table_names(params)
        attributes = request_attributes(operation, params, tables) | self._server
        if entity:
            attributes["dynaorm.entity"] = entity
        name = f"{operation} {tables[0]}" if len(tables) == 1 else operation
        with tracer.start_as_current_span(
            name,
            kind=SpanKind.CLIENT,
            attributes=attributes,
            record_exception=False,  # messages name keys; error.type and status say enough
            set_status_on_exception=False,
        ) as span:
            yield span

    def _register(self) -> None:
        """Watch the transport's attempts once per transport, on first use (no I/O before)."""
        if self._registered:
            return
        with self._lock:
            if not self._registered:
                self._transport.watch_attempts(_on_attempt)
                self._registered = True

    def _record(
        self,
        operation: str,
        params: dict[str, Any],
        response: dict[str, Any] | None,
        error: BaseException | None,
        state: _Attempts,
        span: Span | None,
        duration: float,
    ) -> None:
        try:
            usage = Usage(
                operation=operation,
                capacity=capacity_by_table(operation, params, response or {}),
                throttles=state.throttles,
                attempts=state.attempts,
                duration=duration,
                error_type=error_type(error) if error is not None else None,
            )
            if span is not None:
                _finish_span(span, usage, response, state)
            instruments = self._telemetry._instruments
            if instruments is not None:
                _measure(instruments, usage, _table_names(params), self._server)
            callback = self._telemetry._on_usage
            if callback is not None:
                callback(usage)
        except Exception:
            logger.exception("dynaorm telemetry failed to record %s", operation)


def request_attributes(
    operation: str, params: Mapping[str, Any], tables: list[str]
) -> dict[str, Any]:
    """Span attributes known before sending (so samplers see them)."""
    attributes: dict[str, Any] = {
        "db.system.name": _SYSTEM,
        "db.operation.name": operation,
    }
    if tables:
        attributes["aws.dynamodb.table_names"] = tables
    if len(tables) == 1:
        attributes["db.collection.name"] = tables[0]
    for parameter, attribute in _REQUEST_ATTRIBUTES.items():
        if parameter in params:
            attributes[attribute] = params[parameter]
    if "ProjectionExpression" in params:
        attributes["aws.dynamodb.projection"] = _resolve_names(
            params["ProjectionExpression"], params.get("ExpressionAttributeNames", {})
        )
    size = _batch_size(operation, params)
    if size >= 2:  # the conventions count a batch only from two operations on
        attributes["db.operation.batch.size"] = size
    return attributes


def _finish_span(
    span: Span, usage: Usage, response: dict[str, Any] | None, state: _Attempts
) -> None:
    from opentelemetry.trace import Status, StatusCode  # noqa: PLC0415

    for attempt, code, at in state.failures:
        if attempt < state.attempts:  # botocore tried again after this one
            span.add_event(
                "dynaorm.retry", {"error.type": code, "dynaorm.attempt": attempt}, timestamp=at
            )

    if response is not None:
        request_id = response.get("ResponseMetadata", {}).get("RequestId")
        if request_id:
            span.set_attribute("aws.request_id", request_id)
        consumed = response.get("ConsumedCapacity")
        if consumed:
            entries = consumed if isinstance(consumed, list) else [consumed]
            span.set_attribute(
                "aws.dynamodb.consumed_capacity", [json.dumps(e, sort_keys=True) for e in entries]
            )
        for parameter, attribute in (
            ("Count", "aws.dynamodb.count"),
            ("ScannedCount", "aws.dynamodb.scanned_count"),
        ):
            if parameter in response:
                span.set_attribute(attribute, int(response[parameter]))
        unprocessed = _unprocessed(response)
        if unprocessed:
            span.set_attribute("dynaorm.unprocessed", unprocessed)
    if usage.attempts > 1:
        span.set_attribute("dynaorm.attempts", usage.attempts)
    if usage.error_type is not None:
        span.set_attribute("error.type", usage.error_type)
        span.set_status(Status(StatusCode.ERROR, usage.error_type))


def _measure(
    instruments: _Instruments, usage: Usage, tables: list[str], server: dict[str, Any]
) -> None:
    base: dict[str, Any] = {"db.system.name": _SYSTEM, "db.operation.name": usage.operation}
    common = dict(base)
    if len(tables) == 1:
        common["db.collection.name"] = tables[0]
    common.update(server)
    outcome = dict(common)
    if usage.error_type is not None:
        outcome["error.type"] = usage.error_type
    instruments.duration.record(usage.duration, outcome)
    for entry in usage.capacity:
        per_table = base | {"db.collection.name": entry.table}
        if entry.read_units:
            instruments.read_units.add(entry.read_units, per_table)
        if entry.write_units:
            instruments.write_units.add(entry.write_units, per_table)
    if usage.throttles:
        instruments.throttles.add(usage.throttles, common)


def capacity_by_table(
    operation: str, params: Mapping[str, Any], response: Mapping[str, Any]
) -> tuple[TableCapacity, ...]:
    """Read and write units per table from a response's `ConsumedCapacity`.

    DynamoDB may split an entry into `ReadCapacityUnits` / `WriteCapacityUnits`; when it
    gives only `CapacityUnits` (moto, DynamoDB Local, most operations) the operation
    decides: reads for GetItem, Query, Scan and the batch/transaction reads, writes else.
    """
    consumed = response.get("ConsumedCapacity")
    entries = consumed if isinstance(consumed, list) else [consumed] if consumed else []
    reads = operation in _READS or (
        operation == "ExecuteStatement"
        and str(params.get("Statement", "")).lstrip().upper().startswith("SELECT")
    )
    totals: dict[str, list[float]] = {}
    for entry in entries:
        table = str(entry.get("TableName", ""))
        if "ReadCapacityUnits" in entry or "WriteCapacityUnits" in entry:
            read = float(entry.get("ReadCapacityUnits", 0))
            write = float(entry.get("WriteCapacityUnits", 0))
        else:
            units = float(entry.get("CapacityUnits", 0))
            read, write = (units, 0.0) if reads else (0.0, units)
        total = totals.setdefault(table, [0.0, 0.0])
        total[0] += read
        total[1] += write
    return tuple(TableCapacity(table, read, write) for table, (read, write) in totals.items())


def error_type(error: BaseException) -> str:
    """`error.type`: DynamoDB's error code, else the driver's exception name.

    The conventions ask for the most specific cause, so the AWS code
    (`ConditionalCheckFailedException`) wins over dynaorm's wrapper (`ConditionFailed`).
    """
    if isinstance(error, ServiceError) and error.aws_code:
        return error.aws_code
    cause = error.__cause__
    if isinstance(cause, Failure):  # the direct transports'
        return cause.code
    if cause is not None:
        # Only the botocore transport wraps errors, and only if its module is loaded:
        # asking sys.modules keeps telemetry from importing it (and botocore).
        botocore_transport = sys.modules.get("dynaorm._transport")
        inner = cause if botocore_transport is None else botocore_transport._innermost(cause)
        response = getattr(inner, "response", None)
        if isinstance(response, dict):
            code = response.get("Error", {}).get("Code")
            if code:
                return str(code)
        return type(inner).__qualname__
    return type(error).__qualname__


def _table_names(params: Mapping[str, Any]) -> list[str]:
    tables = tables_of(dict(params))
    return tables.split(",") if tables else []


def _batch_size(operation: str, params: Mapping[str, Any]) -> int:
    if operation in ("TransactWriteItems", "TransactGetItems"):
        return len(params.get("TransactItems", []))
    if operation == "BatchWriteItem":
        return sum(len(requests) for requests in params.get("RequestItems", {}).values())
    if operation == "BatchGetItem":
        return sum(len(body.get("Keys", [])) for body in params.get("RequestItems", {}).values())
    return 0


def _unprocessed(response: Mapping[str, Any]) -> int:
    items = response.get("UnprocessedItems") or {}
    keys = response.get("UnprocessedKeys") or {}
    return sum(len(requests) for requests in items.values()) + sum(
        len(body.get("Keys", [])) for body in keys.values()
    )


def _resolve_names(expression: str, names: Mapping[str, str]) -> str:
    """A projection with its `#n` placeholders replaced by the attribute names.

    dynaorm always sends placeholders, so the raw parameter (`#n0, #n1`) would say
    nothing; attribute names are schema, not data.
    """
    parts = [part.strip() for part in expression.split(",")]
    return ", ".join(
        ".".join(names.get(segment, segment) for segment in part.split(".")) for part in parts
    )


def _server_attributes(endpoint_url: str | None, region: str) -> dict[str, Any]:
    attributes: dict[str, Any] = {"cloud.region": region}
    url = urlsplit(endpoint_url or f"https://dynamodb.{region}.amazonaws.com")
    if url.hostname:
        attributes["server.address"] = url.hostname
    port = url.port or (443 if url.scheme == "https" else 80)
    if port != 443:  # the conventions ask for a port only when it is not the default
        attributes["server.port"] = port
    return attributes


def _import_opentelemetry() -> tuple[Any, Any]:
    try:
        from opentelemetry import metrics, trace  # noqa: PLC0415  (optional, on first use)
    except ImportError as error:
        raise ImportError(
            "dynaorm tracing and metrics need the OpenTelemetry API: "
            'pip install "dynaorm[otel]" (or pass tracing=False, metrics=False)'
        ) from error
    return trace, metrics


def _dynaorm_version() -> str:
    from dynaorm import __version__  # noqa: PLC0415  (the package imports this module)

    return __version__
