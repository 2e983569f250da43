"""Integration fixtures: a fresh table on the embedded backend for every test."""

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

_counter = itertools.count()


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
def session() -> Iterator[Session]:
    """A session whose tables are prefixed uniquely, so tests never see each other's data."""
    session = Session.in_memory(table_prefix=f"t{next(_counter)}_", cursor_secret=b"test-secret")
    session.create_table(app)
    yield session
    session.delete_table(app)


@pytest.fixture
def recorder(session: Session) -> Iterator[Recorder]:
    recorder = Recorder()
    session.transport.add_listener(recorder)
    yield recorder
    session.transport.remove_listener(recorder)
