#!/usr/bin/env bash
# Benchmark: the same tiny training run directly with Ultralytics and through
# Trainyard (`yard submit --wait` against a running `yard up`, release
# build), alternated RUNS times in one run. Prints the wall-time ratio
# (service / direct; goal <= 1.02) and where the difference goes: stage by
# stage, medians, from the job's events and the engine's own clock.
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
    --project "$WORK/direct" --epochs "$EPOCHS" --t0 "$(date +%s.%N)" 2>/dev/null | tail -1 >>"$WORK/direct.jsonl"
  t0=$(date +%s.%N)
  id=$("$YARD_BIN" submit "$WORK/job.yaml" --wait --server "$SERVER" | sed -n 's/^submitted //p')
  t1=$(date +%s.%N)
  curl -fsS "$SERVER/api/jobs/$id/events" >"$WORK/events-$i.txt"
  echo "{\"start\": $t0, \"end\": $t1, \"events\": \"$WORK/events-$i.txt\"}" >>"$WORK/service.jsonl"
done

"$YARD_PYTHON" - "$WORK" <<'PY'
import json, statistics, sys
work = sys.argv[1]
med = statistics.median
direct = [json.loads(l) for l in open(f"{work}/direct.jsonl")]
service = []
for row in map(json.loads, open(f"{work}/service.jsonl")):
    events = []
    for block in open(row["events"]).read().split("\n\n"):
        kind = next((l[7:] for l in block.split("\n") if l.startswith("event: ")), None)
        data = next((l[6:] for l in block.split("\n") if l.startswith("data: ")), None)
        if kind and data:
            events.append((kind, json.loads(data)))
    def at(kind, state=None, last=False):
        found = [d for k, d in events if k == kind and (state is None or d.get("state") == state)]
        return (found[-1] if last else found[0]) if found else None
    started = at("started")
    service.append({
        "launched": row["start"], "queued": at("state", "queued")["time"], "running": at("state", "running")["time"],
        "process": started["process_start"], "train_start": started["time"],
        "first_epoch": at("epoch")["time"], "last_epoch": at("epoch", last=True)["time"],
        "finished": at("finished")["time"], "succeeded": at("state", "succeeded")["time"], "end": row["end"],
    })
def span(rows, a, b):
    return med(r[b] - r[a] for r in rows)
dw, sw = span(direct, "launched", "end"), span(service, "launched", "end")
print(f"runs: {len(direct)} each, medians (seconds)")
print(f"direct ultralytics  wall {dw:7.2f}   launch->first epoch {span(direct, 'launched', 'first_epoch'):6.2f}")
print(f"yard submit --wait  wall {sw:7.2f}   submit->first epoch {span(service, 'launched', 'first_epoch'):6.2f}")
print(f"ratio service/direct wall: {sw / dw:.3f}  (goal <= 1.02)")
print("where the difference goes:                      direct  service  extra")
rows = [
    ("submit -> job queued (CLI, POST)", None, ("launched", "queued")),
    ("queued -> running (claim)", None, ("queued", "running")),
    ("running -> engine process up (spec, spawn)", None, ("running", "process")),
    ("process up -> training starts (imports, setup)", ("launched", "train_start"), ("process", "train_start")),
    ("training: start -> last epoch", ("train_start", "last_epoch"), ("train_start", "last_epoch")),
    ("last epoch -> final results (final val)", ("last_epoch", "end"), ("last_epoch", "finished")),
    ("final results -> job succeeded (exit, artifacts)", None, ("finished", "succeeded")),
    ("succeeded -> CLI returns (event, summary)", None, ("succeeded", "end")),
]
only = 0.0
for name, d, s in rows:
    dv = span(direct, *d) if d else 0.0
    sv = span(service, *s)
    only += sv if d is None else 0.0
    print(f"  {name:<48} {dv:6.2f}  {sv:7.2f}  {sv - dv:+6.2f}")
print(f"stages only the service has: {only:.2f} s; the rest is Ultralytics' own run-to-run spread")
PY
