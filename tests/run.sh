#!/usr/bin/env bash
# Runs every test of Vigil. Installs what the tests need on a fresh machine first:
# Debian's ClickHouse server and client and ZooKeeper (the tests start their own isolated servers
# on free ports), Debian's Chromium (the web UI's browser tests), systemd's `systemd-analyze` (to
# check the service unit), a Python virtualenv with the OpenTelemetry SDK and its OTLP exporters,
# chDB (a current ClickHouse, embedded) to check the migrations on, and Kubernetes' schemas (from
# PyPI). The web UI's npm packages are installed by the build (ui-api/build.rs).
# Usage: tests/run.sh [extra cargo test arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
PACKAGES=()
command -v clickhouse-server >/dev/null || PACKAGES+=(clickhouse-server)
command -v clickhouse-client >/dev/null || PACKAGES+=(clickhouse-client)
command -v chromium >/dev/null || PACKAGES+=(chromium)
[ -f /usr/share/java/zookeeper.jar ] || PACKAGES+=(zookeeper)
command -v systemd-analyze >/dev/null || PACKAGES+=(systemd)
if [ ${#PACKAGES[@]} -gt 0 ]; then
  echo "==> installing ${PACKAGES[*]} (Debian)"
  $SUDO apt-get update -qq
  # ClickHouse's post-install may try to start a system service; the tests never use it.
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${PACKAGES[@]}" >/dev/null
fi

VENV=tests/.venv
REQUIREMENTS=tests/requirements.txt
if [ ! -x "$VENV/bin/python" ] || ! cmp -s "$REQUIREMENTS" "$VENV/.requirements"; then
  echo "==> installing the OpenTelemetry SDK and chDB into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQUIREMENTS"
  cp "$REQUIREMENTS" "$VENV/.requirements"
fi
export VIGIL_TEST_PYTHON="$PWD/$VENV/bin/python"

echo "==> cargo fmt --check"
cargo fmt --all -- --check 2>/dev/null

echo "==> cargo test (unit, property and end-to-end tests, the web UI in Chromium among them)"
cargo test --workspace --all-targets "$@"

echo "==> web UI: formatting (prettier) and unit tests (vitest)"
(cd ui-api/web && npm run lint --silent && npm test --silent)

echo "==> benchmark smoke run"
# The binary the end-to-end tests just ran: no second build.
"${CARGO_TARGET_DIR:-target}/debug/vigil" bench ingest --smoke

echo "==> fuzz smoke run: every decoder's target over its corpus, then ${VIGIL_FUZZ_SECONDS:-10} s of new inputs"
# Coverage-instrumented build into target/fuzz (RELIABILITY.md has the long runs).
fuzz/run.sh all "${VIGIL_FUZZ_SECONDS:-10}"
