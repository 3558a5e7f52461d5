#!/usr/bin/env bash
# Runs every test of Vigil. Installs what the tests need on a fresh machine first:
# Debian's ClickHouse server and client (the tests start their own isolated servers on free
# ports), and a Python virtualenv with the OpenTelemetry SDK and its OTLP exporters, and chDB (a
# current ClickHouse, embedded) to check the migrations on (from PyPI).
# Usage: tests/run.sh [extra cargo test arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v clickhouse-server >/dev/null || ! command -v clickhouse-client >/dev/null; then
  echo "==> installing clickhouse-server and clickhouse-client (Debian)"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  # The package's post-install may try to start a system service; the tests never use it.
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq clickhouse-server clickhouse-client >/dev/null
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

echo "==> cargo test (unit, property and end-to-end tests)"
cargo test --workspace --all-targets "$@"

echo "==> benchmark smoke run"
# The binary the end-to-end tests just ran: no second build.
"${CARGO_TARGET_DIR:-target}/debug/vigil" bench ingest --smoke
