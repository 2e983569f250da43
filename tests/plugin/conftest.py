"""Run pytest in a fresh process, as a user's suite would, to exercise the installed plugin."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RunPytest = Callable[..., subprocess.CompletedProcess[str]]

# pytest-asyncio (installed for dynaorm's own async tests) warns at start-up, an error
# under -W error, unless its loop scope is configured, as a user's pyproject would.
_ASYNCIO = ["-o", "asyncio_default_fixture_loop_scope=function"]


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
        # This checkout's dynaorm, not whichever one is installed (an editable install may
        # point at another checkout); the entry point then loads this plugin.
        clean["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), clean.get("PYTHONPATH")]))
        clean.update(env or {})
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-p",
                "no:cacheprovider",
                "-W",
                "error",
                *_ASYNCIO,
                *args,
            ],
            cwd=tmp_path,
            env=clean,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    return run
