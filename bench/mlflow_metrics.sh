#!/usr/bin/env bash
# Benchmark: 10,000 metric points into one MLflow run, through Trainyard's
# tracker (spooled, sent with log-batch) and through the official Python
# client's per-call log_metric, against the same local `mlflow server`.
# Prints the throughput ratio (tracker / official client).
# Usage: bench/mlflow_metrics.sh [POINTS=10000]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${TRAINYARD_CACHE:-$HOME/.cache/trainyard}
POINTS=${1:-10000}
eval "$("$ROOT/scripts/setup.sh" --test)"
(cd "$ROOT" && swift build --scratch-path "$CACHE/swiftpm" --product YardBench >"$CACHE/build-bench.log" 2>&1) || {
  tail -30 "$CACHE/build-bench.log" >&2; exit 1; }
WORK=$(mktemp -d /tmp/yard-bench-mlflow.XXXXXX)
PORT=$("$YARD_SERVICES/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
setsid "$YARD_SERVICES/bin/mlflow" server --host 127.0.0.1 --port "$PORT" --workers 1 \
  --backend-store-uri "sqlite:///$WORK/mlflow.db" --artifacts-destination "$WORK/artifacts" --serve-artifacts >"$WORK/mlflow.log" 2>&1 &
MLFLOW=$!
trap 'kill -TERM -- -$MLFLOW 2>/dev/null || true; wait $MLFLOW 2>/dev/null || true; rm -rf "$WORK"' EXIT
URI="http://127.0.0.1:$PORT"
for _ in $(seq 1 240); do curl -fsS "$URI/health" >/dev/null 2>&1 && break; sleep 0.5; done

SWIFT=$("$CACHE/swiftpm/debug/YardBench" "$URI" bench "$POINTS")
echo "tracker: $SWIFT"
"$YARD_SERVICES/bin/python" - "$URI" "$POINTS" "$SWIFT" <<'PY'
import json, sys, time
from mlflow import MlflowClient
uri, points, swift = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
client = MlflowClient(uri)
run = swift["run_id"]
start = time.time()
for i in range(points):
    client.log_metric(run, f"official/m{i % 10}", i * 0.001, step=i // 10)
official = time.time() - start
count = sum(len(client.get_metric_history(run, f"bench/m{k}")) for k in range(9)) + len(client.get_metric_history(run, "epoch_seconds"))
assert count == swift["points"], f"tracker points in MLflow: {count} != {swift['points']}"
print(f"points: {points} each, same server, same run ({run})")
print(f"trainyard tracker (spool + log-batch): {swift['seconds']:8.2f} s  {swift['points'] / swift['seconds']:9.0f} points/s")
print(f"official client log_metric per call:   {official:8.2f} s  {points / official:9.0f} points/s")
print(f"throughput ratio tracker/official: {(swift['points'] / swift['seconds']) / (points / official):.1f}x")
PY
