"""Every program in examples/ runs to completion, on the backend chosen with `--backend`.

On moto each program has a backend of its own (in its process); on DynamoDB Local each
run gets a database of its own through a distinct dummy access key id.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import pytest

from tests.dynamodb_local import Backend

EXAMPLES = Path(__file__).parents[1] / "examples"
PROGRAMS = sorted(p for p in EXAMPLES.glob("*.py") if not p.name.endswith("_models.py"))

_runs = itertools.count()


def run(program: Path, backend: Backend, isolate: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(program)],
        capture_output=True,
        text=True,
        env=backend.program_environment(isolate or f"{backend.run_id}x{next(_runs)}"),
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("program", PROGRAMS, ids=lambda p: p.name)
def test_example_runs(program: Path, dynamodb_backend: Backend) -> None:
    result = run(program, dynamodb_backend)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()


def test_blog_demo_output(dynamodb_backend: Backend) -> None:
    isolate = f"{dynamodb_backend.run_id}x{next(_runs)}"
    result = run(EXAMPLES / "blog.py", dynamodb_backend, isolate)
    assert result.returncode == 0, result.stderr
    assert "One query for Ann's feed: 1 user, 7 posts" in result.stdout
    assert "refused: email = 'ann@example.com'" in result.stdout
    assert "version is now 2" in result.stdout
    if dynamodb_backend.name == "local":  # the demo wrote to the endpoint, not to moto
        env = dynamodb_backend.program_environment(isolate)
        session = dynamodb_backend.session(aws_access_key_id=env["AWS_ACCESS_KEY_ID"])
        tables = session.transport.call("ListTables", {})["TableNames"]
        session.transport.close()
        assert tables == ["demo_blog"]
