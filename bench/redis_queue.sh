#!/usr/bin/env bash
# Benchmark: the Redis queue path (RedisJobQueue, no engine) against a
# redis-server started here on 127.0.0.1 (append-only file on, as in
# production). Prints jobs/s with 1 and 4 workers, enqueue-to-claim p50/p99
# for idle waiting workers, and ratios to two baselines measured in the same
# run: bare XADD/XREADGROUP/XACK round trips through our client, and the same
# three commands from redis-benchmark (C, 4 clients; one job = one of each).
# Then the whole path of a job with a no-op engine in process (server store,
# workers with their own connections and outboxes, reports applied by the
# server): jobs/s, submit->engine start and submit->end recorded.
# Goal: >= 5000 jobs/s with 4 workers, p50 dispatch <= 2 ms, >= 0.5 x baseline.
# Usage: bench/redis_queue.sh [JOBS=20000]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${TRAINYARD_CACHE:-$HOME/.cache/trainyard}
command -v redis-server >/dev/null || { echo "redis-server is not installed: run scripts/setup.sh --test" >&2; exit 1; }
(cd "$ROOT" && swift build -c release --scratch-path "$CACHE/swiftpm" --product YardBench >"$CACHE/build-bench.log" 2>&1) || {
  tail -30 "$CACHE/build-bench.log" >&2; exit 1; }
DIR=$(mktemp -d /tmp/yard-bench-redis.XXXXXX)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis-server --port "$PORT" --bind 127.0.0.1 --dir "$DIR" --appendonly yes --save "" --daemonize no \
  --logfile "$DIR/redis.log" &
REDIS=$!
trap 'kill $REDIS 2>/dev/null; wait $REDIS 2>/dev/null; rm -rf "$DIR"' EXIT
for _ in $(seq 1 50); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
JOBS=${1:-20000}
rps() { redis-benchmark -p "$PORT" -c 4 -n "$JOBS" --csv "$@" | tail -1 | cut -d'"' -f4; }
XADD=$(rps XADD rb '*' job x)
redis-cli -p "$PORT" XGROUP CREATE rb g 0 >/dev/null
XREAD=$(rps XREADGROUP GROUP g c COUNT 1 STREAMS rb '>')
XACK=$(rps XACK rb g 0-1)
C_BASELINE=$(python3 -c "print(round(1 / (1 / $XADD + 1 / $XREAD + 1 / $XACK)))")
echo "redis-benchmark, 4 clients: XADD $XADD/s, XREADGROUP $XREAD/s, XACK $XACK/s -> $C_BASELINE jobs/s"
redis-cli -p "$PORT" FLUSHALL >/dev/null
"$CACHE/swiftpm/release/YardBench" redis-queue "redis://127.0.0.1:$PORT/0" "$JOBS" "$C_BASELINE"
