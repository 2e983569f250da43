"""Every program in examples/ runs to completion (on the embedded backend)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parents[1] / "examples"
PROGRAMS = sorted(p for p in EXAMPLES.glob("*.py") if not p.name.endswith("_models.py"))


@pytest.mark.parametrize("program", PROGRAMS, ids=lambda p: p.name)
def test_example_runs(program: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}
    result = subprocess.run(
        [sys.executable, str(program)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()


def test_blog_demo_output() -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "blog.py")],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "One query for Ann's feed: 1 user, 7 posts" in result.stdout
    assert "refused: email = 'ann@example.com'" in result.stdout
    assert "version is now 2" in result.stdout
