"""AsyncDirectTransport against the scripted loopback DynamoDB of the sync tests."""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.credentials
import pytest
import trustme
from opentelemetry import trace

from dynaorm._aio import AsyncDirectTransport
from dynaorm._transports import async_transport
from dynaorm.errors import ConditionFailed, ServiceError, Throttled
from tests.unit.fake_dynamodb import Answer, FakeDynamoDB, Proxy, error, serving
from tests.unit.test_direct_transport import KEY, clean_env  # noqa: F401  (autouse fixture)
from tests.unit.test_telemetry import Otel


@pytest.fixture
def fake() -> Iterator[FakeDynamoDB]:
    yield from serving()


def transport_for(fake: FakeDynamoDB, **options: Any) -> tuple[AsyncDirectTransport, list[float]]:
    options.setdefault("aws_access_key_id", "AKIDEXAMPLE")
    options.setdefault("aws_secret_access_key", "secret")
    options.setdefault("region", "eu-west-1")
    transport = async_transport("direct", endpoint_url=fake.url, **options)
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    transport.sleep = sleep
    transport.retry.random = lambda: 0.5
    return transport, sleeps


@pytest.mark.asyncio
async def test_a_get_item_is_one_signed_post(fake: FakeDynamoDB) -> None:
    fake.script(Answer(body={"Item": {**KEY, "b": {"B": "AP8="}}}))
    async with transport_for(fake)[0] as transport:
        response = await transport.call("GetItem", {"TableName": "app", "Key": KEY})
    [seen] = fake.seen
    assert seen.body == {"TableName": "app", "Key": KEY, "ReturnConsumedCapacity": "TOTAL"}
    assert seen.headers["X-Amz-Target"] == "DynamoDB_20120810.GetItem"
    assert "Credential=AKIDEXAMPLE/" in seen.headers["Authorization"]
    assert response["Item"]["b"] == {"B": b"\x00\xff"}
    assert transport.stats.snapshot()["GetItem"]["calls"] == 1


@pytest.mark.asyncio
async def test_a_body_over_a_mebibyte_arrives_whole_and_signed(fake: FakeDynamoDB) -> None:
    # A transaction near DynamoDB's 4 MB limit: aiohttp gets it as a stream (a raw bytes
    # body that large makes it warn, an error under -W error), and the server must still
    # see the exact body that was signed, with its length.
    big = {"S": "x" * (3 << 20)}
    params = {"TableName": "app", "Item": {**KEY, "blob": big}}
    fake.script(Answer(body={}))
    async with transport_for(fake)[0] as transport:
        await transport.call("PutItem", params)
    [seen] = fake.seen
    assert seen.body == {**params, "ReturnConsumedCapacity": "TOTAL"}
    assert int(seen.headers["Content-Length"]) > 3 << 20


@pytest.mark.asyncio
async def test_throttling_is_retried_awaiting_the_backoff(fake: FakeDynamoDB) -> None:
    throttled = error("ProvisionedThroughputExceededException", "slow down")
    fake.script(throttled, throttled, Answer(body={"Item": KEY}))
    transport, sleeps = transport_for(fake)
    try:
        response = await transport.call("GetItem", {"TableName": "app", "Key": KEY})
    finally:
        await transport.close()
    assert response["ResponseMetadata"]["RetryAttempts"] == 2
    assert sleeps == [0.5, 1.0]


@pytest.mark.asyncio
async def test_throttling_past_the_attempts_is_throttled(fake: FakeDynamoDB) -> None:
    fake.script(*[error("ThrottlingException")] * 5)
    async with transport_for(fake, max_retry_attempts=1)[0] as transport:
        with pytest.raises(Throttled):
            await transport.call("GetItem", {"TableName": "app", "Key": KEY})
    assert len(fake.seen) == 2


@pytest.mark.asyncio
async def test_a_client_error_is_never_retried(fake: FakeDynamoDB) -> None:
    fake.script(error("ConditionalCheckFailedException", "failed", Item=KEY))
    async with transport_for(fake)[0] as transport:
        with pytest.raises(ConditionFailed) as raised:
            await transport.call("PutItem", {"TableName": "app", "Item": KEY})
    assert raised.value.stored == KEY
    assert len(fake.seen) == 1


@pytest.mark.asyncio
async def test_server_errors_and_dropped_connections_are_retried(fake: FakeDynamoDB) -> None:
    fake.script(
        error("InternalServerError", status=500),
        Answer(body={"pad": "x" * 5000}, drop=True),
        Answer(body={"Item": KEY}),
    )
    async with transport_for(fake)[0] as transport:
        response = await transport.call("GetItem", {"TableName": "app", "Key": KEY})
    assert response["Item"] == KEY
    assert len(fake.seen) == 3


@pytest.mark.asyncio
async def test_a_kept_alive_connection_the_server_closed_is_replaced(fake: FakeDynamoDB) -> None:
    fake.script(Answer(body={"Item": KEY}, hang_up=True), Answer(body={"Item": KEY}))
    transport, sleeps = transport_for(fake)
    async with transport:
        for _ in range(2):
            await transport.call("GetItem", {"TableName": "app", "Key": KEY})
            await asyncio.sleep(0.05)  # the hang-up reaches the client first
    assert sleeps == []
    assert len(fake.seen) == 2


@pytest.mark.asyncio
async def test_dropped_every_time_is_a_service_error(fake: FakeDynamoDB) -> None:
    fake.script(*[Answer(body={"pad": "x" * 5000}, drop=True)] * 4)
    async with transport_for(fake)[0] as transport:
        with pytest.raises(ServiceError) as raised:
            await transport.call("GetItem", {"TableName": "app", "Key": KEY})
    assert raised.value.aws_code == "ConnectionClosedError"


@pytest.mark.asyncio
async def test_concurrent_tasks_share_one_transport(fake: FakeDynamoDB) -> None:
    async with transport_for(fake)[0] as transport:
        await asyncio.gather(
            *(transport.call("GetItem", {"TableName": "app", "Key": KEY}) for _ in range(50))
        )
    assert transport.stats.snapshot()["GetItem"]["calls"] == 50


@pytest.mark.asyncio
async def test_a_due_refresh_runs_off_the_event_loop(
    fake: FakeDynamoDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[threading.Thread] = []

    def refresh() -> dict[str, str]:
        threads.append(threading.current_thread())
        expiry = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)
        return {
            "access_key": "AKIDFRESH",
            "secret_key": "s",
            "token": "t",
            "expiry_time": expiry.isoformat(),
        }

    expired = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)
    chain = botocore.credentials.RefreshableCredentials.create_from_metadata(
        {"access_key": "OLD", "secret_key": "s", "token": "t", "expiry_time": expired.isoformat()},
        refresh_using=refresh,
        method="test",
    )

    class Chain:
        def get_credentials(self) -> Any:
            return chain

    monkeypatch.setattr("dynaorm._credentials._botocore_session", Chain)
    async with AsyncDirectTransport(endpoint_url=fake.url) as transport:
        await transport.call("GetItem", {"TableName": "app", "Key": KEY})
    assert threads and threads[0] is not threading.main_thread()
    assert "Credential=AKIDFRESH/" in fake.seen[0].headers["Authorization"]


@pytest.mark.asyncio
async def test_tls_with_and_without_the_ca(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    with FakeDynamoDB(context) as tls_fake:
        async with transport_for(tls_fake)[0] as refused:
            with pytest.raises(ServiceError) as raised:
                await refused.call("GetItem", {"TableName": "app", "Key": KEY})
        assert raised.value.aws_code == "SSLError"
        bundle = tmp_path / "ca.pem"
        ca.cert_pem.write_to_path(str(bundle))
        monkeypatch.setenv("AWS_CA_BUNDLE", str(bundle))
        async with transport_for(tls_fake)[0] as trusted:
            await trusted.call("GetItem", {"TableName": "app", "Key": KEY})
        assert tls_fake.operations() == ["GetItem"]


def test_one_transport_serves_one_event_loop_after_another(fake: FakeDynamoDB) -> None:
    transport, _ = transport_for(fake)

    async def get_then_close() -> None:
        await transport.call("GetItem", {"TableName": "app", "Key": KEY})
        await transport.close()

    asyncio.run(get_then_close())
    asyncio.run(get_then_close())
    assert fake.operations() == ["GetItem", "GetItem"]


def test_a_second_loop_is_refused_while_the_first_one_holds_connections(
    fake: FakeDynamoDB,
) -> None:
    transport, _ = transport_for(fake)
    first, second = asyncio.new_event_loop(), asyncio.new_event_loop()
    try:
        first.run_until_complete(transport.call("GetItem", {"TableName": "app", "Key": KEY}))
        with pytest.raises(RuntimeError, match="bound to the event loop that first used it"):
            second.run_until_complete(transport.call("GetItem", {"TableName": "app", "Key": KEY}))
        first.run_until_complete(transport.close())
    finally:
        first.close()
        second.close()
    assert fake.operations() == ["GetItem"]


@pytest.mark.asyncio
async def test_requests_go_through_the_http_proxy(
    fake: FakeDynamoDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Proxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        async with transport_for(fake)[0] as transport:
            await transport.call("GetItem", {"TableName": "app", "Key": KEY})
    assert proxy.lines == [f"POST {fake.url}/ HTTP/1.1"]
    assert fake.operations() == ["GetItem"]


@pytest.mark.asyncio
async def test_telemetry_spans_wrap_the_awaited_send(fake: FakeDynamoDB) -> None:
    otel = Otel()
    fake.script(error("ThrottlingException", "slow down"), Answer(body={"Item": KEY}))
    transport, _ = transport_for(fake)
    otel.telemetry().instrument(transport)
    seen_spans: list[Any] = []
    transport.add_listener(lambda *_: seen_spans.append(trace.get_current_span()))
    async with transport:
        await transport.call("GetItem", {"TableName": "app", "Key": KEY}, entity="User")
    [span] = otel.finished()
    assert span.name == "GetItem app"
    assert span.attributes is not None
    assert span.attributes["dynaorm.entity"] == "User"
    assert span.attributes["dynaorm.attempts"] == 2
    assert span.attributes["aws.request_id"] == "req-2"
    assert [event.name for event in span.events] == ["dynaorm.retry"]
    assert seen_spans[0].get_span_context().span_id == span.context.span_id  # current inside
    [usage] = otel.usages
    assert (usage.attempts, usage.throttles, usage.error_type) == (2, 1, None)


@pytest.mark.asyncio
async def test_telemetry_reports_the_error_of_a_failed_awaited_send(fake: FakeDynamoDB) -> None:
    otel = Otel()
    fake.script(error("ConditionalCheckFailedException", "failed"))
    transport, _ = transport_for(fake)
    otel.telemetry().instrument(transport)
    async with transport:
        with pytest.raises(ConditionFailed):
            await transport.call("PutItem", {"TableName": "app", "Item": KEY})
    [span] = otel.finished()
    assert span.attributes is not None
    assert span.attributes["error.type"] == "ConditionalCheckFailedException"
    assert otel.usages[0].error_type == "ConditionalCheckFailedException"
