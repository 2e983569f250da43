"""Telemetry on a transport (moto): spans, metrics, the usage callback, and no cost when off."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import EndpointConnectionError, ReadTimeoutError
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from dynaorm import TableCapacity, Telemetry, Usage
from dynaorm._telemetry import capacity_by_table, request_attributes
from dynaorm._transport import Transport, reset_in_memory
from dynaorm.errors import ConditionFailed, ServiceError, Throttled
from tests.unit.test_transport import _Body, aws_error, inject, put

ROOT = Path(__file__).resolve().parents[2]
THROTTLED = aws_error("ProvisionedThroughputExceededException", "slow down")


class Otel:
    """An SDK tracer and meter provider that keep everything in memory."""

    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        self.usages: list[Usage] = []

    def telemetry(self) -> Telemetry:
        return Telemetry(
            tracer_provider=self.tracer_provider,
            meter_provider=self.meter_provider,
            on_usage=self.usages.append,
        )

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())

    def metrics(self) -> dict[str, list[tuple[dict[str, Any], Any]]]:
        """Metric name -> [(attributes, value or histogram count)]."""
        data = self.reader.get_metrics_data()
        found: dict[str, list[tuple[dict[str, Any], Any]]] = {}
        for resource in data.resource_metrics if data else []:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    for point in metric.data.data_points:
                        value = getattr(point, "value", None)
                        if value is None:
                            value = point.count  # a histogram: how many were recorded
                        found.setdefault(metric.name, []).append((dict(point.attributes), value))
        return found

    def shutdown(self) -> None:
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


@pytest.fixture
def otel() -> Iterator[Otel]:
    otel = Otel()
    yield otel
    otel.shutdown()


@pytest.fixture
def transport(otel: Otel) -> Iterator[Transport]:
    with Transport.in_memory(max_retry_attempts=2) as transport:
        yield transport
    reset_in_memory()


@pytest.fixture
def table(transport: Transport) -> str:
    name = f"t-{uuid.uuid4().hex[:8]}"
    transport.call(
        "CreateTable",
        {
            "TableName": name,
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
            "BillingMode": "PAY_PER_REQUEST",
        },
    )
    return name


@pytest.fixture
def traced(transport: Transport, table: str, otel: Otel) -> Transport:
    """The transport with telemetry on (after the table exists, so no CreateTable span)."""
    otel.telemetry().instrument(transport)
    return transport


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    delays: list[float] = []
    monkeypatch.setattr(time, "sleep", delays.append)
    return delays


SERVER = {"cloud.region": "us-east-1", "server.address": "dynamodb.us-east-1.amazonaws.com"}


# --- spans ----------------------------------------------------------------------------------


def test_one_client_span_per_request_with_the_dynamodb_attributes(
    traced: Transport, table: str, otel: Otel
) -> None:
    traced.call("PutItem", put(table, "a"), entity="User")
    traced.call("GetItem", {"TableName": table, "Key": {"pk": {"S": "a"}}, "ConsistentRead": True})

    put_span, get_span = otel.finished()
    assert (put_span.name, put_span.kind) == (f"PutItem {table}", SpanKind.CLIENT)
    attributes = dict(put_span.attributes or {})
    request_id = attributes.pop("aws.request_id")
    assert isinstance(request_id, str) and request_id
    assert attributes == {
        "db.system.name": "aws.dynamodb",
        "db.operation.name": "PutItem",
        "db.collection.name": table,
        "aws.dynamodb.table_names": (table,),
        "dynaorm.entity": "User",
        "aws.dynamodb.consumed_capacity": (
            json.dumps({"CapacityUnits": 1.0, "TableName": table}, sort_keys=True),
        ),
        **SERVER,
    }
    assert put_span.status.status_code == StatusCode.UNSET
    assert get_span.name == f"GetItem {table}"
    assert get_span.attributes is not None
    assert get_span.attributes["aws.dynamodb.consistent_read"] is True


def test_query_span_carries_index_limit_projection_and_counts(
    traced: Transport, table: str, otel: Otel
) -> None:
    for pk in "abc":
        traced.call("PutItem", put(table, pk, title="x"))
    otel.spans.clear()

    traced.call(
        "Scan",
        {
            "TableName": table,
            "Limit": 2,
            "ProjectionExpression": "#n0, #n1.#n2",
            "ExpressionAttributeNames": {"#n0": "pk", "#n1": "meta", "#n2": "title"},
        },
    )

    (span,) = otel.finished()
    attributes = span.attributes or {}
    assert attributes["aws.dynamodb.limit"] == 2
    assert attributes["aws.dynamodb.projection"] == "pk, meta.title"
    assert (attributes["aws.dynamodb.count"], attributes["aws.dynamodb.scanned_count"]) == (2, 2)


def test_request_attributes_for_a_query_on_an_index() -> None:
    attributes = request_attributes(
        "Query",
        {
            "TableName": "app",
            "IndexName": "GSI1",
            "KeyConditionExpression": "#n0 = :v0",
            "ScanIndexForward": False,
            "Select": "COUNT",
        },
        ["app"],
    )

    assert attributes == {
        "db.system.name": "aws.dynamodb",
        "db.operation.name": "Query",
        "aws.dynamodb.table_names": ["app"],
        "db.collection.name": "app",
        "aws.dynamodb.index_name": "GSI1",
        "aws.dynamodb.scan_forward": False,
        "aws.dynamodb.select": "COUNT",
    }


def test_span_is_current_while_the_request_is_sent_and_nests_under_the_callers(
    traced: Transport, table: str, otel: Otel
) -> None:
    seen_on_the_wire: list[Any] = []
    traced.botocore_client.meta.events.register(
        "before-send.dynamodb.PutItem",
        lambda **_: seen_on_the_wire.append(trace.get_current_span().get_span_context()),
    )
    tracer = otel.tracer_provider.get_tracer("app")

    with tracer.start_as_current_span("handle request") as parent:
        traced.call("PutItem", put(table, "a"))

    request_span, parent_span = otel.finished()
    assert request_span.parent is not None
    assert request_span.parent.span_id == parent.get_span_context().span_id
    # Not recorded after the fact: the span was open, and current, during the send.
    assert seen_on_the_wire == [request_span.get_span_context()]
    assert parent_span.start_time is not None and request_span.start_time is not None
    assert parent_span.start_time <= request_span.start_time
    assert request_span.end_time is not None and parent_span.end_time is not None
    assert request_span.end_time <= parent_span.end_time


def test_throttled_attempts_retried_inside_one_span(
    traced: Transport, table: str, otel: Otel, sleeps: list[float]
) -> None:
    answers = iter([THROTTLED, THROTTLED])

    def throttle_twice(request: Any, **_: Any) -> Any:
        body = next(answers, None)
        if body is None:
            return None  # moto answers the third attempt
        return AWSResponse(request.url, 400, {}, _Body(body))

    traced.botocore_client.meta.events.register_first("before-send.dynamodb.*", throttle_twice)

    traced.call("PutItem", put(table, "a"))

    (span,) = otel.finished()
    assert span.status.status_code == StatusCode.UNSET
    assert (span.attributes or {})["dynaorm.attempts"] == 3
    assert [(e.name, dict(e.attributes or {})) for e in span.events] == [
        (
            "dynaorm.retry",
            {"error.type": "ProvisionedThroughputExceededException", "dynaorm.attempt": n},
        )
        for n in (1, 2)
    ]
    assert len(sleeps) == 2
    assert otel.usages[-1].throttles == 2
    assert otel.metrics()["dynaorm.client.throttles"] == [
        (
            {
                "db.system.name": "aws.dynamodb",
                "db.operation.name": "PutItem",
                "db.collection.name": table,
                **SERVER,
            },
            2,
        )
    ]


def test_throttling_past_the_retry_budget_is_an_error_span(
    traced: Transport, table: str, otel: Otel, sleeps: list[float]
) -> None:
    inject(traced, 400, THROTTLED)

    with pytest.raises(Throttled):
        traced.call("PutItem", put(table, "a"))

    (span,) = otel.finished()
    assert span.status.status_code == StatusCode.ERROR
    assert span.status.description == "ProvisionedThroughputExceededException"
    assert (span.attributes or {})["error.type"] == "ProvisionedThroughputExceededException"
    assert [e.name for e in span.events] == ["dynaorm.retry"] * 2  # the third was the last
    assert otel.usages[-1].throttles == 3
    assert otel.usages[-1].error_type == "ProvisionedThroughputExceededException"


def test_condition_failure_records_the_aws_code_not_the_message(
    traced: Transport, table: str, otel: Otel
) -> None:
    traced.call("PutItem", put(table, "secret-key"))
    request = put(table, "secret-key") | {"ConditionExpression": "attribute_not_exists(pk)"}

    with pytest.raises(ConditionFailed):
        traced.call("PutItem", request, key="secret-key")

    span = otel.finished()[-1]
    assert span.status.status_code == StatusCode.ERROR
    assert (span.attributes or {})["error.type"] == "ConditionalCheckFailedException"
    # The error message names the key; the span keeps no exception event that repeats it.
    assert span.events == ()
    assert "secret-key" not in repr(dict(span.attributes or {}))


def test_network_failure_records_the_driver_exception_name(
    traced: Transport, table: str, otel: Otel, sleeps: list[float]
) -> None:
    def fail(**_: Any) -> None:
        raise EndpointConnectionError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com/")

    traced.botocore_client.meta.events.register_first("before-send.dynamodb.*", fail)

    with pytest.raises(ServiceError):
        traced.call("GetItem", {"TableName": table, "Key": {"pk": {"S": "a"}}})

    (span,) = otel.finished()
    assert (span.attributes or {})["error.type"] == "EndpointConnectionError"
    assert span.status.status_code == StatusCode.ERROR
    assert [dict(e.attributes or {}) for e in span.events] == [
        {"error.type": "EndpointConnectionError", "dynaorm.attempt": n} for n in (1, 2)
    ]
    assert otel.usages[-1].throttles == 0  # a network fault is no throttle


def test_batch_span_counts_operations_and_unprocessed_requests(
    traced: Transport, table: str, otel: Otel
) -> None:
    requests = [{"PutRequest": {"Item": put(table, pk)["Item"]}} for pk in "abc"]

    traced.call("BatchWriteItem", {"RequestItems": {table: requests}})

    (span,) = otel.finished()
    assert span.name == f"BatchWriteItem {table}"
    assert (span.attributes or {})["db.operation.batch.size"] == 3
    assert "dynaorm.unprocessed" not in (span.attributes or {})


# --- metrics and the usage callback ---------------------------------------------------------


def test_capacity_metrics_split_reads_and_writes_per_table(
    traced: Transport, table: str, otel: Otel
) -> None:
    traced.call("PutItem", put(table, "a"))
    traced.call("PutItem", put(table, "b"))
    traced.call("GetItem", {"TableName": table, "Key": {"pk": {"S": "a"}}})

    metrics = otel.metrics()
    per_table = {
        "db.system.name": "aws.dynamodb",
        "db.operation.name": "PutItem",
        "db.collection.name": table,
    }
    assert metrics["dynaorm.client.consumed_write_capacity"] == [(per_table, 2.0)]
    assert metrics["dynaorm.client.consumed_read_capacity"] == [
        (per_table | {"db.operation.name": "GetItem"}, 0.5)
    ]
    durations = {
        attributes["db.operation.name"]: n
        for attributes, n in metrics["db.client.operation.duration"]
    }
    assert durations == {"PutItem": 2, "GetItem": 1}
    assert [(u.operation, u.read_units, u.write_units) for u in otel.usages] == [
        ("PutItem", 0.0, 1.0),
        ("PutItem", 0.0, 1.0),
        ("GetItem", 0.5, 0.0),
    ]


def test_failed_request_duration_carries_error_type(traced: Transport, otel: Otel) -> None:
    with pytest.raises(Exception, match="ResourceNotFoundException"):
        traced.call("GetItem", {"TableName": "absent", "Key": {"pk": {"S": "a"}}})

    ((attributes, count),) = otel.metrics()["db.client.operation.duration"]
    assert attributes["error.type"] == "ResourceNotFoundException"
    assert count == 1


def test_a_failing_callback_is_logged_and_the_request_still_succeeds(
    transport: Transport, table: str, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(usage: Usage) -> None:
        raise RuntimeError("dashboard down")

    Telemetry(tracing=False, metrics=False, on_usage=broken).instrument(transport)

    with caplog.at_level(logging.ERROR, logger="dynaorm"):
        response = transport.call("PutItem", put(table, "a"))

    assert response["ConsumedCapacity"]["CapacityUnits"] == 1.0
    assert "telemetry failed to record PutItem" in caplog.text
    assert transport.call("GetItem", {"TableName": table, "Key": {"pk": {"S": "a"}}})["Item"]


def test_usage_of_a_request_without_capacity_is_zero_float_units() -> None:
    usage = Usage("ListTables", (), throttles=0, attempts=1, duration=0.01, error_type=None)
    assert (repr(usage.read_units), repr(usage.write_units)) == ("0.0", "0.0")
    both = (TableCapacity("a", 0.5, 0.0), TableCapacity("b", 1.0, 2.0))
    usage = Usage("BatchGetItem", both, throttles=0, attempts=1, duration=0.01, error_type=None)
    assert (usage.read_units, usage.write_units) == (1.5, 2.0)


def test_removing_the_hook_stops_telemetry(traced: Transport, table: str, otel: Otel) -> None:
    traced.set_send_hook(None)
    traced.call("PutItem", put(table, "a"))
    assert otel.finished() == []


_entry_units = st.floats(min_value=0, max_value=1e6, allow_nan=False).map(lambda u: round(u, 1))


@given(
    operation=st.sampled_from(["GetItem", "Query", "PutItem", "BatchWriteItem", "Scan"]),
    entries=st.lists(
        st.tuples(st.sampled_from(["a", "b", "c"]), _entry_units, st.none() | _entry_units),
        max_size=6,
    ),
)
def test_capacity_by_table_conserves_units(
    operation: str, entries: list[tuple[str, float, float | None]]
) -> None:
    consumed = []
    for table, units, split in entries:
        entry: dict[str, Any] = {"TableName": table, "CapacityUnits": units}
        if split is not None:  # DynamoDB split the units: use its split, not the operation
            entry |= {"ReadCapacityUnits": split, "WriteCapacityUnits": units}
        consumed.append(entry)

    result = capacity_by_table(operation, {}, {"ConsumedCapacity": consumed})

    assert [c.table for c in result] == list(dict.fromkeys(t for t, _, _ in entries))
    reading = operation in ("GetItem", "Query", "Scan")
    for capacity in result:
        mine = [(u, s) for t, u, s in entries if t == capacity.table]
        expected_read = sum(s if s is not None else (u if reading else 0) for u, s in mine)
        expected_write = sum(u if s is not None or not reading else 0 for u, s in mine)
        assert capacity.read_units == pytest.approx(expected_read)
        assert capacity.write_units == pytest.approx(expected_write)


def test_capacity_by_table_reads_a_single_entry_and_partiql_selects() -> None:
    assert capacity_by_table(
        "PutItem", {}, {"ConsumedCapacity": {"TableName": "t", "CapacityUnits": 2}}
    ) == (TableCapacity("t", 0.0, 2.0),)
    select = {"Statement": "  select * from t"}
    consumed = {"ConsumedCapacity": {"TableName": "t", "CapacityUnits": 1}}
    assert capacity_by_table("ExecuteStatement", select, consumed) == (
        TableCapacity("t", 1.0, 0.0),
    )
    assert capacity_by_table("DescribeTable", {}, {}) == ()


# --- cost when off --------------------------------------------------------------------------


def _run(program: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(program)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_dynaorm_never_imports_opentelemetry_unless_telemetry_is_on() -> None:
    result = _run(
        """
        import sys
        import dynaorm
        from dynaorm._transport import Transport
        transport = Transport.in_memory()
        transport.call("ListTables", {})
        dynaorm.Telemetry(tracing=False, metrics=False, on_usage=print).instrument(transport)
        transport.call("ListTables", {})
        print(sorted(name for name in sys.modules if name.startswith("opentelemetry")))
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "[]"
    assert "Usage(operation='ListTables'" in result.stdout


def test_without_opentelemetry_installed_the_callback_works_and_tracing_says_how() -> None:
    result = _run(
        """
        import sys
        sys.modules["opentelemetry"] = None  # as if the package were not installed
        import dynaorm
        usages = []
        dynaorm.Telemetry(tracing=False, metrics=False, on_usage=usages.append)
        try:
            dynaorm.Telemetry()
        except ImportError as error:
            print(error)
        """
    )
    assert result.returncode == 0, result.stderr
    assert 'pip install "dynaorm[otel]"' in result.stdout


def _block(text: str, marker: str) -> str:
    """The fenced block right after an HTML comment marker in a docs page."""
    match = re.search(rf"<!-- {marker} -->\n```\w+\n(.*?)```", text, re.S)
    assert match is not None, marker
    return match.group(1)


def test_the_observability_page_example_runs() -> None:
    page = (ROOT / "docs" / "observability.md").read_text(encoding="utf-8")
    program = _block(page, "example: observability")
    expected = _block(page, "output: observability")

    result = subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        cwd=ROOT,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout == expected


def test_unprocessed_batch_requests_are_counted_on_the_span(
    traced: Transport, table: str, otel: Otel
) -> None:
    left = [{"PutRequest": {"Item": put(table, "b")["Item"]}}]
    body = json.dumps({"UnprocessedItems": {table: left}}).encode()
    inject(traced, 200, body)  # DynamoDB under load: 200, but one request left over
    requests = [{"PutRequest": {"Item": put(table, pk)["Item"]}} for pk in "ab"]

    response = traced.call("BatchWriteItem", {"RequestItems": {table: requests}})

    assert response["UnprocessedItems"] == {table: left}
    (span,) = otel.finished()
    assert (span.attributes or {})["dynaorm.unprocessed"] == 1
    assert span.status.status_code == StatusCode.UNSET


def test_session_telemetry_true_uses_the_global_providers() -> None:
    result = _run(
        """
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from dynaorm import Session

        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        session = Session.in_memory(telemetry=True)
        session.transport.call("ListTables", {})
        print([span.name for span in exporter.get_finished_spans()])
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "['ListTables']"


def test_threads_sharing_a_transport_each_get_their_own_parent_and_attempts(
    traced: Transport, table: str, otel: Otel, sleeps: list[float]
) -> None:
    def throttle_once_for_b(request: Any, **_: Any) -> Any:
        # Thread "b"'s first attempt is throttled; everyone else goes through to moto.
        if re.search(rb'"S": ?"b"', request.body) and not throttled_b:
            throttled_b.append(1)
            return AWSResponse(request.url, 400, {}, _Body(THROTTLED))
        return None

    throttled_b: list[int] = []
    traced.botocore_client.meta.events.register_first("before-send.dynamodb.*", throttle_once_for_b)
    tracer = otel.tracer_provider.get_tracer("app")
    barrier = threading.Barrier(4)
    parents: dict[str, int] = {}

    def work(pk: str) -> None:
        with tracer.start_as_current_span(f"job {pk}") as parent:
            parents[pk] = parent.get_span_context().span_id
            barrier.wait()
            traced.call("PutItem", put(table, pk))

    threads = [threading.Thread(target=work, args=(pk,)) for pk in "abcd"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    requests = [s for s in otel.finished() if s.name.startswith("PutItem")]
    assert len(requests) == 4
    by_parent = {s.parent.span_id: s for s in requests if s.parent is not None}
    assert set(by_parent) == set(parents.values())
    attempts = {
        pk: (by_parent[parents[pk]].attributes or {}).get("dynaorm.attempts", 1) for pk in parents
    }
    assert attempts == {"a": 1, "b": 2, "c": 1, "d": 1}
    assert sorted(u.throttles for u in otel.usages) == [0, 0, 0, 1]


def test_a_lost_response_retried_shows_in_the_span_of_the_request_that_landed(
    traced: Transport, table: str, otel: Otel, sleeps: list[float]
) -> None:
    lost: list[int] = []

    def lose_first_response(**_: Any) -> None:
        # Registered after moto's handler: the write has landed when this raises.
        if not lost:
            lost.append(1)
            raise ReadTimeoutError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com/")

    traced.botocore_client.meta.events.register_last(
        "before-send.dynamodb.PutItem", lose_first_response
    )

    traced.call("PutItem", put(table, "a", title="once"))

    (span,) = otel.finished()
    assert span.status.status_code == StatusCode.UNSET
    assert (span.attributes or {})["dynaorm.attempts"] == 2
    assert [dict(e.attributes or {}) for e in span.events] == [
        {"error.type": "ReadTimeoutError", "dynaorm.attempt": 1}
    ]
    item = traced.call("GetItem", {"TableName": table, "Key": {"pk": {"S": "a"}}})["Item"]
    assert item["title"] == {"S": "once"}
