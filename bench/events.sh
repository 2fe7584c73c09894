#!/usr/bin/env bash
# Benchmark: the event log (issue 27) on the SQLite store, durable as `yard up`
# runs it, release build. Prints events appended per second by 8 writers
# (goal >= 20,000) with, from the same run, bare GRDB inserts on the same disk
# (1 and 100 rows per transaction) as baselines; and the latency from an
# append to each of 100 `/api/events` readers at 1,000 events/s (goal p50 <=
# 2 ms, p99 <= 20 ms).
# Usage: bench/events.sh [EVENTS_PER_WRITER=500] [SECONDS=5]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${TRAINYARD_CACHE:-$HOME/.cache/trainyard}
(cd "$ROOT" && swift build -c release --scratch-path "$CACHE/swiftpm" --product YardBench >"$CACHE/build-bench.log" 2>&1) || {
  tail -30 "$CACHE/build-bench.log" >&2; exit 1; }
"$CACHE/swiftpm/release/YardBench" events "${1:-500}" "${2:-5}"
