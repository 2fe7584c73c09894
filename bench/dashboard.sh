#!/usr/bin/env bash
# Benchmark: the dashboard in headless Chromium (issue 28). Against a store of
# JOBS jobs (100,000 by default, 10 epoch rows each) and, in the same run, a
# store of 10 jobs as the baseline: the jobs page's first render (navigation
# start to its first page of rows on screen; goal <= 500 ms), and the time
# from an epoch event entering the server's log to its point drawn on an
# open job page (p50/p99; goal p50 <= 100 ms). Also prints the gzipped size
# of the page files (goal <= 250 KB). Release build.
# Usage: bench/dashboard.sh [JOBS=100000] [EPOCHS=200] [RENDERS=15]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${TRAINYARD_CACHE:-$HOME/.cache/trainyard}
SCRATCH=${TRAINYARD_SCRATCH:-$CACHE/swiftpm}
SERVICES=${YARD_SERVICES:-$(ls -d "$CACHE"/services-* 2>/dev/null | head -1)}
[ -x "$SERVICES/bin/python" ] || { echo "no services venv with selenium: run scripts/setup.sh --test" >&2; exit 1; }
(cd "$ROOT" && swift build -c release --scratch-path "$SCRATCH" --product YardBench >"$CACHE/build-bench.log" 2>&1) || {
  tail -30 "$CACHE/build-bench.log" >&2; exit 1; }
exec "$SERVICES/bin/python" "$ROOT/bench/dashboard.py" "$SCRATCH/release/YardBench" "${1:-100000}" "${2:-200}" "${3:-15}"
