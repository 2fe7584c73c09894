#!/usr/bin/env bash
# Benchmark: the same tiny training run directly with Ultralytics and through
# Trainyard (`yard submit --wait`, release build) on a `yard up` with warm
# engines (the default) and one with `--no-warm-engine`, alternated RUNS
# times in one run. Prints the wall-time ratios to the direct run (goal for
# the warm path: <= 0.75, and submit -> first epoch <= 0.5x the direct run's
# launch -> first epoch) and where the time goes, stage by stage, medians,
# from the jobs' events and the engine's own clock.
# Usage: bench/train_overhead.sh [RUNS=3] [EPOCHS=3]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${1:-3}
EPOCHS=${2:-3}
eval "$("$ROOT/scripts/setup.sh")"
WORK=$(mktemp -d /tmp/yard-bench.XXXXXX)
stop_servers() {
  for p in $(cat "$WORK/pids" 2>/dev/null); do kill -TERM "$p" 2>/dev/null || true; done
  for p in $(cat "$WORK/pids" 2>/dev/null); do for _ in $(seq 1 300); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done; done
  rm -rf "$WORK"
}
trap stop_servers EXIT

"$YARD_BIN" datasets demo "$WORK/demo" --python "$YARD_PYTHON" --train 64 >/dev/null
cat >"$WORK/job.yaml" <<YAML
model: yolov8n.yaml
train: {data: $WORK/demo/data.yaml, epochs: $EPOCHS, imgsz: 64, batch: 8, workers: 0, plots: false, verbose: false}
YAML
serve() {  # NAME [FLAGS...] -> prints the server's URL
  local name=$1; shift
  "$YARD_BIN" up --port 0 --data-dir "$WORK/$name" --python "$YARD_PYTHON" "$@" >"$WORK/up-$name.log" 2>&1 &
  echo $! >>"$WORK/pids"
  for _ in $(seq 1 200); do grep -q "serving http" "$WORK/up-$name.log" 2>/dev/null && break; sleep 0.1; done
  grep -o "http://127.0.0.1:[0-9]*" "$WORK/up-$name.log" | head -1
}
WARM=$(serve warm)
COLD=$(serve cold --no-warm-engine)
[ -n "$WARM" ] && [ -n "$COLD" ] || { cat "$WORK"/up-*.log; exit 1; }

submit() {  # SERVER NAME RUN
  local t0 t1 id
  t0=$(date +%s.%N)
  id=$("$YARD_BIN" submit "$WORK/job.yaml" --wait --server "$1" | sed -n 's/^submitted //p')
  t1=$(date +%s.%N)
  curl -fsS "$1/api/jobs/$id/events" >"$WORK/events-$2-$3.txt"
  echo "{\"start\": $t0, \"end\": $t1, \"events\": \"$WORK/events-$2-$3.txt\"}" >>"$WORK/$2.jsonl"
}

# Warm-up (first imports fill the page cache for every path).
env YOLO_CONFIG_DIR="$WORK/warm/ultralytics" "$YARD_PYTHON" "$ROOT/bench/direct_train.py" --data "$WORK/demo/data.yaml" \
  --project "$WORK/direct" --epochs 1 >/dev/null 2>&1

for i in $(seq 1 "$RUNS"); do
  env YOLO_CONFIG_DIR="$WORK/warm/ultralytics" "$YARD_PYTHON" "$ROOT/bench/direct_train.py" --data "$WORK/demo/data.yaml" \
    --project "$WORK/direct" --epochs "$EPOCHS" --t0 "$(date +%s.%N)" 2>/dev/null | tail -1 >>"$WORK/direct.jsonl"
  submit "$COLD" cold "$i"
  sleep 8  # the warm server's next engine finishes its imports, as between jobs in use
  submit "$WARM" warm "$i"
done

"$YARD_PYTHON" - "$WORK" <<'PY'
import json, statistics, sys
work = sys.argv[1]
med = statistics.median
direct = [json.loads(l) for l in open(f"{work}/direct.jsonl")]
def service_rows(name):
    rows = []
    for row in map(json.loads, open(f"{work}/{name}.jsonl")):
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
        rows.append({
            "launched": row["start"], "queued": at("state", "queued")["time"], "running": at("state", "running")["time"],
            "process": started["process_start"], "train_start": started["time"], "warm": started.get("warm", False),
            "first_epoch": at("epoch")["time"], "last_epoch": at("epoch", last=True)["time"],
            "finished": at("finished")["time"], "succeeded": at("state", "succeeded")["time"], "end": row["end"],
        })
    return rows
cold, warm = service_rows("cold"), service_rows("warm")
def span(rows, a, b):
    return med(r[b] - r[a] for r in rows)
dw, cw, ww = span(direct, "launched", "end"), span(cold, "launched", "end"), span(warm, "launched", "end")
df, cf, wf = span(direct, "launched", "first_epoch"), span(cold, "launched", "first_epoch"), span(warm, "launched", "first_epoch")
print(f"runs: {len(direct)} each, medians (seconds); warm engines used: {sum(r['warm'] for r in warm)}/{len(warm)}")
print(f"direct ultralytics            wall {dw:7.2f}   launch->first epoch {df:6.2f}")
print(f"yard, cold engine             wall {cw:7.2f}   submit->first epoch {cf:6.2f}")
print(f"yard, warm engine (default)   wall {ww:7.2f}   submit->first epoch {wf:6.2f}")
print(f"ratio cold/direct wall: {cw / dw:.3f}  (the service's own overhead; was the goal <= 1.02)")
print(f"ratio warm/direct wall: {ww / dw:.3f}  (goal <= 0.75)")
print(f"ratio warm/direct first epoch: {wf / df:.3f}  (goal <= 0.5)")
print("where the time goes:                              direct    cold    warm")
rows = [
    ("submit -> job queued (CLI, POST)", None, ("launched", "queued")),
    ("queued -> running (claim)", None, ("queued", "running")),
    ("running -> engine has the job (spec, spawn)", None, ("running", "process")),
    ("engine has job -> training starts (imports, setup)", ("launched", "train_start"), ("process", "train_start")),
    ("training: start -> last epoch", ("train_start", "last_epoch"), ("train_start", "last_epoch")),
    ("last epoch -> final results (final val)", ("last_epoch", "end"), ("last_epoch", "finished")),
    ("final results -> job succeeded (exit, artifacts)", None, ("finished", "succeeded")),
    ("succeeded -> CLI returns (event, summary)", None, ("succeeded", "end")),
]
for name, d, s in rows:
    dv = span(direct, *d) if d else 0.0
    print(f"  {name:<50} {dv:6.2f}  {span(cold, *s):6.2f}  {span(warm, *s):6.2f}")
PY
