"""Transport against moto: requests, error mapping, configuration, stats, listeners, faults."""

from __future__ import annotations

import os
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError

from dynaorm import _transport
from dynaorm._transport import Transport, reset_in_memory
from dynaorm.errors import (
    ConditionFailed,
    DefinitionError,
    ServiceError,
    TableNotFound,
    Throttled,
    TransactionCanceled,
)

CONFIG_VARIABLES = (
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_DYNAMODB",
    "DYNAMODB_TABLE_PREFIX",
)


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in CONFIG_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    yield
    reset_in_memory()


@pytest.fixture
def transport() -> Iterator[Transport]:
    with Transport.in_memory(max_retry_attempts=2) as transport:
        yield transport


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
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """botocore's retry backoff, recorded instead of slept."""
    delays: list[float] = []
    monkeypatch.setattr(time, "sleep", delays.append)
    return delays


def put(table: str, pk: str, **attributes: str) -> dict[str, Any]:
    item = {"pk": {"S": pk}} | {name: {"S": value} for name, value in attributes.items()}
    return {"TableName": table, "Item": item}


class _Body:
    """The raw stream botocore reads an `AWSResponse` body from."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


def inject(transport: Transport, status: int, body: bytes) -> list[str]:
    """Answer every request with this HTTP response; returns the operations attempted."""
    attempts: list[str] = []

    def answer(request: Any, event_name: str, **_: Any) -> AWSResponse:
        attempts.append(event_name.rsplit(".", 1)[-1])
        return AWSResponse(request.url, status, {"x-amzn-RequestId": "r1"}, _Body(body))

    # First, so that it answers before moto's own before-send handler.
    transport.botocore_client.meta.events.register_first("before-send.dynamodb.*", answer)
    return attempts


def aws_error(code: str, message: str) -> bytes:
    return (
        f'{{"__type": "com.amazonaws.dynamodb.v20120810#{code}", "message": "{message}"}}'
    ).encode()


# --- requests and responses -------------------------------------------------------------


def test_put_then_get_returns_the_item(transport: Transport, table: str) -> None:
    transport.call("PutItem", put(table, "a", name="Ada"))

    response = transport.call("GetItem", {"TableName": table, "Key": {"pk": {"S": "a"}}})

    assert response["Item"] == {"pk": {"S": "a"}, "name": {"S": "Ada"}}


def test_a_second_in_memory_transport_sees_earlier_data(transport: Transport, table: str) -> None:
    transport.call("PutItem", put(table, "a"))

    other = Transport.in_memory()

    assert table in other.call("ListTables", {})["TableNames"]
    assert "Item" in other.call("GetItem", {"TableName": table, "Key": {"pk": {"S": "a"}}})


def test_in_memory_requests_are_atomic_across_threads_and_transports(transport: Transport) -> None:
    # moto checks a condition and then writes with no lock, and its first write to a new
    # partition can replace another's; DynamoDB applies each request atomically.
    name = f"t-{uuid.uuid4().hex[:8]}"
    transport.call(
        "CreateTable",
        {
            "TableName": name,
            "KeySchema": [
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            "AttributeDefinitions": [
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            "BillingMode": "PAY_PER_REQUEST",
        },
    )
    transports = [transport, Transport.in_memory()]
    barrier = threading.Barrier(16)
    wins: list[int] = []

    def work(n: int) -> None:
        barrier.wait()
        mine = transports[n % 2]
        for round_ in range(20):
            item = {"pk": {"S": f"P{round_}"}, "sk": {"S": f"{n}"}}
            mine.call("PutItem", {"TableName": name, "Item": item})
            race = {"pk": {"S": "RACE"}, "sk": {"S": f"{round_}"}}
            try:
                mine.call(
                    "PutItem",
                    {
                        "TableName": name,
                        "Item": race,
                        "ConditionExpression": "attribute_not_exists(pk)",
                    },
                )
                wins.append(round_)
            except ConditionFailed:
                pass

    threads = [threading.Thread(target=work, args=(n,)) for n in range(16)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often: inside moto's check-then-write too
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)

    items = transport.call("Scan", {"TableName": name, "ConsistentRead": True})["Items"]
    assert len(items) == 16 * 20 + 20  # no write lost to a racing first write
    assert sorted(wins) == list(range(20))  # one winner per conditional race


def test_reset_in_memory_deletes_every_table(transport: Transport, table: str) -> None:
    reset_in_memory()

    assert transport.call("ListTables", {})["TableNames"] == []


def test_in_memory_writes_no_credentials_into_the_environment() -> None:
    before = dict(os.environ)

    Transport.in_memory().call("ListTables", {})

    assert dict(os.environ) == before
    assert os.environ.get("AWS_ACCESS_KEY_ID") not in ("testing", "FOOBARKEY")


def test_in_memory_ignores_an_endpoint_in_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:9")

    transport = Transport.in_memory()

    assert transport.endpoint_url == "https://dynamodb.us-east-1.amazonaws.com"
    assert isinstance(transport.call("ListTables", {})["TableNames"], list)


def test_in_memory_without_moto_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "moto", None)

    with pytest.raises(ImportError, match=r"dynaorm\[memory\]"):
        _transport._MotoBackend().start()


# --- error mapping ------------------------------------------------------------------------


def test_failed_condition_raises_condition_failed_with_context(
    transport: Transport, table: str
) -> None:
    transport.call("PutItem", put(table, "a", name="Ada"))
    request = put(table, "a") | {
        "ConditionExpression": "attribute_not_exists(pk)",
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }

    with pytest.raises(ConditionFailed) as caught:
        transport.call("PutItem", request, entity="User", key={"pk": "a"})

    error = caught.value
    assert type(error) is ConditionFailed
    assert (error.operation, error.table, error.entity, error.key) == (
        "PutItem",
        table,
        "User",
        {"pk": "a"},
    )
    assert "PutItem" in str(error)
    assert repr(table) in str(error)
    assert "User" in str(error)
    assert "{'pk': 'a'}" in str(error)
    assert error.stored == {"pk": {"S": "a"}, "name": {"S": "Ada"}}
    assert error.item is None  # decoded by the caller that knows the entity
    assert error.__cause__ is not None


def test_condition_failed_without_return_values_has_no_item(
    transport: Transport, table: str
) -> None:
    transport.call("PutItem", put(table, "a"))

    with pytest.raises(ConditionFailed) as caught:
        transport.call(
            "PutItem", put(table, "a") | {"ConditionExpression": "attribute_not_exists(pk)"}
        )

    assert caught.value.item is None


def test_missing_table_raises_table_not_found(transport: Transport) -> None:
    with pytest.raises(TableNotFound, match="GetItem on table 'absent'") as caught:
        transport.call("GetItem", {"TableName": "absent", "Key": {"pk": {"S": "a"}}})

    assert caught.value.table == "absent"


def test_invalid_request_raises_service_error_with_aws_code(
    transport: Transport, table: str
) -> None:
    with pytest.raises(ServiceError, match="ValidationException") as caught:
        transport.call("GetItem", {"TableName": table, "Key": {"wrong": {"S": "a"}}})

    assert caught.value.aws_code == "ValidationException"
    assert caught.value.operation == "GetItem"


def test_canceled_transaction_lists_reasons_in_action_order(
    transport: Transport, table: str
) -> None:
    transport.call("PutItem", put(table, "taken", name="Ada"))
    actions = [
        {"Put": put(table, "new")},
        {
            "ConditionCheck": {
                "TableName": table,
                "Key": {"pk": {"S": "taken"}},
                "ConditionExpression": "attribute_not_exists(pk)",
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        },
    ]

    with pytest.raises(TransactionCanceled) as caught:
        transport.call("TransactWriteItems", {"TransactItems": actions})

    first, second = caught.value.reasons
    assert first is None
    assert second is not None
    assert second["Code"] == "ConditionalCheckFailed"
    assert second["Item"] == {"pk": {"S": "taken"}, "name": {"S": "Ada"}}
    assert caught.value.table == table
    assert "Item" not in transport.call(
        "GetItem", {"TableName": table, "Key": {"pk": {"S": "new"}}}
    )


# --- configuration ------------------------------------------------------------------------


def test_table_prefix_from_argument_then_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Transport().table_name("app") == "app"
    monkeypatch.setenv("DYNAMODB_TABLE_PREFIX", "staging-")
    assert Transport().table_name("app") == "staging-app"
    assert Transport(table_prefix="dev-").table_name("app") == "dev-app"
    assert Transport(table_prefix="").table_name("app") == "app"


def test_prefixed_table_is_usable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DYNAMODB_TABLE_PREFIX", "ci-")
    transport = Transport.in_memory()
    name = transport.table_name("things")
    transport.call(
        "CreateTable",
        {
            "TableName": name,
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
            "BillingMode": "PAY_PER_REQUEST",
        },
    )

    assert transport.call("ListTables", {})["TableNames"] == ["ci-things"]


def test_a_short_logical_name_is_valid_when_the_prefix_makes_it_long_enough(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dynaorm import Table  # noqa: PLC0415 - only this test declares tables

    monkeypatch.delenv("DYNAMODB_TABLE_PREFIX", raising=False)
    pm = Table("pm")  # refused before: the 3-character rule is the physical name's
    assert Transport(table_prefix="dev_").table_name(pm.name) == "dev_pm"
    with pytest.raises(DefinitionError, match=r"'pm' with prefix '' is named 'pm'") as caught:
        Transport().table_name(pm.name)
    assert caught.value.value == "pm"
    with pytest.raises(DefinitionError, match="dev pm"):
        Transport(table_prefix="dev ").table_name("pm")
    with pytest.raises(DefinitionError, match="1-255 characters"):
        Table("")


@pytest.mark.parametrize(
    ("environment", "expected"),
    [
        ({}, "us-east-1"),
        ({"AWS_DEFAULT_REGION": "eu-west-3"}, "eu-west-3"),
        ({"AWS_DEFAULT_REGION": "eu-west-3", "AWS_REGION": "ap-south-1"}, "ap-south-1"),
    ],
)
def test_region_from_environment(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], expected: str
) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)

    assert Transport().region == expected
    assert Transport(region="sa-east-1").region == "sa-east-1"


@pytest.mark.parametrize(
    ("environment", "expected"),
    [
        ({}, None),
        ({"AWS_ENDPOINT_URL": "http://any:1"}, "http://any:1"),
        (
            {"AWS_ENDPOINT_URL": "http://any:1", "AWS_ENDPOINT_URL_DYNAMODB": "http://ddb:2"},
            "http://ddb:2",
        ),
    ],
)
def test_endpoint_from_environment(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], expected: str | None
) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)

    assert Transport().endpoint_url == expected
    assert Transport(endpoint_url="http://arg:3").endpoint_url == "http://arg:3"


def test_botocore_client_uses_the_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://localhost:8000")
    transport = Transport(
        region="eu-central-1",
        aws_access_key_id="k",
        aws_secret_access_key="s",
        read_timeout=7,
        connect_timeout=3,
        max_retry_attempts=5,
    )

    client = transport.botocore_client

    assert client is transport.botocore_client
    assert client.meta.endpoint_url == "http://localhost:8000"
    assert client.meta.region_name == "eu-central-1"
    assert (client.meta.config.read_timeout, client.meta.config.connect_timeout) == (7, 3)
    assert client.meta.config.retries["total_max_attempts"] == 6


def test_malformed_request_propagates_unmapped(transport: Transport) -> None:
    # With validation off, botocore's serializer fails with a plain KeyError: a request
    # the caller built wrongly is a bug to fix, not an answer from DynamoDB.
    with pytest.raises(KeyError) as caught:
        transport.call("ListTables", {"NotAMember": 1})

    assert not isinstance(caught.value, ServiceError)


@pytest.mark.parametrize(
    ("body", "cause"),
    [(b"[1, 2]", AttributeError), (b"\xff\xfe", UnicodeDecodeError)],
    ids=["json-array", "not-utf8"],
)
def test_an_answer_botocore_cannot_parse_is_a_malformed_response(
    transport: Transport, table: str, body: bytes, cause: type[Exception]
) -> None:
    # Not DynamoDB speaking (a proxy's page, a garbled body): a failure of the transport,
    # mapped, where a bug in dynaorm's own code would propagate.
    inject(transport, 200, body)

    with pytest.raises(ServiceError) as caught:
        transport.call("GetItem", {"TableName": table, "Key": {"pk": {"S": "a"}}})

    assert caught.value.aws_code == "MalformedResponse"
    assert cause.__name__ in str(caught.value)
    assert isinstance(caught.value.__cause__.__cause__, cause)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "bug",
    [KeyError("Item"), TypeError("unhashable"), AssertionError("invariant")],
    ids=lambda bug: type(bug).__name__,
)
def test_an_error_in_code_under_the_transport_propagates_unchanged(
    transport: Transport, table: str, bug: Exception
) -> None:
    def broken(**_: Any) -> None:
        raise bug

    # Where dynaorm's own response parser runs: a bug there must not pose as DynamoDB's.
    transport.botocore_client.meta.events.register_first("before-parse.dynamodb.GetItem", broken)

    with pytest.raises(type(bug)) as caught:
        transport.call("GetItem", {"TableName": table, "Key": {"pk": {"S": "a"}}})

    assert caught.value is bug
    transport.call("PutItem", put(table, "a"))  # other operations are unaffected


def test_an_exception_inside_moto_is_the_embedded_backends_service_error(
    transport: Transport,
) -> None:
    transport.call(
        "CreateTable",
        {
            "TableName": "with_gsi",
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "BillingMode": "PAY_PER_REQUEST",
        },
    )
    create_gsi = {
        "TableName": "with_gsi",
        "AttributeDefinitions": [{"AttributeName": "g", "AttributeType": "S"}],
        "GlobalSecondaryIndexUpdates": [
            {
                "Create": {
                    "IndexName": "G",
                    "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                    "Projection": {"ProjectionType": "ALL"},
                }
            }
        ],
    }
    transport.call("UpdateTable", create_gsi)
    # moto raises a bare ValueError for a GSI created twice (DynamoDB answers 400).
    with pytest.raises(ServiceError) as caught:
        transport.call("UpdateTable", create_gsi)
    assert caught.value.aws_code == "EmbeddedBackendError"
    assert "already exists" in str(caught.value)
    assert isinstance(caught.value.__cause__, ValueError)


# --- stats and listeners ------------------------------------------------------------------


def test_stats_count_calls_errors_and_capacity(transport: Transport, table: str) -> None:
    transport.stats.reset()
    transport.call("PutItem", put(table, "a"))
    transport.call("PutItem", put(table, "b"))
    transport.call("GetItem", {"TableName": table, "Key": {"pk": {"S": "a"}}})
    with pytest.raises(TableNotFound):
        transport.call("GetItem", {"TableName": "absent", "Key": {"pk": {"S": "a"}}})

    snapshot = transport.stats.snapshot()

    assert snapshot["PutItem"] == {"calls": 2, "errors": 0, "capacity_units": 2.0}
    assert snapshot["GetItem"]["calls"] == 2
    assert snapshot["GetItem"]["errors"] == 1
    assert snapshot["GetItem"]["capacity_units"] > 0
    transport.stats.reset()
    assert transport.stats.snapshot() == {}


def test_stats_count_calls_and_errors_as_ints_and_capacity_as_float() -> None:
    stats = _transport.Stats()
    stats.record("PutItem", {"ConsumedCapacity": {"CapacityUnits": 1}}, failed=False)
    stats.record("PutItem", None, failed=True)

    counters = stats.snapshot()["PutItem"]

    # `2 == 2.0`, so compare types: a dashboard printing "calls: 2.0" is what was reported.
    assert {name: type(value) for name, value in counters.items()} == {
        "calls": int,
        "errors": int,
        "capacity_units": float,
    }
    assert repr(counters) == "{'calls': 2, 'errors': 1, 'capacity_units': 1.0}"


def test_stats_sum_capacity_lists_of_batch_responses() -> None:
    stats = _transport.Stats()
    stats.record(
        "BatchWriteItem",
        {"ConsumedCapacity": [{"CapacityUnits": 2.0}, {"CapacityUnits": 1.5}]},
        failed=False,
    )

    assert stats.snapshot()["BatchWriteItem"]["capacity_units"] == 3.5


def test_listener_sees_exact_params_and_caller_dict_is_untouched(
    transport: Transport, table: str
) -> None:
    calls: list[tuple[str, dict[str, Any], dict[str, Any] | None, Exception | None]] = []
    transport.add_listener(lambda *call: calls.append(call))
    request = put(table, "a")
    original = {"TableName": table, "Item": {"pk": {"S": "a"}}}

    transport.call("PutItem", request)

    assert request == original
    [(operation, params, response, error)] = calls
    assert (operation, params, error) == ("PutItem", original, None)
    assert response is not None
    assert "ConsumedCapacity" in response


def test_listener_sees_the_mapped_error_and_can_be_removed(transport: Transport) -> None:
    calls: list[tuple[str, dict[str, Any], dict[str, Any] | None, Exception | None]] = []

    def listener(*call: Any) -> None:
        calls.append(call)

    transport.add_listener(listener)
    with pytest.raises(TableNotFound) as caught:
        transport.call("GetItem", {"TableName": "absent", "Key": {"pk": {"S": "a"}}})
    transport.remove_listener(listener)
    transport.call("ListTables", {})

    [(_, _, response, error)] = calls
    assert response is None
    assert error is caught.value


def test_one_transport_is_safe_across_threads(table: str) -> None:
    transport = Transport.in_memory()  # fresh: its botocore client does not exist yet
    barrier = threading.Barrier(8)
    failures: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            barrier.wait()
            for n in range(10):
                transport.call("PutItem", put(table, f"{worker}-{n}"))
        except BaseException as error:  # surfaced by the assertion below
            failures.append(error)

    threads = [threading.Thread(target=work, args=(worker,)) for worker in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    assert transport.stats.snapshot()["PutItem"]["calls"] == 80
    assert transport.call("Scan", {"TableName": table, "Select": "COUNT"})["Count"] == 80


def test_close_is_idempotent_and_calls_still_work(transport: Transport) -> None:
    transport.close()
    transport.call("ListTables", {})
    transport.close()
    transport.close()
    Transport().close()  # never used: nothing to release


# --- faults injected below the transport --------------------------------------------------


def test_throttling_retried_then_raises_throttled(
    transport: Transport, table: str, sleeps: list[float]
) -> None:
    attempts = inject(transport, 400, aws_error("ProvisionedThroughputExceededException", "slow"))

    with pytest.raises(Throttled, match="ProvisionedThroughputExceededException") as caught:
        transport.call("PutItem", put(table, "a"), entity="User", key="a")

    assert attempts == ["PutItem"] * 3  # max_retry_attempts=2, plus the first try
    assert len(sleeps) == 2
    assert (caught.value.operation, caught.value.table, caught.value.entity) == (
        "PutItem",
        table,
        "User",
    )


@pytest.mark.parametrize("code", ["ThrottlingException", "RequestLimitExceeded"])
def test_other_throttling_codes_raise_throttled(
    transport: Transport, code: str, sleeps: list[float]
) -> None:
    inject(transport, 400, aws_error(code, "slow"))

    with pytest.raises(Throttled, match=code):
        transport.call("ListTables", {})


def test_http_500_after_retries_raises_service_error(
    transport: Transport, table: str, sleeps: list[float]
) -> None:
    attempts = inject(transport, 500, aws_error("InternalServerError", "boom"))

    with pytest.raises(ServiceError) as caught:
        transport.call("GetItem", {"TableName": table, "Key": {"pk": {"S": "a"}}})

    assert len(attempts) == 3
    assert caught.value.aws_code == "InternalServerError"
    assert "GetItem" in str(caught.value)


@pytest.mark.parametrize(
    "fault",
    [
        ReadTimeoutError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com/"),
        ConnectTimeoutError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com/"),
        EndpointConnectionError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com/"),
    ],
    ids=lambda fault: type(fault).__name__,
)
def test_network_errors_raise_service_error_with_their_name(
    transport: Transport, table: str, sleeps: list[float], fault: Exception
) -> None:
    attempts: list[int] = []

    def fail(**_: Any) -> None:
        attempts.append(1)
        raise fault

    transport.botocore_client.meta.events.register_first("before-send.dynamodb.*", fail)

    with pytest.raises(ServiceError) as caught:
        transport.call("GetItem", {"TableName": table, "Key": {"pk": {"S": "a"}}})

    assert caught.value.aws_code == type(fault).__name__
    assert caught.value.__cause__ is fault
    assert len(attempts) == 3


def test_control_plane_calls_carry_no_consumed_capacity(transport: Transport, table: str) -> None:
    sent: list[tuple[str, dict[str, Any]]] = []
    transport.add_listener(
        lambda operation, params, response, error: sent.append((operation, params))
    )
    response = transport.call("DescribeTimeToLive", {"TableName": table})
    assert response["TimeToLiveDescription"]["TimeToLiveStatus"] == "DISABLED"
    assert sent == [("DescribeTimeToLive", {"TableName": table})]
    assert transport.stats.snapshot()["DescribeTimeToLive"]["calls"] == 1
