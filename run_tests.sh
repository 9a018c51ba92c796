#!/usr/bin/env bash
# The test command: sets up a fresh machine (Java 17, .venv, packages), then lints (ruff, import rules,
# mypy) and runs the suite.
# Extra arguments go to pytest, e.g. ./run_tests.sh -k training
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"
bash scripts/bootstrap.sh --dev
bash scripts/install_test_services.sh
export PATH="$ROOT/.venv/bin:$PATH"
echo "[tests] ruff check"
ruff check .
echo "[tests] import rules (lint-imports)"
lint-imports
echo "[tests] types (mypy; strict on core, registry, jobs)"
mypy
echo "[tests] pytest"
exec python -m pytest "$@"
