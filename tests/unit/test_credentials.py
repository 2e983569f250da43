"""Credentials, region and endpoint of the direct transports, from arguments and the
environment (monkeypatched), and the promise that env credentials never import botocore."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dynaorm._credentials import Credentials, CredentialSource, Endpoint, is_loopback
from dynaorm._direct import DirectTransport, proxy_for
from dynaorm._transport import Transport
from dynaorm._transports import async_transport, sync_transport
from dynaorm._wire import Failure
from dynaorm.errors import ServiceError
from tests.unit.test_direct_transport import KEY, clean_env  # noqa: F401  (autouse fixture)

AWS = "https://dynamodb.eu-west-1.amazonaws.com"


class NoChain:
    def get_credentials(self) -> Any:
        return None


def test_explicit_keys_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "ENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env")
    source = CredentialSource(Endpoint.resolve(AWS, "eu-west-1"), "ARG", "arg", "token")
    assert source.get() == Credentials("ARG", "arg", "token")


def test_environment_keys_with_a_session_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "ENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "tok")
    assert CredentialSource(Endpoint.resolve(AWS, "eu-west-1")).get() == Credentials(
        "ENV", "env", "tok"
    )


def test_environment_credentials_import_no_botocore(tmp_path: Path) -> None:
    """The Lambda case, in a fresh interpreter: a signed GetItem with env credentials.

    The package's `__init__` is skipped (an empty package module stands in for it): what
    `import dynaorm` itself loads is the cold-start work's, this proves the transport's
    own modules clean.
    """
    package = str(Path(__file__).parents[2] / "dynaorm")
    program = (
        "import sys, types\n"
        f"package = types.ModuleType('dynaorm'); package.__path__ = [{package!r}]\n"
        "sys.modules['dynaorm'] = package\n"
        "from dynaorm._direct import DirectTransport\n"
        "from dynaorm._transports import sync_transport\n"
        "t = sync_transport(None, endpoint_url='https://dynamodb.eu-west-1.amazonaws.com')\n"
        "assert isinstance(t, DirectTransport)\n"
        "t._headers('GetItem', t._body('GetItem', {'TableName': 'app'}))\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('botocore', 'pynamodb'))\n"
        "print(loaded)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env |= {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b", "AWS_REGION": "eu-west-1"}
    done = subprocess.run(
        [sys.executable, "-c", program], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"


def test_botocores_chain_is_used_when_the_environment_has_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Frozen:
        access_key, secret_key, token = "CHAIN", "chain", None

    class Chain:
        def get_credentials(self) -> Any:
            return type("C", (), {"get_frozen_credentials": lambda self: Frozen()})()

    monkeypatch.setattr("dynaorm._credentials._botocore_session", Chain)
    assert CredentialSource(Endpoint.resolve(AWS, "eu-west-1")).get() == Credentials(
        "CHAIN", "chain"
    )


@pytest.mark.parametrize(
    "url",
    ["http://localhost:8000", "http://127.0.0.1:8000", "http://127.8.9.1", "http://[::1]:8000"],
)
def test_a_loopback_endpoint_gets_dummy_credentials(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("dynaorm._credentials._botocore_session", NoChain)
    assert CredentialSource(Endpoint.resolve(url, "us-east-1")).get() == Credentials(
        "local", "local"
    )


def test_no_credentials_for_aws_is_a_clear_service_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("dynaorm._credentials._botocore_session", NoChain)
    transport = DirectTransport(endpoint_url=AWS)
    with pytest.raises(
        ServiceError, match="Unable to locate credentials: pass aws_access_key_id"
    ) as raised:
        transport.call("GetItem", {"TableName": "app", "Key": KEY})
    assert raised.value.aws_code == "NoCredentialsError"


def test_no_credentials_is_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("dynaorm._credentials._botocore_session", NoChain)
    with pytest.raises(Failure) as raised:
        CredentialSource(Endpoint.resolve(AWS, "eu-west-1")).get()
    assert not raised.value.retryable


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("127.0.0.1", True),
        ("::1", True),
        ("10.0.0.1", False),
        ("dynamodb.us-east-1.amazonaws.com", False),
        ("localhost.example.com", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_region_and_endpoint_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.aws/config
    assert DirectTransport().region == "us-east-1"  # the botocore transport's fallback
    assert DirectTransport().endpoint_url == "https://dynamodb.us-east-1.amazonaws.com"
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-2")
    assert DirectTransport().region == "eu-west-2"
    monkeypatch.setenv("AWS_REGION", "cn-north-1")
    transport = DirectTransport()
    assert transport.region == "cn-north-1"
    assert transport.endpoint_url == "https://dynamodb.cn-north-1.amazonaws.com.cn"
    assert DirectTransport(region="ap-south-1").region == "ap-south-1"
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    assert DirectTransport().endpoint_url == "http://127.0.0.1:1"
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:2/")
    assert DirectTransport().endpoint_url == "http://127.0.0.1:2"
    assert DirectTransport(endpoint_url="http://127.0.0.1:3").endpoint_url == "http://127.0.0.1:3"


def test_the_profiles_region(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text("[profile work]\nregion = eu-north-1\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_PROFILE", "work")
    assert DirectTransport().region == "eu-north-1"


def test_the_same_settings_as_the_botocore_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:8000")
    monkeypatch.setenv("DYNAMODB_TABLE_PREFIX", "dev_")
    direct, botocore = sync_transport("direct"), sync_transport("botocore")
    assert isinstance(direct, DirectTransport) and isinstance(botocore, Transport)
    for transport in (direct, botocore):
        assert (transport.region, transport.endpoint_url, transport.table_prefix) == (
            "eu-west-3",
            "http://127.0.0.1:8000",
            "dev_",
        )
        assert transport.table_name("app") == "dev_app"
    assert DirectTransport(table_prefix="").table_prefix == ""


def test_an_unknown_transport_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="transport must be one of direct, botocore: 'http2'"):
        sync_transport("http2")


def test_https_proxy_and_no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint = Endpoint.resolve(AWS, "eu-west-1")
    assert proxy_for(endpoint) is None
    monkeypatch.setenv("HTTPS_PROXY", "proxy.internal:3128")
    assert proxy_for(endpoint) == "http://proxy.internal:3128"
    monkeypatch.setenv("NO_PROXY", ".amazonaws.com")
    assert proxy_for(endpoint) is None
    assert proxy_for(Endpoint.resolve("http://127.0.0.1:8000", "x")) is None  # no HTTP_PROXY


def test_a_malformed_endpoint_is_refused() -> None:
    with pytest.raises(ValueError, match="endpoint_url must be an http"):
        DirectTransport(endpoint_url="localhost:8000")
    with pytest.raises(ValueError, match="endpoint_url must have no path"):
        DirectTransport(endpoint_url="http://127.0.0.1:8000/dynamodb")


def test_the_async_transport_without_aiohttp_says_which_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "aiohttp", None)  # as if not installed
    monkeypatch.delitem(sys.modules, "dynaorm._aio", raising=False)
    with pytest.raises(ImportError, match=r'pip install "dynaorm\[async\]"'):
        async_transport("direct")
