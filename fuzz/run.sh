#!/usr/bin/env bash
# Builds the fuzz targets with libFuzzer's coverage instrumentation (stable Rust: no sanitizer,
# the flags cargo-fuzz passes with `--sanitizer none`) and runs them.
#
#   fuzz/run.sh build                 build every target into target/fuzz
#   fuzz/run.sh TARGET SECONDS [ARGS] fuzz one target, its corpus in fuzz/corpus/TARGET
#   fuzz/run.sh all SECONDS           each target in turn for SECONDS
#   fuzz/run.sh minimize TARGET       fold fuzz/found/TARGET into fuzz/corpus/TARGET, keeping only
#                                     the inputs that add coverage
#
# New inputs a run finds go to fuzz/found/TARGET (not committed); the committed corpus changes
# only by `minimize`. A crash leaves its input in fuzz/artifacts/TARGET/ and exits non-zero.
set -euo pipefail
cd "$(dirname "$0")"
TARGETS=(native otlp_proto otlp_json gzip metric_query audit_query alert_rule alert_rules_toml
         config_toml wal_segment)
export CARGO_TARGET_DIR="$PWD/../target/fuzz"
# Building for the host triple by name keeps RUSTFLAGS off build scripts and proc macros, which
# must not be instrumented (nothing links libFuzzer into them).
HOST=$(rustc -vV | sed -n 's/^host: //p')
BIN="$CARGO_TARGET_DIR/$HOST/release"

build() {
  RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares" \
  VIGIL_SKIP_WEB=1 cargo build --release --quiet --bins --target "$HOST"
}

fuzz() {
  local target=$1 seconds=$2
  shift 2
  mkdir -p "corpus/$target" "found/$target" "artifacts/$target"
  "$BIN/$target" "found/$target" "corpus/$target" -max_total_time="$seconds" -max_len=65536 \
    -artifact_prefix="artifacts/$target/" -print_final_stats=1 "$@"
}

case "${1:-}" in
  build) build ;;
  all)
    build
    for target in "${TARGETS[@]}"; do fuzz "$target" "$2"; done
    ;;
  minimize)
    build
    target=$2
    merged=$(mktemp -d)
    mkdir -p "corpus/$target" "found/$target"
    "$BIN/$target" -set_cover_merge=1 "$merged" "corpus/$target" "found/$target"
    rm -rf "corpus/$target" "found/$target" && mv "$merged" "corpus/$target"
    ;;
  "") sed -n '2,10p' "$0"; exit 2 ;;
  *) build; fuzz "$@" ;;
esac
