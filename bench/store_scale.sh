#!/usr/bin/env bash
# Benchmark: the store at scale (issue 27), release build. Generates a SQLite
# store of JOBS jobs (states mixed) with EPOCHS_PER_JOB epoch rows each
# (default 100,000 and 10: a million rows), serves it, and prints p50/p99 of
# GET /api/jobs?state=S&limit=50 and GET /api/jobs/{id} (goal p99 <= 20 ms)
# against GET /health in the same run.
# Usage: bench/store_scale.sh [JOBS=100000] [EPOCHS_PER_JOB=10]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${TRAINYARD_CACHE:-$HOME/.cache/trainyard}
(cd "$ROOT" && swift build -c release --scratch-path "$CACHE/swiftpm" --product YardBench >"$CACHE/build-bench.log" 2>&1) || {
  tail -30 "$CACHE/build-bench.log" >&2; exit 1; }
"$CACHE/swiftpm/release/YardBench" store-scale "${1:-100000}" "${2:-10}"
