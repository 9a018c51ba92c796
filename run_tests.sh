#!/usr/bin/env bash
# The test command: sets up a fresh machine (Java 17, .venv, packages), then lints (ruff, import rules,
# mypy) and runs the suite on Spark 4 (.venv). With SPARK35=1 (the GitHub workflow sets it) it then
# runs the jobs' tests on Spark 3.5 too (.venv-spark35, scripts/test_spark35.sh), and fails when either
# run fails. Off by default: it adds a second virtualenv and about a quarter to the run on 2 cores.
# Extra arguments go to the main pytest run only, e.g. ./run_tests.sh -k training.
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
main_rc=0
python -m pytest "$@" || main_rc=$?
spark35_rc=0
if [ "$#" -gt 0 ] || [ "${SPARK35:-0}" != 1 ]; then
  echo "[tests] Spark 3.5 run skipped (SPARK35=1 turns it on; scripts/test_spark35.sh runs it alone)"
else
  bash scripts/test_spark35.sh || spark35_rc=$?
fi
if [ "$main_rc" -ne 0 ]; then
  echo "[tests] FAILED: the main pytest run (exit $main_rc)" >&2
  exit "$main_rc"
fi
if [ "$spark35_rc" -ne 0 ]; then
  echo "[tests] FAILED: the Spark 3.5 run, scripts/test_spark35.sh (exit $spark35_rc)" >&2
  exit "$spark35_rc"
fi
