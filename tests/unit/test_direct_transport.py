"""DirectTransport against a scripted loopback DynamoDB: requests, answers, faults, TLS,
proxies and threads."""

from __future__ import annotations

import datetime as dt
import os
import ssl
import threading
import time
from base64 import b64encode
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.credentials
import pytest
import trustme

from dynaorm import Telemetry
from dynaorm._direct import DirectTransport
from dynaorm.errors import (
    ConditionFailed,
    ServiceError,
    TableNotFound,
    Throttled,
    TransactionCanceled,
)
from tests.unit.fake_dynamodb import Answer, FakeDynamoDB, Proxy, error, serving

KEY = {"pk": {"S": "USER#1"}, "sk": {"S": "PROFILE"}}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No AWS or proxy settings of the machine leak into these tests."""
    for name in list(os.environ):
        if name.startswith("AWS_") or name.lower().endswith("_proxy"):
            monkeypatch.delenv(name)
    monkeypatch.delenv("DYNAMODB_TABLE_PREFIX", raising=False)


@pytest.fixture
def fake() -> Iterator[FakeDynamoDB]:
    yield from serving()


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def transport_for(fake: FakeDynamoDB, **options: Any) -> tuple[DirectTransport, Sleeps]:
    options.setdefault("aws_access_key_id", "AKIDEXAMPLE")
    options.setdefault("aws_secret_access_key", "secret")
    options.setdefault("region", "eu-west-1")
    transport = DirectTransport(endpoint_url=fake.url, **options)
    sleeps = Sleeps()
    transport.sleep = sleeps
    transport.retry.random = lambda: 0.5
    return transport, sleeps


def test_a_get_item_is_one_signed_post_of_its_parameters(fake: FakeDynamoDB) -> None:
    item = {**KEY, "blob": {"B": b64encode(b"\x00\xff").decode()}}
    fake.script(Answer(body={"Item": item, "ConsumedCapacity": {"CapacityUnits": 0.5}}))
    transport, _ = transport_for(fake, aws_session_token="TOKEN")
    response = transport.call("GetItem", {"TableName": "app", "Key": KEY})
    [seen] = fake.seen
    assert seen.path == "/"
    assert seen.body == {"TableName": "app", "Key": KEY, "ReturnConsumedCapacity": "TOTAL"}
    assert seen.headers["X-Amz-Target"] == "DynamoDB_20120810.GetItem"
    assert seen.headers["Content-Type"] == "application/x-amz-json-1.0"
    assert seen.headers["X-Amz-Security-Token"] == "TOKEN"
    assert (
        seen.headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
        and "/eu-west-1/dynamodb/aws4_request, SignedHeaders=content-type;host;"
        in (seen.headers["Authorization"])
    )
    assert response["Item"]["blob"] == {"B": b"\x00\xff"}
    assert response["ResponseMetadata"]["RequestId"] == "req-1"
    assert response["ResponseMetadata"]["RetryAttempts"] == 0
    assert transport.stats.snapshot()["GetItem"] == {
        "calls": 1,
        "errors": 0,
        "capacity_units": 0.5,
    }


def test_binary_values_are_sent_as_base64(fake: FakeDynamoDB) -> None:
    transport, _ = transport_for(fake)
    item = {**KEY, "b": {"B": b"\x01\x02"}, "bs": {"BS": [b"a", b"b"]}}
    transport.call("PutItem", {"TableName": "app", "Item": item})
    assert fake.seen[0].body["Item"]["b"] == {"B": "AQI="}
    assert fake.seen[0].body["Item"]["bs"] == {"BS": ["YQ==", "Yg=="]}


def test_throttling_is_retried_with_full_jitter_then_succeeds(fake: FakeDynamoDB) -> None:
    throttled = error("ProvisionedThroughputExceededException", "slow down")
    fake.script(throttled, throttled, Answer(body={"Item": KEY}))
    transport, sleeps = transport_for(fake)
    response = transport.call("GetItem", {"TableName": "app", "Key": KEY})
    assert response["Item"] == KEY
    assert response["ResponseMetadata"]["RetryAttempts"] == 2
    assert fake.operations() == ["GetItem"] * 3
    assert sleeps == [0.5 * 1, 0.5 * 2]  # random() * 2 ** (attempt - 1)


def test_adaptive_mode_paces_attempts_after_a_throttle(
    fake: FakeDynamoDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_RETRY_MODE", "adaptive")
    fake.script(error("ThrottlingException"), Answer(body={"Item": KEY}))
    transport, sleeps = transport_for(fake)
    transport.call("GetItem", {"TableName": "app", "Key": KEY})
    backoff, paced = sleeps
    assert backoff == 0.5  # the retry's full jitter
    assert paced > 0  # then a token of the rate limiter the throttle turned on
    assert len(fake.seen) == 2


def test_throttling_past_the_attempts_is_throttled(fake: FakeDynamoDB) -> None:
    fake.script(*[error("ThrottlingException", "slow down")] * 10)
    transport, sleeps = transport_for(fake, max_retry_attempts=2)
    with pytest.raises(Throttled, match="ThrottlingException: slow down") as raised:
        transport.call("GetItem", {"TableName": "app", "Key": KEY}, entity="User", key="u1")
    assert len(fake.seen) == 3
    assert len(sleeps) == 2
    assert (raised.value.table, raised.value.entity, raised.value.key) == ("app", "User", "u1")
    assert transport.stats.snapshot()["GetItem"]["errors"] == 1


def test_server_errors_are_retried_then_reported(fake: FakeDynamoDB) -> None:
    fake.script(*[error("InternalServerError", "oops", status=500)] * 4)
    transport, _ = transport_for(fake)
    with pytest.raises(ServiceError) as raised:
        transport.call("PutItem", {"TableName": "app", "Item": KEY})
    assert raised.value.aws_code == "InternalServerError"
    assert len(fake.seen) == 4  # pynamodb's default: 3 retries


def test_an_answer_that_is_not_json_reports_its_status(fake: FakeDynamoDB) -> None:
    fake.script(Answer(502, b"<html>Bad Gateway</html>"), Answer(413, b"<html>too big</html>"))
    transport, _ = transport_for(fake)
    with pytest.raises(ServiceError, match="too big") as raised:
        transport.call("PutItem", {"TableName": "app", "Item": KEY})
    assert raised.value.aws_code == "413"
    assert len(fake.seen) == 2  # the 502 was retried, the 413 was not


def test_a_garbled_success_is_a_malformed_response(fake: FakeDynamoDB) -> None:
    fake.script(Answer(200, b"{not json"))
    transport, _ = transport_for(fake)
    with pytest.raises(ServiceError) as raised:
        transport.call("GetItem", {"TableName": "app", "Key": KEY})
    assert raised.value.aws_code == "MalformedResponse"


def test_a_client_error_is_never_retried(fake: FakeDynamoDB) -> None:
    fake.script(error("ValidationException", "bad key"))
    transport, sleeps = transport_for(fake)
    with pytest.raises(ServiceError, match="ValidationException: bad key") as raised:
        transport.call("GetItem", {"TableName": "app", "Key": KEY})
    assert raised.value.aws_code == "ValidationException"
    assert len(fake.seen) == 1
    assert sleeps == []


def test_a_connection_dropped_mid_answer_is_retried(fake: FakeDynamoDB) -> None:
    fake.script(
        Answer(body={"Item": KEY, "pad": "x" * 5000}, drop=True), Answer(body={"Item": KEY})
    )
    transport, sleeps = transport_for(fake)
    assert transport.call("GetItem", {"TableName": "app", "Key": KEY})["Item"] == KEY
    assert len(fake.seen) == 2
    assert len(sleeps) == 1


def test_a_kept_alive_connection_the_server_closed_is_replaced_without_a_retry(
    fake: FakeDynamoDB,
) -> None:
    fake.script(Answer(body={"Item": KEY}, hang_up=True), Answer(body={"Item": KEY}))
    transport, sleeps = transport_for(fake)
    for _ in range(2):
        response = transport.call("GetItem", {"TableName": "app", "Key": KEY})
        assert response["ResponseMetadata"]["RetryAttempts"] == 0
        time.sleep(0.05)  # the hang-up reaches the client first
    assert sleeps == []
    assert len(fake.seen) == 2


def test_connections_dropped_every_time_are_a_service_error(fake: FakeDynamoDB) -> None:
    fake.script(*[Answer(body={"pad": "x" * 5000}, drop=True)] * 4)
    transport, _ = transport_for(fake)
    with pytest.raises(ServiceError) as raised:
        transport.call("GetItem", {"TableName": "app", "Key": KEY})
    assert raised.value.aws_code == "ConnectionClosedError"
    assert len(fake.seen) == 4


def test_a_refused_connection_is_an_endpoint_connection_error() -> None:
    with FakeDynamoDB() as fake:
        url = fake.url
    transport = DirectTransport(
        endpoint_url=url, aws_access_key_id="a", aws_secret_access_key="b", max_retry_attempts=1
    )
    transport.sleep = Sleeps()
    with pytest.raises(ServiceError) as raised:
        transport.call("GetItem", {"TableName": "app", "Key": KEY})
    assert raised.value.aws_code == "EndpointConnectionError"


def test_a_checksum_mismatch_is_retried(fake: FakeDynamoDB) -> None:
    fake.script(Answer(body={"Item": KEY}, crc32=1), Answer(body={"Item": KEY}))
    transport, _ = transport_for(fake)
    assert transport.call("GetItem", {"TableName": "app", "Key": KEY})["Item"] == KEY
    assert len(fake.seen) == 2


def test_a_failed_condition_carries_the_stored_item(fake: FakeDynamoDB) -> None:
    stored = {**KEY, "blob": {"B": "AAE="}}
    fake.script(
        error("ConditionalCheckFailedException", "The conditional request failed", Item=stored)
    )
    transport, _ = transport_for(fake)
    with pytest.raises(ConditionFailed) as raised:
        transport.call("PutItem", {"TableName": "app", "Item": KEY})
    assert raised.value.stored == {**KEY, "blob": {"B": b"\x00\x01"}}
    assert raised.value.retries == 0


def test_a_cancelled_transaction_carries_its_reasons(fake: FakeDynamoDB) -> None:
    reasons = [
        {"Code": "None"},
        {"Code": "ConditionalCheckFailed", "Message": "failed", "Item": KEY},
    ]
    fake.script(error("TransactionCanceledException", "cancelled", CancellationReasons=reasons))
    transport, _ = transport_for(fake)
    with pytest.raises(TransactionCanceled) as raised:
        transport.call("TransactWriteItems", {"TransactItems": []})
    assert raised.value.reasons == [None, reasons[1]]


def test_a_missing_table_is_table_not_found(fake: FakeDynamoDB) -> None:
    fake.script(error("ResourceNotFoundException", "Requested resource not found"))
    transport, _ = transport_for(fake)
    with pytest.raises(TableNotFound):
        transport.call("GetItem", {"TableName": "app", "Key": KEY})


def test_expiring_credentials_are_refreshed_before_a_request(
    fake: FakeDynamoDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    refreshed: list[str] = []

    def refresh() -> dict[str, str]:
        refreshed.append("now")
        expiry = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)
        return {
            "access_key": "AKIDFRESH",
            "secret_key": "fresh",
            "token": "fresh-token",
            "expiry_time": expiry.isoformat(),
        }

    soon = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=30)
    expiring = botocore.credentials.RefreshableCredentials.create_from_metadata(
        {
            "access_key": "AKIDOLD",
            "secret_key": "old",
            "token": "old",
            "expiry_time": soon.isoformat(),
        },
        refresh_using=refresh,
        method="test",
    )

    class Chain:
        def get_credentials(self) -> Any:
            return expiring

    monkeypatch.setattr("dynaorm._credentials._botocore_session", Chain)
    transport = DirectTransport(endpoint_url=fake.url, region="eu-west-1")
    transport.call("GetItem", {"TableName": "app", "Key": KEY})
    transport.call("GetItem", {"TableName": "app", "Key": KEY})
    assert refreshed == ["now"]  # once: the new credentials are good for an hour
    for seen in fake.seen:
        assert "Credential=AKIDFRESH/" in seen.headers["Authorization"]
        assert seen.headers["X-Amz-Security-Token"] == "fresh-token"


def test_listeners_observers_and_telemetry_see_every_request(fake: FakeDynamoDB) -> None:
    consumed = {"ConsumedCapacity": {"TableName": "app", "CapacityUnits": 1.0}}
    fake.script(error("ThrottlingException"), Answer(body=consumed))
    transport, _ = transport_for(fake)
    heard: list[Any] = []
    usages: list[Any] = []
    transport.add_listener(lambda *args: heard.append(args))
    transport.add_observer(heard.append)
    Telemetry(tracing=False, metrics=False, on_usage=usages.append).instrument(transport)
    transport.call("PutItem", {"TableName": "app", "Item": KEY})
    operation, params, response, failure = heard[0]
    assert (operation, params, failure) == ("PutItem", {"TableName": "app", "Item": KEY}, None)
    assert response["ConsumedCapacity"] == consumed["ConsumedCapacity"]
    assert heard[1].request_id == "req-2"
    assert heard[1].consumed_capacity == 1.0
    [usage] = usages
    assert (usage.attempts, usage.throttles, usage.error_type) == (2, 1, None)


def test_threads_share_one_transport(fake: FakeDynamoDB) -> None:
    transport, _ = transport_for(fake)
    failures: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(20):
                transport.call("GetItem", {"TableName": "app", "Key": KEY})
        except BaseException as failure:
            failures.append(failure)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert transport.stats.snapshot()["GetItem"]["calls"] == 160
    assert len(fake.seen) == 160


# -- TLS and proxies ----------------------------------------------------------------------


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_fake(ca: trustme.CA) -> Iterator[FakeDynamoDB]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    yield from serving(context)


def test_tls_verifies_with_the_configured_ca(
    tls_fake: FakeDynamoDB, ca: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("AWS_CA_BUNDLE", str(bundle))
    transport, _ = transport_for(tls_fake)
    assert transport.endpoint_url.startswith("https://")
    transport.call("GetItem", {"TableName": "app", "Key": KEY})
    assert tls_fake.operations() == ["GetItem"]


def test_tls_refuses_a_certificate_it_cannot_verify(tls_fake: FakeDynamoDB) -> None:
    transport, sleeps = transport_for(tls_fake)
    with pytest.raises(ServiceError, match="CERTIFICATE_VERIFY_FAILED") as raised:
        transport.call("GetItem", {"TableName": "app", "Key": KEY})
    assert raised.value.aws_code == "SSLError"
    assert sleeps == []  # not retried: it would fail the same way
    assert tls_fake.seen == []


def test_requests_go_through_the_http_proxy(
    fake: FakeDynamoDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Proxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        transport, _ = transport_for(fake)
        transport.call("GetItem", {"TableName": "app", "Key": KEY})
    assert proxy.lines == [f"POST {fake.url}/ HTTP/1.1"]
    assert fake.operations() == ["GetItem"]


def test_no_proxy_bypasses_the_proxy(fake: FakeDynamoDB, monkeypatch: pytest.MonkeyPatch) -> None:
    with Proxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        transport, _ = transport_for(fake)
        transport.call("GetItem", {"TableName": "app", "Key": KEY})
    assert proxy.lines == []
    assert fake.operations() == ["GetItem"]


def test_close_then_call_opens_new_connections(fake: FakeDynamoDB) -> None:
    with transport_for(fake)[0] as transport:
        transport.call("GetItem", {"TableName": "app", "Key": KEY})
        transport.close()
        transport.call("GetItem", {"TableName": "app", "Key": KEY})
    assert len(fake.seen) == 2
