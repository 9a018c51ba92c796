#!/usr/bin/env bash
# The real services the tests run against, from Debian's packages (no Docker, no download at test time):
# shellcheck (script tests), prometheus + promtool and the Pushgateway (monitoring tests), PostgreSQL 15
# (production-profile tests), Chromium and its driver (the Airflow UI test through Selenium).
# A package that cannot be installed only skips the tests that need it, with the reason.
set -uo pipefail
if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi

declare -A WANT=(
  [shellcheck]=shellcheck
  [promtool]=prometheus
  [prometheus-pushgateway]=prometheus-pushgateway
  [chromium]=chromium
  [chromedriver]=chromium-driver
  [psql]=postgresql
)
missing=()
for cmd in "${!WANT[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${WANT[$cmd]}")
done
# The server binaries of PostgreSQL live outside PATH on Debian.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
  missing+=(postgresql)
fi
[ "${#missing[@]}" -eq 0 ] && exit 0
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
echo "[services] installing Debian packages: ${missing[*]}"
$SUDO apt-get update -qq || echo "[services] apt-get update failed; trying the install anyway"
for pkg in "${missing[@]}"; do
  # One at a time: a package the mirror lacks must not block the others. No service is started here:
  # the tests start their own on 127.0.0.1 with their own data folders.
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null \
    || echo "[services] $pkg could not be installed; the tests that need it will be skipped"
done
# Debian starts prometheus and the pushgateway as services on install; the tests use their own ports,
# but a system service holding 9090/9091 surprises users who run the monitoring stack, so stop them.
for svc in prometheus prometheus-pushgateway prometheus-node-exporter postgresql; do
  $SUDO service "$svc" stop >/dev/null 2>&1 || true
done
exit 0
