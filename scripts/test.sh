#!/usr/bin/env bash
# Installs everything the checks need into .venv, then runs them all: lint, format,
# types, the docs build, and the whole test suite. `.ci/run` calls exactly this script.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[dev]'

echo "== ruff check";        .venv/bin/ruff check .
echo "== ruff format";       .venv/bin/ruff format --check .
echo "== mypy --strict";     .venv/bin/mypy dynaorm
echo "== mkdocs --strict";   NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --quiet --site-dir "$(mktemp -d)"
echo "== pytest";            .venv/bin/python -m pytest "$@"
