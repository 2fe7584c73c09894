#!/usr/bin/env bash
# Benchmark: what the HTTP metrics middleware costs. Two servers in one
# process over one SQLite store (release build, sockets on 127.0.0.1), one
# with the middleware and one without as the baseline, alternated round by
# round; keep-alive GET /health (the cheapest handler: the largest relative
# cost) and GET /api/jobs/{id}. Prints req/s and p50/p99 of each and the
# ratios with/without (goal: throughput ratio >= 0.95 on /api/jobs/{id}).
# Usage: bench/http_metrics.sh [REQUESTS=20000] [ROUNDS=5]
# TRAINYARD_SCRATCH picks the build folder (default ~/.cache/trainyard/swiftpm).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${TRAINYARD_CACHE:-$HOME/.cache/trainyard}
SCRATCH=${TRAINYARD_SCRATCH:-$CACHE/swiftpm}
(cd "$ROOT" && swift build -c release --scratch-path "$SCRATCH" --product YardBench >"$CACHE/build-bench.log" 2>&1) || {
  tail -30 "$CACHE/build-bench.log" >&2; exit 1; }
"$SCRATCH/release/YardBench" http-metrics "${1:-20000}" "${2:-5}"
