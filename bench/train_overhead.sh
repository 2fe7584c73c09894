#!/usr/bin/env bash
# Benchmark: the same tiny training run directly with Ultralytics and through
# Trainyard (`yard submit --wait` against a running `yard up`), alternated
# RUNS times in one run. Prints the wall-time ratio (service / direct) and
# the submit-to-first-epoch latency of each. Target: ratio <= 1.05.
# Usage: bench/train_overhead.sh [RUNS=3] [EPOCHS=3]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${1:-3}
EPOCHS=${2:-3}
eval "$("$ROOT/scripts/setup.sh")"
WORK=$(mktemp -d /tmp/yard-bench.XXXXXX)
trap 'kill -TERM ${UP:-0} 2>/dev/null || true; wait ${UP:-0} 2>/dev/null || true; rm -rf "$WORK"' EXIT

"$YARD_BIN" datasets demo "$WORK/demo" --python "$YARD_PYTHON" --train 64 >/dev/null
cat >"$WORK/job.yaml" <<YAML
model: yolov8n.yaml
train: {data: $WORK/demo/data.yaml, epochs: $EPOCHS, imgsz: 64, batch: 8, workers: 0, plots: false, verbose: false}
YAML
"$YARD_BIN" up --port 0 --data-dir "$WORK/yard" --python "$YARD_PYTHON" >"$WORK/up.log" 2>&1 &
UP=$!
for _ in $(seq 1 200); do grep -q "serving http" "$WORK/up.log" 2>/dev/null && break; sleep 0.1; done
SERVER=$(grep -o "http://127.0.0.1:[0-9]*" "$WORK/up.log" | head -1)
[ -n "$SERVER" ] || { cat "$WORK/up.log"; exit 1; }

# Warm-up (first imports fill the page cache for both paths).
env YOLO_CONFIG_DIR="$WORK/yard/ultralytics" "$YARD_PYTHON" "$ROOT/bench/direct_train.py" --data "$WORK/demo/data.yaml" \
  --project "$WORK/direct" --epochs 1 >/dev/null 2>&1

for i in $(seq 1 "$RUNS"); do
  env YOLO_CONFIG_DIR="$WORK/yard/ultralytics" "$YARD_PYTHON" "$ROOT/bench/direct_train.py" --data "$WORK/demo/data.yaml" \
    --project "$WORK/direct" --epochs "$EPOCHS" 2>/dev/null | tail -1 >>"$WORK/direct.jsonl"
  t0=$(date +%s.%N)
  id=$("$YARD_BIN" submit "$WORK/job.yaml" --wait --server "$SERVER" | sed -n 's/^submitted //p')
  t1=$(date +%s.%N)
  curl -fsS "$SERVER/api/jobs/$id/events" >"$WORK/events-$i.txt"
  echo "{\"start\": $t0, \"end\": $t1, \"events\": \"$WORK/events-$i.txt\"}" >>"$WORK/service.jsonl"
done

"$YARD_PYTHON" - "$WORK" <<'PY'
import json, statistics, sys
work = sys.argv[1]
direct = [json.loads(l) for l in open(f"{work}/direct.jsonl")]
service = []
for row in map(json.loads, open(f"{work}/service.jsonl")):
    first = None
    for block in open(row["events"]).read().split("\n\n"):
        if "event: epoch" in block:
            data = json.loads(block.split("data: ", 1)[1])
            first = data["time"] - row["start"]
            break
    service.append({"wall": row["end"] - row["start"], "first_epoch": first})
dw = statistics.median(r["wall"] for r in direct)
sw = statistics.median(r["wall"] for r in service)
df = statistics.median(r["first_epoch"] for r in direct)
sf = statistics.median(r["first_epoch"] for r in service)
print(f"runs: {len(direct)} each, medians")
print(f"direct ultralytics  wall {dw:7.2f} s   start->first epoch {df:6.2f} s")
print(f"yard submit --wait  wall {sw:7.2f} s   submit->first epoch {sf:6.2f} s")
print(f"ratio service/direct wall: {sw / dw:.3f}  (target <= 1.05)")
print(f"first-epoch latency ratio: {sf / df:.3f}")
PY
