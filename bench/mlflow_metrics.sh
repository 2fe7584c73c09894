#!/usr/bin/env bash
# Benchmark: 10,000 metric points into one MLflow run, through Trainyard's
# tracker (spooled, sent with log-batch) and the official Python client (per-call log_metric, and log_batch of 1000
# points a call), against the same local `mlflow server`, release build.
# Prints the time to spool (a training's cost) and to replay (the backlog
# after an outage) and the throughput ratios. Goals: >= 50x per call,
# replay >= 1x log_batch.
# Usage: bench/mlflow_metrics.sh [POINTS=10000]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${TRAINYARD_CACHE:-$HOME/.cache/trainyard}
POINTS=${1:-10000}
eval "$("$ROOT/scripts/setup.sh" --test)"
(cd "$ROOT" && swift build -c release --scratch-path "$CACHE/swiftpm" --product YardBench >"$CACHE/build-bench.log" 2>&1) || {
  tail -30 "$CACHE/build-bench.log" >&2; exit 1; }
WORK=$(mktemp -d /tmp/yard-bench-mlflow.XXXXXX)
PORT=$("$YARD_SERVICES/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
setsid "$YARD_SERVICES/bin/mlflow" server --host 127.0.0.1 --port "$PORT" --workers 1 \
  --backend-store-uri "sqlite:///$WORK/mlflow.db" --artifacts-destination "$WORK/artifacts" --serve-artifacts >"$WORK/mlflow.log" 2>&1 &
MLFLOW=$!
trap 'kill -TERM -- -$MLFLOW 2>/dev/null || true; wait $MLFLOW 2>/dev/null || true; rm -rf "$WORK"' EXIT
URI="http://127.0.0.1:$PORT"
for _ in $(seq 1 240); do curl -fsS "$URI/health" >/dev/null 2>&1 && break; sleep 0.5; done

# Warm-up: a fresh server imports lazily on its first requests and keeps a
# core busy for a while after it answers /health; both clients get it warm and idle.
"$CACHE/swiftpm/release/YardBench" "$URI" warmup 200 >/dev/null
"$YARD_SERVICES/bin/python" - "$MLFLOW" <<'PY'
import os, sys, time
group = int(sys.argv[1])
def busy():  # CPU seconds of the server's processes
    total = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total
for _ in range(60):
    before = busy(); time.sleep(1)
    if busy() - before < 0.05:
        break
PY
SWIFT=$("$CACHE/swiftpm/release/YardBench" "$URI" bench "$POINTS")
echo "tracker: $SWIFT"
"$YARD_SERVICES/bin/python" - "$URI" "$POINTS" "$SWIFT" <<'PY'
import json, sys, time
from mlflow import MlflowClient
from mlflow.entities import Metric
uri, points, swift = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
client = MlflowClient(uri)
experiment = client.get_experiment_by_name("bench").experiment_id
run = client.create_run(experiment).info.run_id
client.log_batch(run, metrics=[Metric("warm", 0.0, 0, 0)])
start = time.time()
for i in range(points):
    client.log_metric(run, f"official/m{i % 10}", i * 0.001, step=i // 10)
official = time.time() - start
# The official client's fastest way: log_batch, 1000 points a call (MLflow's limit).
now = int(time.time() * 1000)
batch_points = [Metric(f"batch/m{i % 10}", i * 0.001, now + i // 10, i // 10) for i in range(points)]
start = time.time()
for i in range(0, points, 1000):
    client.log_batch(run, metrics=batch_points[i:i + 1000])
batched = time.time() - start
for name in ("live_run_id", "backlog_run_id"):
    got = sum(len(client.get_metric_history(swift[name], f"bench/m{k}")) for k in range(9))
    got += len(client.get_metric_history(swift[name], "epoch_seconds"))
    assert got == swift["points"], f"{name}: tracker points in MLflow: {got} != {swift['points']}"
n = swift["points"]
print(f"points: {n} each, same warm server; every tracker point checked in MLflow")
print(f"trainyard tracker live (spool + replayer):  {swift['live_seconds']:7.2f} s  {n / swift['live_seconds']:8.0f} points/s")
print(f"official client log_metric per call:        {official:7.2f} s  {points / official:8.0f} points/s")
print(f"  ratio tracker/official per call: {official / swift['live_seconds']:.1f}x  (goal >= 50x)")
print(f"trainyard replay of an outage's backlog:    {swift['replay_seconds']:7.2f} s  {n / swift['replay_seconds']:8.0f} points/s")
print(f"official client log_batch (1000 a call):    {batched:7.2f} s  {points / batched:8.0f} points/s")
print(f"  ratio replay/official log_batch: {batched / swift['replay_seconds']:.2f}x  (goal >= 1x)")
print(f"spooling {n // 10} epochs, one job:             {swift['spool_seconds']:7.2f} s  ({swift['spool_commits']} commits)")
ops, commits = swift["concurrent_ops"], swift["concurrent_commits"]
print(f"spooling {ops} epochs, 8 jobs at once:       {swift['concurrent_seconds']:7.2f} s  ({commits} commits, {ops / commits:.1f} operations each)")
PY
