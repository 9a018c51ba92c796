#!/usr/bin/env bash
# Set up a fresh Debian machine for this project: Java 17 (if missing), a virtualenv in .venv
# with requirements.txt and the project package. Safe to run again; it skips what is done.
#   --dev: also the test and lint tools of requirements-dev.txt (./run_tests.sh passes it)
set -euo pipefail
REQS=requirements.txt
[ "${1:-}" = "--dev" ] && REQS=requirements-dev.txt
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${SENTIMENT_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "[bootstrap] ERROR: Python 3.11 or newer is needed; found $("$PYTHON" --version 2>&1)." >&2
  echo "[bootstrap] Install python3.11 (or set PYTHON=/path/to/python3.11) and run again." >&2
  exit 2
fi

java_major() {
  java -version 2>&1 | awk -F'"' '/version/ {split($2, v, "."); print (v[1] == "1") ? v[2] : v[1]; exit}'
}

if ! command -v java >/dev/null 2>&1 || [ "$(java_major)" -lt 17 ] 2>/dev/null; then
  echo "[bootstrap] installing OpenJDK 17 (Spark needs Java 17+)"
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq openjdk-17-jre-headless >/dev/null
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "[bootstrap] creating virtualenv $VENV"
  "$PYTHON" -m venv "$VENV"
fi
digest() { cat "$ROOT/requirements.txt" "$ROOT/pyproject.toml" "$@" | sha256sum | cut -d' ' -f1; }
STAMP="$VENV/.requirements.sha"
WANT="$(digest)"
DEV_WANT="$(digest "$ROOT/requirements-dev.txt")"
[ "$REQS" = requirements-dev.txt ] && WANT="$DEV_WANT"
# A venv set up for the tests also has everything the main command needs.
if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ] && [ "$(cat "$STAMP" 2>/dev/null)" != "$DEV_WANT" ]; then
  echo "[bootstrap] installing Python packages (first time: about 3 minutes)"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$ROOT/$REQS" 2> >(grep -v "^WARNING: Location" >&2)
  "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps -e "$ROOT" 2> >(grep -v "^WARNING: Location" >&2)
  echo "$WANT" > "$STAMP"
fi
echo "[bootstrap] ready: $VENV ($("$VENV/bin/python" --version), java $(java_major))"
