"""Sessions isolated per test (a unique table prefix) and tables that clean up after it."""

from __future__ import annotations

import contextlib
import os
import uuid
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from dynaorm._async_session import AsyncSession
from dynaorm._schema import Table
from dynaorm.errors import TableNotFound

if TYPE_CHECKING:
    from dynaorm._session import Session

__all__ = ["TableManager", "isolated_async_session", "isolated_session", "unique_prefix"]

# Emulators (DynamoDB Local, LocalStack, Alternator) accept any credentials, but botocore
# refuses to sign without some; real AWS endpoints keep the usual credential chain.
_EMULATOR_CREDENTIAL = "dynaorm-test"
_AWS_HOST_SUFFIXES = (".amazonaws.com", ".amazonaws.com.cn")


def unique_prefix() -> str:
    """A table-name prefix no other test (or earlier run, or parallel worker) uses."""
    return f"test_{uuid.uuid4().hex[:12]}_"


def isolated_session(
    endpoint_url: str | None = None, *, table_prefix: str | None = None, **options: Any
) -> Session:
    """A `Session` whose table names carry a prefix of their own.

    Without `endpoint_url` it runs on the embedded backend (`Session.in_memory`, needs
    the `memory` extra); with one it talks to that endpoint (DynamoDB Local, LocalStack,
    AWS). For an endpoint outside AWS and no credentials in the environment, dummy
    credentials are used. `options` are `Session`'s keyword arguments.
    """
    from dynaorm._session import Session  # noqa: PLC0415 - importing the plugin sends nothing

    prefix = table_prefix if table_prefix is not None else unique_prefix()
    if endpoint_url is None:
        return Session.in_memory(table_prefix=prefix, **options)
    _emulator_credentials(endpoint_url, options)
    return Session(endpoint_url=endpoint_url, table_prefix=prefix, **options)


def isolated_async_session(
    endpoint_url: str | None = None, *, table_prefix: str | None = None, **options: Any
) -> AsyncSession:
    """`isolated_session` for asyncio: an `AsyncSession` on the same terms."""
    prefix = table_prefix if table_prefix is not None else unique_prefix()
    if endpoint_url is None:
        return AsyncSession.in_memory(table_prefix=prefix, **options)
    _emulator_credentials(endpoint_url, options)
    return AsyncSession(endpoint_url=endpoint_url, table_prefix=prefix, **options)


def _emulator_credentials(endpoint_url: str, options: dict[str, Any]) -> None:
    host = urlsplit(endpoint_url).hostname or ""
    if not host.endswith(_AWS_HOST_SUFFIXES) and not (
        os.environ.get("AWS_ACCESS_KEY_ID") or os.environ.get("AWS_PROFILE")
    ):
        options.setdefault("aws_access_key_id", _EMULATOR_CREDENTIAL)
        options.setdefault("aws_secret_access_key", _EMULATOR_CREDENTIAL)


class TableManager:
    """Creates tables in one session and deletes exactly those again.

    Calling the manager creates a table (once; a second call for the same `Table` does
    nothing) and returns its physical name. As a context manager it drops every table it
    created on exit, newest first::

        with TableManager(session) as tables:
            tables(app)
            ...
    """

    def __init__(self, session: Session) -> None:
        self.session = session
        self._created: list[Table] = []

    @property
    def created(self) -> tuple[Table, ...]:
        """The tables created so far, oldest first."""
        return tuple(self._created)

    def create(self, *tables: Table) -> None:
        """Create each table (waiting until it is ACTIVE) unless this manager already did."""
        for table in tables:
            if not isinstance(table, Table):
                raise TypeError(f"expected a dynaorm Table, got {table!r}")
            if any(table is done for done in self._created):
                continue
            self.session.create_table(table)
            self._created.append(table)

    def __call__(self, table: Table) -> str:
        """Create `table` if needed and return its physical (prefixed) name."""
        self.create(table)
        return self.session.table_name(table)

    def drop_all(self) -> None:
        """Delete every table this manager created; one already gone is skipped."""
        while self._created:
            table = self._created.pop()
            with contextlib.suppress(TableNotFound):
                self.session.delete_table(table)

    def __enter__(self) -> TableManager:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.drop_all()
