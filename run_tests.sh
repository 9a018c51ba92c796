#!/usr/bin/env bash
# The test command: sets up a fresh machine (Java 17, .venv, packages), then lints (ruff, import rules,
# mypy) and runs the suite.
# Extra arguments go to pytest, e.g. ./run_tests.sh -k training
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"
bash scripts/bootstrap.sh --dev
if ! command -v shellcheck >/dev/null 2>&1; then
  echo "[tests] installing shellcheck (Debian package) for the script tests"
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  ($SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq shellcheck >/dev/null) \
    || echo "[tests] shellcheck could not be installed; its tests will be skipped"
fi
export PATH="$ROOT/.venv/bin:$PATH"
echo "[tests] ruff check"
ruff check .
echo "[tests] import rules (lint-imports)"
lint-imports
echo "[tests] types (mypy; strict on core, registry, jobs)"
mypy
echo "[tests] pytest"
exec python -m pytest "$@"
