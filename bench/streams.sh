#!/usr/bin/env bash
# Benchmark: the SSE route of a real server (SQLite store, sockets on
# 127.0.0.1, release build). Prints event->client latency p50/p99 with 1 and
# 100 clients and their ratio (goal: p50 <= 10 ms at 100 clients), and the
# server's CPU over an idle window with no clients and with 100 idle SSE
# clients (the baseline and the difference).
# Usage: bench/streams.sh [EVENTS=200] [IDLE_SECONDS=10]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${TRAINYARD_CACHE:-$HOME/.cache/trainyard}
(cd "$ROOT" && swift build -c release --scratch-path "$CACHE/swiftpm" --product YardBench >"$CACHE/build-bench.log" 2>&1) || {
  tail -30 "$CACHE/build-bench.log" >&2; exit 1; }
"$CACHE/swiftpm/release/YardBench" streams "${1:-200}" "${2:-10}"
