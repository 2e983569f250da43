"""Telemetry through a real session on both backends: spans read from the SDK's in-memory
exporter, capacity from the metrics reader, and a second writer in between."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest
from blog_models import Post, User, app
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from dynaorm import Session, Telemetry, Usage
from dynaorm.errors import ItemAlreadyExists, VersionConflict
from tests.dynamodb_local import Backend

_counter = itertools.count()


class Traced:
    def __init__(self, session: Session, table: str) -> None:
        self.session = session
        self.table = table
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        self.usages: list[Usage] = []

    def telemetry(self) -> Telemetry:
        return Telemetry(
            tracer_provider=self.tracer_provider,
            meter_provider=self.meter_provider,
            on_usage=self.usages.append,
        )

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def counter(self, name: str) -> dict[str, float]:
        """Sum of a counter per `db.collection.name`."""
        data = self.reader.get_metrics_data()
        sums: dict[str, float] = {}
        for resource in data.resource_metrics if data else []:
            for scope in resource.scope_metrics:
                for metric in (m for m in scope.metrics if m.name == name):
                    for point in metric.data.data_points:
                        table = str(point.attributes["db.collection.name"])
                        sums[table] = sums.get(table, 0.0) + point.value
        return sums


@pytest.fixture
def traced(dynamodb_backend: Backend) -> Iterator[Traced]:
    prefix = f"tel{dynamodb_backend.run_id}_{next(_counter)}_"
    plain = dynamodb_backend.session(table_prefix=prefix)
    plain.create_table(app)
    traced = Traced(plain, plain.table_name(app))
    traced.session = dynamodb_backend.session(table_prefix=prefix, telemetry=traced.telemetry())
    yield traced
    plain.delete_table(app)
    for session in (plain, traced.session):
        session.transport.close()
    traced.tracer_provider.shutdown()
    traced.meter_provider.shutdown()


def _attributes(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def test_a_request_handler_traced_end_to_end(traced: Traced, dynamodb_backend: Backend) -> None:
    session, table = traced.session, traced.table
    tracer = traced.tracer_provider.get_tracer("app")
    created = datetime(2024, 5, 1, tzinfo=timezone.utc)

    with tracer.start_as_current_span("POST /users") as handler:
        session.create(User(user_id="u1", email="ann@example.com", name="Ann"))
        session.batch_write(
            put=[
                Post(user_id="u1", post_id=f"p{n}", title="t", created_at=created) for n in range(3)
            ]
        )
        session.query(Post, user_id="u1").limit(2).page(2)
        assert session.get(User, user_id="u1") is not None

    on_local = dynamodb_backend.endpoint_url is not None
    *requests, root = traced.spans()
    assert root.name == "POST /users"
    assert [s.name for s in requests] == [
        "TransactWriteItems " + table,  # the user and its unique-email guard
        "BatchWriteItem " + table,
        "Query " + table,
        "GetItem " + table,
    ]
    for span in requests:
        assert span.kind == SpanKind.CLIENT
        assert span.parent is not None
        assert span.parent.span_id == handler.get_span_context().span_id
        attributes = _attributes(span)
        assert attributes["db.system.name"] == "aws.dynamodb"
        assert attributes["aws.dynamodb.table_names"] == (table,)
        if span is not requests[0] or on_local:  # moto reports none for transactions
            assert attributes["aws.dynamodb.consumed_capacity"]
        assert span.status.status_code == StatusCode.UNSET
    transaction, batch, query, get = (_attributes(s) for s in requests)
    assert transaction["db.operation.batch.size"] == 2
    assert transaction["dynaorm.entity"] == "User"
    assert batch["db.operation.batch.size"] == 3
    assert (query["aws.dynamodb.limit"], query["aws.dynamodb.count"]) == (2, 2)
    assert query["aws.dynamodb.scanned_count"] == 2
    assert get["db.operation.name"] == "GetItem"

    writes = traced.counter("dynaorm.client.consumed_write_capacity")
    reads = traced.counter("dynaorm.client.consumed_read_capacity")
    # DynamoDB Local counts as the service does: 2 x 2 for the transaction (transactions
    # cost double), 3 for the batch, and more for GSI keys. moto charges a flat 1.0 per batch.
    assert writes[table] >= (7 if on_local else 1)
    assert reads[table] > 0
    assert sum(u.write_units for u in traced.usages) == writes[table]


def test_second_writer_in_between_shows_as_an_error_span(
    traced: Traced, dynamodb_backend: Backend
) -> None:
    session = traced.session
    session.create(User(user_id="u1", email="ann@example.com", name="Ann"))
    stale = session.get(User, user_id="u1")
    assert stale is not None
    other = dynamodb_backend.session(table_prefix=session.transport.table_prefix)
    fresh = other.get(User, user_id="u1")
    assert fresh is not None
    other.update(fresh, set={"name": "Bea"})  # the second writer, not traced
    other.transport.close()
    traced.exporter.clear()

    with pytest.raises(VersionConflict):
        session.update(stale, set={"name": "Cy"})
    with pytest.raises(ItemAlreadyExists):
        session.create(User(user_id="u1", email="other@example.com", name="Dee"))

    failed = [s for s in traced.spans() if s.status.status_code == StatusCode.ERROR]
    assert len(failed) == 2
    for span in failed:
        error = _attributes(span)["error.type"]
        # A versioned write is a plain conditional update or a transaction, by path.
        assert error in ("ConditionalCheckFailedException", "TransactionCanceledException")
        assert span.status.description == error
        assert "u1" not in repr(_attributes(span))  # no key values in the span
    assert [u.error_type for u in traced.usages[-2:]] == [
        _attributes(s)["error.type"] for s in failed
    ]
