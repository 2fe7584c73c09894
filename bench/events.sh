#!/usr/bin/env bash
# Benchmark: the event log (issue 27) on the SQLite store, durable as `yard up`
# runs it (WAL, synchronous=NORMAL: committed to the WAL before an append
# returns), release build. Prints:
# - events appended per second by 8 writers, each awaiting its appends (goal
#   >= 20,000), against bare GRDB inserts by 8 writers on the same disk in the
#   same run (1 row per transaction: the baseline; 100 rows: a reference);
# - the latency from an append to its `/api/events` readers on real sockets,
#   events offered at 1,000 a second (open loop), with 1 reader (the
#   baseline) and with 100 (goal p50 <= 2 ms, p99 <= 20 ms), and the rates
#   achieved (appends/s, deliveries/s). The readers are a process of their
#   own (one thread polling all sockets); the CPU of the server process and
#   of the readers' process is printed beside, as both share the cores.
# Other work on the machine moves these numbers: run it several times and
# take the median.
# Usage: bench/events.sh [EVENTS_PER_WRITER=2000] [SECONDS=5]
# TRAINYARD_SCRATCH picks the build folder (default ~/.cache/trainyard/swiftpm).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${TRAINYARD_CACHE:-$HOME/.cache/trainyard}
SCRATCH=${TRAINYARD_SCRATCH:-$CACHE/swiftpm}
(cd "$ROOT" && swift build -c release --scratch-path "$SCRATCH" --product YardBench >"$CACHE/build-bench.log" 2>&1) || {
  tail -30 "$CACHE/build-bench.log" >&2; exit 1; }
"$SCRATCH/release/YardBench" events "${1:-2000}" "${2:-5}"
