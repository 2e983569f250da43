"""Run pytest in a fresh process, as a user's suite would, to exercise the installed plugin."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

RunPytest = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def run_pytest(tmp_path: Path) -> RunPytest:
    """Write `test_inline.py` with the given source and run pytest on it in a subprocess.

    A fresh interpreter discovers plugins through the installed entry points only, which
    is what the tests in this package prove. (pytester's in-process runs would reuse the
    plugin this process has already imported.)
    """

    def run(
        source: str, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        (tmp_path / "test_inline.py").write_text(textwrap.dedent(source), encoding="utf-8")
        clean = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("AWS_ENDPOINT_URL", "DYNAORM_", "PYTEST_"))
        }
        clean.update(env or {})
        return subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-W", "error", *args],
            cwd=tmp_path,
            env=clean,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    return run
