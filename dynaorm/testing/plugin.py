"""The dynaorm pytest plugin: isolated sessions and tables that clean up after each test.

Registered through the `pytest11` entry point, so it is active wherever dynaorm is
installed (`-p no:dynaorm` turns it off). It provides:

- `dynaorm_session`: a `Session` on the embedded backend (moto, in-process) with a table
  prefix unique to the test; with `--dynaorm-endpoint URL` or `DYNAORM_TEST_ENDPOINT`
  set, on that endpoint instead (DynamoDB Local, LocalStack, ...).
- `@pytest.mark.dynaorm_tables(app, ...)`: these tables exist for the test's session.
- `dynaorm_table`: call it with a `Table` to create it; it is dropped after the test.
- `dynaorm_async_session`: an `AsyncSession` on the same backend and table prefix as
  `dynaorm_session` (so it sees the same tables); usable from any async test runner.
- `dynaorm_session_options`: override it to pass `Session` options (`cursor_secret`).
- `dynaorm_endpoint`: the endpoint in use, or None for the embedded backend.

dynaorm itself is imported only when a fixture is used, so the plugin costs nothing in
suites that do not use it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from dynaorm._async_session import AsyncSession
    from dynaorm._session import Session
    from dynaorm.testing._tables import TableManager

__all__ = [
    "ENDPOINT_ENV",
    "dynaorm_async_session",
    "dynaorm_endpoint",
    "dynaorm_session",
    "dynaorm_session_options",
    "dynaorm_table",
    "pytest_addoption",
    "pytest_configure",
    "pytest_report_header",
]

ENDPOINT_ENV = "DYNAORM_TEST_ENDPOINT"
_MANAGER = pytest.StashKey["TableManager"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("dynaorm", "dynaorm test sessions")
    group.addoption(
        "--dynaorm-endpoint",
        metavar="URL",
        default=None,
        help=(
            "run dynaorm_session against this DynamoDB endpoint (e.g. DynamoDB Local at "
            f"http://localhost:8000) instead of the embedded backend; default: ${ENDPOINT_ENV}"
        ),
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "dynaorm_tables(*tables): create these dynaorm Tables for the test's "
        "dynaorm_session and drop them after the test",
    )


def _endpoint(config: pytest.Config) -> str | None:
    option: str | None = config.getoption("dynaorm_endpoint", default=None)
    return option or os.environ.get(ENDPOINT_ENV) or None


def pytest_report_header(config: pytest.Config) -> str:
    endpoint = _endpoint(config)
    backend = f"endpoint {endpoint}" if endpoint else "embedded backend (moto, in-process)"
    return f"dynaorm fixtures (dynaorm_session): {backend}"


@pytest.fixture
def dynaorm_endpoint(pytestconfig: pytest.Config) -> str | None:
    """The DynamoDB endpoint the dynaorm fixtures use; None for the embedded backend."""
    return _endpoint(pytestconfig)


@pytest.fixture
def dynaorm_session_options() -> dict[str, Any]:
    """Keyword arguments for the test `Session`; override to set e.g. `cursor_secret`."""
    return {}


@pytest.fixture
def dynaorm_session(
    request: pytest.FixtureRequest,
    dynaorm_endpoint: str | None,
    dynaorm_session_options: dict[str, Any],
) -> Iterator[Session]:
    """A `Session` whose tables no other test sees; tables it created are dropped after."""
    from dynaorm.testing._tables import TableManager, isolated_session  # noqa: PLC0415

    session = isolated_session(dynaorm_endpoint, **dynaorm_session_options)
    manager = TableManager(session)
    request.node.stash[_MANAGER] = manager
    try:
        for marker in request.node.iter_markers("dynaorm_tables"):
            if marker.kwargs or not marker.args:
                raise pytest.UsageError(
                    "@pytest.mark.dynaorm_tables takes one or more Table objects: "
                    "@pytest.mark.dynaorm_tables(app)"
                )
            manager.create(*marker.args)
        yield session
    finally:
        try:
            manager.drop_all()
        finally:
            del request.node.stash[_MANAGER]
            session.transport.close()


@pytest.fixture
def dynaorm_table(request: pytest.FixtureRequest, dynaorm_session: Session) -> TableManager:
    """`dynaorm_table(app)` creates `app` for `dynaorm_session` and returns its physical
    name; every table created this way is dropped after the test."""
    manager: TableManager = request.node.stash[_MANAGER]
    return manager


@pytest.fixture
def dynaorm_async_session(
    dynaorm_session: Session, dynaorm_endpoint: str | None, dynaorm_session_options: dict[str, Any]
) -> Iterator[AsyncSession]:
    """An `AsyncSession` seeing exactly `dynaorm_session`'s tables (the same prefix and
    backend): `@pytest.mark.dynaorm_tables` and `dynaorm_table` serve both.

    A plain fixture, not an async one, so it works under pytest-asyncio, anyio or any
    other runner; it opens no connection until the test awaits a request.
    """
    from dynaorm.testing._tables import isolated_async_session  # noqa: PLC0415

    prefix = dynaorm_session.transport.table_prefix
    session = isolated_async_session(
        dynaorm_endpoint, table_prefix=prefix, **dynaorm_session_options
    )
    try:
        yield session
    finally:
        blocking = getattr(session.transport, "sync", None)  # the threaded botocore transport
        if blocking is not None:
            blocking.close()
