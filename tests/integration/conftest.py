"""Integration fixtures: a fresh table for every test, on the backend chosen with
`--backend` (moto by default, or DynamoDB Local: see tests/dynamodb_local.py)."""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parents[2] / "examples"))

from blog_models import app

from dynaorm import Session
from dynaorm._direct import DirectBase
from dynaorm._transport import Transport
from tests.dynamodb_local import Backend
from tests.iam_check import AccessLog

_counter = itertools.count()

ACCESS_LOG = pytest.StashKey[AccessLog]()
AUDIT_TEST = "test_every_request_the_suite_sent_is_allowed"


def pytest_configure(config: pytest.Config) -> None:
    config.stash[ACCESS_LOG] = AccessLog()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The IAM audit (tests/integration/test_iam.py) reads what every other test sent."""
    items.sort(key=lambda item: getattr(item, "originalname", item.name) == AUDIT_TEST)


@pytest.fixture(autouse=True)
def _audit_requests(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every transport made during an integration test reports to the suite's access log."""
    log = request.config.stash[ACCESS_LOG]
    log.test = request.node.nodeid
    for kind in (Transport, DirectBase):
        monkeypatch.setattr(kind, "__init__", _audited(kind.__init__, log))


def _audited(original: Any, log: AccessLog) -> Any:
    def init(transport: Any, *args: Any, **kwargs: Any) -> None:
        original(transport, *args, **kwargs)
        transport.add_listener(log.listener(transport.table_prefix))

    return init


class Recorder:
    """Collects every request the session sends, in order: (operation, params)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, operation: str, params: dict[str, Any], response: Any, error: Any) -> None:
        self.calls.append((operation, params))

    def operations(self) -> list[str]:
        return [operation for operation, _ in self.calls]

    def clear(self) -> None:
        self.calls.clear()


@pytest.fixture
def session(dynamodb_backend: Backend) -> Iterator[Session]:
    """A session whose tables are prefixed uniquely, so tests never see each other's data."""
    yield from _blog_session(dynamodb_backend, None)


@pytest.fixture
def botocore_session(dynamodb_backend: Backend) -> Iterator[Session]:
    """`session` on the botocore transport whatever `--transport` says: for tests that
    inject faults through botocore's events (tests/integration/test_faults.py)."""
    yield from _blog_session(dynamodb_backend, "botocore")


def _blog_session(backend: Backend, transport: str | None) -> Iterator[Session]:
    prefix = f"t{backend.run_id}_{next(_counter)}_"
    session = backend.session(transport, table_prefix=prefix, cursor_secret=b"test-secret")
    session.create_table(app)
    yield session
    session.delete_table(app)
    session.transport.close()


@pytest.fixture
def recorder(session: Session) -> Iterator[Recorder]:
    recorder = Recorder()
    session.transport.add_listener(recorder)
    yield recorder
    session.transport.remove_listener(recorder)
