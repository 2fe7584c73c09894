#!/usr/bin/env bash
# Fuzzing: the parsers of untrusted bytes (multipart, COCO JSON, YOLO labels,
# data.yaml, job configs, wyolo messages, RESP replies, image headers), each
# for SECONDS (CI gives each 2 s). A parser that traps ends the run with the
# seed it printed first; `YARD_FUZZ_SEED=N bench/fuzz.sh SECONDS PARSER`
# replays it. Prints the inputs each parser ran.
# Usage: bench/fuzz.sh [SECONDS=60] [PARSER: multipart|cocoJSON|yoloLabels|datasetYAML|jobConfigs|wyoloMessages|respReplies|imageHeaders]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${TRAINYARD_CACHE:-$HOME/.cache/trainyard}
cd "$ROOT"
swift build --build-tests --scratch-path "$CACHE/swiftpm" >"$CACHE/build-fuzz.log" 2>&1 || { grep -E "error:" -A3 "$CACHE/build-fuzz.log" | head -40 >&2; exit 1; }
export YARD_FUZZ_SECONDS=${1:-60}
filter="FuzzTests${2:+/$2}"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
status=0
swift test --skip-build --scratch-path "$CACHE/swiftpm" --filter "$filter" >"$out" 2>&1 || status=$?
grep -E "^fuzz " "$out" || true
if [ "$status" -ne 0 ]; then
  grep -vE "^fuzz " "$out" | tail -30 >&2
  echo "fuzzing failed (exit $status): replay with the seed printed above" >&2
  exit "$status"
fi
echo "every parser answered every input"
