"""The fast request path: dynaorm's own requests are json.dumps'd, not walked by botocore.

Each test compares what `FastSerializer` makes of a request with what botocore's own
serializer (the one it wraps) makes of the very same parameters: the method, URL and
headers must be equal, and the bodies must be the same JSON document.
"""

from __future__ import annotations

import json
from typing import Any

import botocore.session
import pytest
from botocore.awsrequest import AWSResponse, HeadersDict
from botocore.config import Config
from hypothesis import given
from hypothesis import strategies as st

from dynaorm._fast_parse import FAST_OPERATIONS
from dynaorm._fast_serialize import Encoded, FastSerializer
from dynaorm._transport import Transport

ENDPOINT = "http://127.0.0.1:9"  # closed: a request that escaped the fake would fail


@pytest.fixture(scope="module")
def client() -> Any:
    return botocore.session.get_session().create_client(
        "dynamodb",
        region_name="us-east-1",
        endpoint_url=ENDPOINT,
        aws_access_key_id="k",
        aws_secret_access_key="s",
        config=Config(parameter_validation=False),
    )


def _both(client: Any, operation: str, params: dict[str, Any]) -> tuple[Any, Any]:
    model = client._service_model.operation_model(operation)
    inner = client._serializer
    expected = inner.serialize_to_request(params, model)
    fast = FastSerializer(inner).serialize_to_request(Encoded(params), model)
    return fast, expected


def _assert_same_request(fast: dict[str, Any], expected: dict[str, Any]) -> None:
    assert {k: v for k, v in fast.items() if k != "body"} == {
        k: v for k, v in expected.items() if k != "body"
    }
    assert json.loads(fast["body"]) == json.loads(expected["body"])


# -- AttributeValues with every type tag, binaries as the codec makes them (bytes) -------

names = st.text(max_size=8)
scalars = st.one_of(
    st.builds(lambda s: {"S": s}, st.text(max_size=20)),
    st.builds(lambda n: {"N": str(n)}, st.integers() | st.decimals(allow_nan=False, places=3)),
    st.builds(lambda b: {"B": b}, st.binary(max_size=12)),
    st.builds(lambda b: {"B": b}, st.text(max_size=6)),  # botocore encodes str as UTF-8
    st.builds(lambda b: {"BOOL": b}, st.booleans()),
    st.just({"NULL": True}),
    st.builds(lambda s: {"SS": sorted(s)}, st.sets(st.text(max_size=5), min_size=1, max_size=3)),
    st.builds(lambda s: {"NS": sorted(map(str, s))}, st.sets(st.integers(), min_size=1)),
    st.builds(lambda s: {"BS": sorted(s)}, st.sets(st.binary(max_size=6), min_size=1)),
)
attribute_values = st.recursive(
    scalars,
    lambda children: (
        st.builds(lambda x: {"L": x}, st.lists(children, max_size=3))
        | st.builds(lambda x: {"M": x}, st.dictionaries(names, children, max_size=3))
    ),
    max_leaves=10,
)
items = st.dictionaries(names, attribute_values, min_size=1, max_size=5)
keys = st.fixed_dictionaries({"PK": attribute_values, "SK": attribute_values})
expression_values = st.dictionaries(
    st.from_regex(r":v[0-9]{1,2}", fullmatch=True), attribute_values, max_size=3
)
names_map = st.dictionaries(st.from_regex(r"#n[0-9]", fullmatch=True), names, max_size=3)


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """A data-plane request of any fast operation, shaped like the ones dynaorm sends."""
    operation = draw(st.sampled_from(FAST_OPERATIONS))
    condition = {
        "ConditionExpression": "attribute_not_exists(#n0) AND #n1 = :v0",
        "ExpressionAttributeNames": draw(names_map),
        "ExpressionAttributeValues": draw(expression_values),
    }
    table = draw(st.sampled_from(["t", "prefix-app"]))
    capacity = {"ReturnConsumedCapacity": draw(st.sampled_from(["TOTAL", "INDEXES", "NONE"]))}
    if operation == "PutItem":
        params = {"TableName": table, "Item": draw(items), **condition, **capacity}
    elif operation in ("GetItem", "DeleteItem"):
        params = {"TableName": table, "Key": draw(keys), **capacity}
        if operation == "GetItem":
            params["ConsistentRead"] = draw(st.booleans())
    elif operation == "UpdateItem":
        params = {
            "TableName": table,
            "Key": draw(keys),
            "UpdateExpression": "SET #n1 = :v0",
            "ReturnValues": "ALL_NEW",
            **condition,
        }
    elif operation in ("Query", "Scan"):
        params = {
            "TableName": table,
            "Limit": draw(st.integers(1, 1000)),
            "ExclusiveStartKey": draw(keys),
            "FilterExpression": "#n1 = :v0",
            "ExpressionAttributeNames": draw(names_map),
            "ExpressionAttributeValues": draw(expression_values),
        }
        if operation == "Query":
            params["ScanIndexForward"] = draw(st.booleans())
            params["IndexName"] = "GSI1"
        else:
            params.update(Segment=0, TotalSegments=draw(st.integers(1, 8)))
    elif operation == "BatchGetItem":
        params = {"RequestItems": {table: {"Keys": draw(st.lists(keys, min_size=1, max_size=3))}}}
    elif operation == "BatchWriteItem":
        writes = st.one_of(
            st.builds(lambda i: {"PutRequest": {"Item": i}}, items),
            st.builds(lambda k: {"DeleteRequest": {"Key": k}}, keys),
        )
        params = {"RequestItems": {table: draw(st.lists(writes, min_size=1, max_size=4))}}
    elif operation == "TransactGetItems":
        params = {"TransactItems": [{"Get": {"TableName": table, "Key": draw(keys)}}]}
    else:
        actions = st.one_of(
            st.builds(lambda i: {"Put": {"TableName": table, "Item": i, **condition}}, items),
            st.builds(lambda k: {"Delete": {"TableName": table, "Key": k}}, keys),
            st.builds(
                lambda k: {"ConditionCheck": {"TableName": table, "Key": k, **condition}}, keys
            ),
        )
        params = {
            "TransactItems": draw(st.lists(actions, min_size=1, max_size=4)),
            "ClientRequestToken": "0123456789abcdef",
        }
    return operation, params


@given(requests())
def test_every_fast_request_equals_botocores_own(client: Any, request: Any) -> None:
    operation, params = request
    _assert_same_request(*_both(client, operation, params))


def test_binary_values_are_left_to_botocore_whatever_their_type(client: Any) -> None:
    """bytes, or a str botocore would encode as UTF-8: the body is botocore's own."""
    for payload in (b"\x00\xff", "text"):
        params = {"TableName": "t", "Item": {"b": {"B": payload}}}
        fast, expected = _both(client, "PutItem", params)
        assert fast == expected
    sets = {"TableName": "t", "Item": {"bs": {"BS": ["dGV4dA=="]}}}
    fast, expected = _both(client, "PutItem", sets)
    assert fast == expected


def test_a_name_or_value_spelled_b_is_only_a_slower_path(client: Any) -> None:
    params = {"TableName": "t", "Item": {"B": {"S": "B"}}}
    fast, expected = _both(client, "PutItem", params)
    assert fast == expected


def test_plain_dicts_and_other_operations_keep_botocores_serializer(client: Any) -> None:
    inner = client._serializer
    fast = FastSerializer(inner)
    put = client._service_model.operation_model("PutItem")
    plain = {"TableName": "t", "Item": {"s": {"S": "text"}}}
    assert fast.serialize_to_request(plain, put) == inner.serialize_to_request(plain, put)
    describe = client._service_model.operation_model("DescribeTable")
    assert fast.serialize_to_request(
        Encoded(TableName="t"), describe
    ) == inner.serialize_to_request({"TableName": "t"}, describe)


def test_values_json_cannot_write_fall_back_to_botocore(client: Any) -> None:
    """A set where botocore expects a list: botocore's own walk decides, as without us."""
    params = {"TableName": "t", "Item": {"ss": {"SS": {"only"}}}}
    fast, expected = _both(client, "PutItem", params)
    assert fast == expected


def test_no_fast_operation_has_a_host_prefix(client: Any) -> None:
    """Headers come from serializing an empty body: a host prefix would need the params."""
    for operation in FAST_OPERATIONS:
        assert client._service_model.operation_model(operation).endpoint is None


def test_transport_sends_its_requests_through_the_fast_path() -> None:
    transport = Transport(endpoint_url=ENDPOINT, aws_access_key_id="k", aws_secret_access_key="s")
    client = transport.botocore_client
    assert isinstance(client._serializer, FastSerializer)
    bodies: list[bytes] = []

    def answer(request: Any, **_: Any) -> AWSResponse:
        bodies.append(request.body)
        return AWSResponse(request.url, 200, HeadersDict({}), _Empty())

    client.meta.events.register("before-send.dynamodb.PutItem", answer)
    transport.call("PutItem", {"TableName": "t", "Item": {"s": {"S": "x"}}})
    # Compact separators: botocore's own body would read {"TableName": "t", ...}.
    assert bodies[-1].startswith(b'{"TableName":"t","Item":{"s":{"S":"x"}}')
    transport.call("PutItem", {"TableName": "t", "Item": {"b": {"B": b"\x01"}}})
    assert bodies[-1].startswith(b'{"TableName": "t", "Item": {"b": {"B": "AQ=="}}')
    client.put_item(TableName="t", Item={"s": {"S": "x"}})
    assert bodies[-1].startswith(b'{"TableName": "t"')
    transport.close()


class _Empty:
    def stream(self, **_: Any) -> Any:
        yield b"{}"
