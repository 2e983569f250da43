"""The SigV4 signer: header for header what botocore's `SigV4Auth` produces."""

from __future__ import annotations

import datetime
import json
from typing import Any
from unittest import mock

import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import given
from hypothesis import strategies as st

from dynaorm._sigv4 import CONTENT_TYPE, Signer, canonical_host

_OPERATIONS = st.sampled_from(
    ["GetItem", "PutItem", "Query", "BatchWriteItem", "TransactWriteItems", "DescribeTable"]
)
_REGIONS = st.sampled_from(["us-east-1", "eu-west-3", "cn-north-1", "ap-southeast-2", "local"])
_KEYS = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", min_size=1, max_size=20)
_SECRETS = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=40
)
_TOKENS = st.none() | st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=300
)
_HOSTS = st.tuples(
    st.sampled_from(["http", "https"]),
    st.sampled_from(["dynamodb.us-east-1.amazonaws.com", "127.0.0.1", "localhost", "::1"]),
    st.none() | st.integers(min_value=1, max_value=65535),
)
_BODIES = st.dictionaries(st.text(), st.text() | st.integers() | st.booleans(), max_size=5)
_TIMES = st.datetimes(
    min_value=datetime.datetime(2000, 1, 1), max_value=datetime.datetime(2099, 12, 31)
)


def _botocore_headers(
    url: str, target: str, body: bytes, region: str, credentials: Credentials, now: Any
) -> dict[str, str]:
    request = AWSRequest(
        method="POST",
        url=url,
        data=body,
        headers={"Content-Type": CONTENT_TYPE, "X-Amz-Target": target},
    )
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=now):
        botocore.auth.SigV4Auth(credentials, "dynamodb", region).add_auth(request)
    return dict(request.headers.items())


@given(_OPERATIONS, _REGIONS, _KEYS, _SECRETS, _TOKENS, _HOSTS, _BODIES, _TIMES)
def test_headers_equal_botocores(
    operation: str,
    region: str,
    access_key: str,
    secret: str,
    token: str | None,
    where: tuple[str, str, int | None],
    payload: dict[str, Any],
    now: datetime.datetime,
) -> None:
    scheme, hostname, port = where
    host = canonical_host(scheme, hostname, port)
    body = json.dumps(payload, ensure_ascii=False).encode()
    target = f"DynamoDB_20120810.{operation}"
    theirs = _botocore_headers(
        f"{scheme}://{host}/", target, body, region, Credentials(access_key, secret, token), now
    )
    ours = Signer().headers(
        host=host,
        target=target,
        body=body,
        region=region,
        access_key=access_key,
        secret_key=secret,
        token=token,
        timestamp=now.strftime("%Y%m%dT%H%M%SZ"),
    )
    for name in ("Authorization", "X-Amz-Date", "X-Amz-Security-Token"):
        assert ours.get(name) == theirs.get(name), name


def test_the_signing_key_is_derived_once_per_day_and_region() -> None:
    signer = Signer()
    first = signer.signing_key("secret", "20260101", "us-east-1")
    assert signer.signing_key("secret", "20260101", "us-east-1") is first
    assert signer.signing_key("secret", "20260102", "us-east-1") != first
    assert signer.signing_key("secret", "20260101", "eu-west-1") != first
    assert signer.signing_key("other", "20260101", "us-east-1") != first


def test_default_ports_are_left_out_of_the_host() -> None:
    assert canonical_host("https", "example.com", 443) == "example.com"
    assert canonical_host("http", "example.com", 80) == "example.com"
    assert canonical_host("http", "127.0.0.1", 8000) == "127.0.0.1:8000"
    assert canonical_host("https", "::1", 8443) == "[::1]:8443"
