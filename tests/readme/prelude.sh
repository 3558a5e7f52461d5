# Sourced before the README's shell blocks when the README tour test runs them (tests/e2e/readme.rs).
# It stands in for what a reader has and does, and nothing else:
#   - `cargo run --release -- ARGS` and `vigil ARGS` run the binary under test;
#   - `vigil serve` starts the server in the background (a reader runs it in another terminal)
#     after stopping the one before (a reader stops it with Ctrl-C), and waits until it is ready;
#   - after `vigil demo`, it waits until the server has written the traffic to its store, as a
#     reader's pause would;
#   - `tests/run.sh` is not run again (the test is part of it);
#   - `pgrep -f 'vigil serve'` names the server this tour started, not another test's;
#   - curl fails on any HTTP error status, so a README example that answers 4xx or 5xx fails the test;
#   - placeholders (<trace_id>, <session_id>, <user_hash>, <key_id>, <experiment_id>) were replaced with
#     $(readme_placeholder NAME), which reads a real value from the server.
# The test sets VIGIL_BIN, the ports (and the README's 4317/4318 were rewritten to them), and runs
# the blocks in one bash session in a scratch directory that holds a link to deploy/.
set -euo pipefail

export VIGIL_SERVER__GRPC_LISTEN="127.0.0.1:$README_GRPC_PORT"
export VIGIL_SERVER__HTTP_LISTEN="127.0.0.1:$README_HTTP_PORT"
export VIGIL_ENDPOINT="http://127.0.0.1:$README_GRPC_PORT"
export VIGIL_URL="http://127.0.0.1:$README_HTTP_PORT"
README_SERVER_PID=""

readme_stop_server() {
  if [ -n "$README_SERVER_PID" ]; then
    command kill -TERM "$README_SERVER_PID" 2>/dev/null || true
    wait "$README_SERVER_PID" 2>/dev/null || true
    README_SERVER_PID=""
  fi
}
trap readme_stop_server EXIT

# What the server acknowledged is readable once the batcher wrote it (batcher.max_delay, 500 ms):
# sooner than a reader types the next command, not sooner than a script does.
readme_wait_written() {
  for _ in $(seq 1 300); do
    if command curl -sf "$VIGIL_URL/readyz" | grep -q '"backlog_bytes":0'; then
      return
    fi
    sleep 0.1
  done
  echo "the server did not write the demo traffic to its store in 30 s" >&2
  return 1
}

vigil() {
  if [ "${1:-}" = demo ]; then
    "$VIGIL_BIN" "$@"
    readme_wait_written
    return
  fi
  if [ "${1:-}" != serve ]; then
    "$VIGIL_BIN" "$@"
    return
  fi
  readme_stop_server
  "$VIGIL_BIN" "$@" >>vigil-serve.log 2>&1 &
  README_SERVER_PID=$!
  for _ in $(seq 1 600); do
    if command curl -sf -o /dev/null "$VIGIL_URL/readyz" && [ -s vigil-data/bootstrap.key ]; then
      echo "(vigil serve is ready, pid $README_SERVER_PID)"
      return
    fi
    if ! command kill -0 "$README_SERVER_PID" 2>/dev/null; then
      echo "vigil serve exited; its log:" >&2
      cat vigil-serve.log >&2
      return 1
    fi
    sleep 0.1
  done
  echo "vigil serve did not become ready in 60 s" >&2
  return 1
}

cargo() {
  if [ "${1:-}" = run ] && [ "${2:-}" = --release ] && [ "${3:-}" = -- ]; then
    shift 3
    vigil "$@"
  else
    echo "the README tour runs only 'cargo run --release -- ...', not: cargo $*" >&2
    return 1
  fi
}

function tests/run.sh {
  echo "(tests/run.sh: this test is part of it)"
}

pgrep() {
  if [ "$*" = "-f vigil serve" ]; then
    echo "$README_SERVER_PID"
  else
    command pgrep "$@"
  fi
}

curl() {
  echo "+ curl $*" >&2
  command curl --fail-with-body --show-error --max-time 60 "$@"
  echo >&2
}

# A real value for a README placeholder, read from the server with the tour's $TOKEN.
readme_placeholder() {
  local auth=(-H "Authorization: Bearer $TOKEN")
  case "$1" in
    trace_id | session_id | user_hash)
      command curl -sf "${auth[@]}" "$VIGIL_URL/api/v1/runs?limit=100" |
        python3 -c "import json, sys; print(next(r['$1'] for r in json.load(sys.stdin)['runs'] if r['$1']))"
      ;;
    experiment_id) # the newest experiment
      command curl -sf "${auth[@]}" "$VIGIL_URL/api/v1/experiments" |
        python3 -c "import json, sys; print(json.load(sys.stdin)['experiments'][0]['id'])"
      ;;
    key_id) # the newest active key that is not an admin's (the tour's own token stays valid)
      command curl -sf "${auth[@]}" "$VIGIL_URL/api/v1/keys" |
        python3 -c "import json, sys; print([k['id'] for k in json.load(sys.stdin)['keys'] if not k['revoked_at'] and 'admin' not in k['roles']][-1])"
      ;;
    *)
      echo "unknown README placeholder <$1>" >&2
      return 1
      ;;
  esac
}
