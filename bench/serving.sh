#!/usr/bin/env bash
# Benchmark: serving one model (yolov8n at 640, on Ultralytics' own bus.jpg)
# three ways in one run: (1) the best in-process Ultralytics loop on this
# machine (all cores), (2) a seed-004 style FastAPI + uvicorn server (1
# worker, a per-request predict), (3) `yard serve` (release build, the
# predictor pool). Closed-loop HTTP load at each concurrency: img/s, p50,
# p99. Goals at c=16: (3) >= 0.9x (1) and >= 1.8x (2), p99 <= 0.6x (2)'s.
# Then (4): the same `yard serve` with the version exported to ONNX and
# `?runtime=onnx` (onnxruntime in the same predictor pool), against (3).
# (1b): the loop of (1), every other pass decoding the JPEG's bytes first, as
# a server must: how much of the gap between (1) and (3) is decoding alone.
# (5): this machine's speed drifts by 10-25% over minutes, more than the
# differences measured, so the goals are judged on (1), (2) and (3)
# alternated at the top concurrency, ROUNDS rounds of SECONDS each (the
# order turned round every other round): the mean and spread of the
# per-round ratios, and p99 over all rounds. (1) is also measured again at
# the end of the sequential part.
# The model is a yolov8n trained for one epoch on the demo data (no network:
# no pretrained download); the compute per image is yolov8n's at 640.
# Usage: bench/serving.sh [SECONDS_PER_LEVEL=15] ["LEVELS"="1 4 16"] [ROUNDS=10]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SECONDS_PER_LEVEL=${1:-15}
LEVELS=${2:-"1 4 16"}
ROUNDS=${3:-10}
CACHE=${TRAINYARD_CACHE:-$HOME/.cache/trainyard}
eval "$("$ROOT/scripts/setup.sh")"
DEPS="$CACHE/bench-serving-$(sha256sum "$ROOT/bench/serving_requirements.txt" | cut -c1-16)"
if [ ! -f "$DEPS/.complete" ]; then
  rm -rf "$DEPS"
  "$YARD_PYTHON" -m pip install -q --disable-pip-version-check --target "$DEPS" -r "$ROOT/bench/serving_requirements.txt" >&2
  touch "$DEPS/.complete"
fi
WORK=$(mktemp -d /tmp/yard-bench-serving.XXXXXX)
stop_all() {
  for p in $(cat "$WORK/pids" 2>/dev/null); do kill -TERM "$p" 2>/dev/null || true; done
  for p in $(cat "$WORK/pids" 2>/dev/null); do for _ in $(seq 1 300); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done; done
  rm -rf "$WORK"
}
trap stop_all EXIT
free_port() { "$YARD_PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_for() { for _ in $(seq 1 600); do curl -fsS "$1" >/dev/null 2>&1 && return 0; sleep 0.2; done; echo "no answer from $1" >&2; exit 1; }
export YOLO_CONFIG_DIR="$WORK/ultralytics" YOLO_OFFLINE=1
IMAGE=$("$YARD_PYTHON" -c 'from ultralytics.utils import ASSETS; print(ASSETS / "bus.jpg")' 2>/dev/null | tail -1)

# The model: trained and registered by `yard up` (then stopped: the lock is
# the data dir's; `yard serve` opens it next).
"$YARD_BIN" datasets demo "$WORK/demo" --python "$YARD_PYTHON" --train 16 --val 4 >/dev/null
PORT=$(free_port)
"$YARD_BIN" up --port "$PORT" --data-dir "$WORK/yard" --python "$YARD_PYTHON" >"$WORK/up.log" 2>&1 &
UP=$!; echo $UP >>"$WORK/pids"
wait_for "http://127.0.0.1:$PORT/health"
cat >"$WORK/job.yaml" <<YAML
model: yolov8n.yaml
train: {data: $WORK/demo/data.yaml, epochs: 1, imgsz: 64, batch: 8, workers: 0, plots: false}
YAML
ID=$("$YARD_BIN" submit "$WORK/job.yaml" --wait --server "http://127.0.0.1:$PORT" | sed -n 's/^submitted //p')
"$YARD_BIN" models register "$ID" bench --server "http://127.0.0.1:$PORT" >/dev/null
WEIGHTS=$(curl -fsS "http://127.0.0.1:$PORT/api/jobs/$ID" | "$YARD_PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["best_weights"])')
kill -TERM $UP; wait $UP 2>/dev/null || true

echo "== (1) in-process Ultralytics" >&2
"$YARD_PYTHON" "$ROOT/bench/serving_baseline.py" inprocess "$WEIGHTS" "$IMAGE" "$SECONDS_PER_LEVEL" >"$WORK/inprocess.json"

echo "== (1b) in-process Ultralytics, decoding each image" >&2
"$YARD_PYTHON" "$ROOT/bench/serving_baseline.py" inprocess "$WEIGHTS" "$IMAGE" "$SECONDS_PER_LEVEL" decode >"$WORK/inprocess-decode.json"

echo "== (2) FastAPI + uvicorn, 1 worker" >&2
FPORT=$(free_port)
PYTHONPATH="$DEPS" "$YARD_PYTHON" "$ROOT/bench/serving_baseline.py" fastapi "$WEIGHTS" "$FPORT" >"$WORK/fastapi.log" 2>&1 &
FAST=$!; echo $FAST >>"$WORK/pids"
wait_for "http://127.0.0.1:$FPORT/health"
for c in $LEVELS; do
  "$YARD_PYTHON" "$ROOT/bench/serving_load.py" "http://127.0.0.1:$FPORT/predict" "$IMAGE" "$c" "$SECONDS_PER_LEVEL" >"$WORK/fastapi-$c.json"
done

echo "== (3) yard serve" >&2
SPORT=$(free_port)
"$YARD_BIN" serve --port "$SPORT" --data-dir "$WORK/yard" --python "$YARD_PYTHON" >"$WORK/serve.log" 2>&1 &
SERVE=$!; echo $SERVE >>"$WORK/pids"
wait_for "http://127.0.0.1:$SPORT/health"
curl -fsS -X POST -H 'Content-Type: image/jpeg' --data-binary "@$IMAGE" "http://127.0.0.1:$SPORT/api/predict/bench?imgsz=640" >/dev/null
for c in $LEVELS; do
  "$YARD_PYTHON" "$ROOT/bench/serving_load.py" "http://127.0.0.1:$SPORT/api/predict/bench?imgsz=640" "$IMAGE" "$c" "$SECONDS_PER_LEVEL" >"$WORK/yard-$c.json"
done
curl -fsS "http://127.0.0.1:$SPORT/api/serving" >"$WORK/serving.json"

TOP=$(echo $LEVELS | tr ' ' '\n' | sort -n | tail -1)
echo "== (5) (1), (2) and (3) alternated at c=$TOP, $ROUNDS rounds" >&2
LAYOUT=$("$YARD_PYTHON" -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["processes"], r["threads"])' "$WORK/inprocess.json")
"$YARD_PYTHON" "$ROOT/bench/serving_baseline.py" interleave "$WEIGHTS" "$IMAGE" "$TOP" "$SECONDS_PER_LEVEL" "$ROUNDS" $LAYOUT \
  "fastapi=http://127.0.0.1:$FPORT/predict" "yard=http://127.0.0.1:$SPORT/api/predict/bench?imgsz=640" >"$WORK/interleaved.json"
kill -TERM $FAST; wait $FAST 2>/dev/null || true

echo "== (4) yard serve, ONNX export on onnxruntime" >&2
"$YARD_BIN" models export bench 1 --format onnx --server "http://127.0.0.1:$SPORT" >&2
curl -fsS -X POST -H 'Content-Type: image/jpeg' --data-binary "@$IMAGE" "http://127.0.0.1:$SPORT/api/predict/bench?imgsz=640&runtime=onnx" >/dev/null
for c in $LEVELS; do
  "$YARD_PYTHON" "$ROOT/bench/serving_load.py" "http://127.0.0.1:$SPORT/api/predict/bench?imgsz=640&runtime=onnx" "$IMAGE" "$c" "$SECONDS_PER_LEVEL" >"$WORK/onnx-$c.json"
done
kill -TERM $SERVE; wait $SERVE 2>/dev/null || true

echo "== (1) again: in-process Ultralytics" >&2
"$YARD_PYTHON" "$ROOT/bench/serving_baseline.py" inprocess "$WEIGHTS" "$IMAGE" "$SECONDS_PER_LEVEL" >"$WORK/inprocess-again.json"

"$YARD_PYTHON" - "$WORK" "$LEVELS" <<'PY'
import json, sys
work, levels = sys.argv[1], [int(c) for c in sys.argv[2].split()]
load = lambda name: json.load(open(f"{work}/{name}.json"))
inproc = load("inprocess")
again = load("inprocess-again")
decoding = load("inprocess-decode")
serving = load("serving")["loaded"][0]
print(f"machine: {__import__('os').cpu_count()} cores; yard serve: {serving['processes']} predictor(s) x {serving['threads']} thread(s); "
      f"in-process best: {inproc['layout']}")
print(f"{'':22} {'c':>3} {'img/s':>7} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}")
print(f"{'(1) in-process':22} {'-':>3} {inproc['img_s']:7.2f} {inproc['p50_ms']:8.1f} {inproc['p99_ms']:8.1f} {0:>6}")
print(f"{'(1) again, at the end':22} {'-':>3} {again['img_s']:7.2f} {again['p50_ms']:8.1f} {again['p99_ms']:8.1f} {0:>6}")
print(f"{'(1b) decoding each':22} {'-':>3} {decoding['img_s']:7.2f} {decoding['p50_ms']:8.1f} {decoding['p99_ms']:8.1f} {0:>6}")
for c in levels:
    for name, label in (("fastapi", "(2) FastAPI, 1 worker"), ("yard", "(3) yard serve"), ("onnx", "(4) yard serve, onnx")):
        r = load(f"{name}-{c}")
        print(f"{label:22} {c:3} {r['img_s']:7.2f} {r['p50_ms'] or 0:8.1f} {r['p99_ms'] or 0:8.1f} {r['errors']:6}")
top = max(levels)
y, f = load(f"yard-{top}"), load(f"fastapi-{top}")
print(f"sequential, at c={top}: yard/in-process img/s {y['img_s'] / inproc['img_s']:.2f}x against the first, {y['img_s'] / again['img_s']:.2f}x against the second, "
      f"yard/FastAPI img/s {y['img_s'] / f['img_s']:.2f}x, p99 {y['p99_ms'] / f['p99_ms']:.2f}x")
o = load(f"onnx-{top}")
print(f"sequential, at c={top}: onnx/torch img/s {o['img_s'] / y['img_s']:.2f}x, p99 {o['p99_ms'] / y['p99_ms']:.2f}x")

import statistics
mixed = load("interleaved")
rounds = mixed["rounds"]
print(f"(5) alternated at c={mixed['concurrency']}, {len(rounds)} rounds of {mixed['seconds']:g} s (img/s per round):")
print(f"{'round':>5} {'(1) in-process':>15} {'(2) FastAPI':>12} {'(3) yard':>9} {'(3)/(1)':>8} {'(3)/(2)':>8}")
for i, r in enumerate(rounds, 1):
    print(f"{i:5} {r['inprocess']:15.2f} {r['fastapi']:12.2f} {r['yard']:9.2f} {r['yard'] / r['inprocess']:8.3f} {r['yard'] / r['fastapi']:8.3f}")
def spread(values):
    return f"mean {statistics.mean(values):.3f} (median {statistics.median(values):.3f}, {min(values):.3f}-{max(values):.3f}, sd {statistics.stdev(values) if len(values) > 1 else 0:.3f})"
vs_local = [r["yard"] / r["inprocess"] for r in rounds]
vs_fastapi = [r["yard"] / r["fastapi"] for r in rounds]
p99 = mixed["yard"]["p99_ms"] / mixed["fastapi"]["p99_ms"]
print(f"yard/in-process img/s: {spread(vs_local)}; goal >= 0.9")
print(f"yard/FastAPI img/s:    {spread(vs_fastapi)}; goal >= 1.8")
print(f"p99 over all rounds: yard {mixed['yard']['p99_ms']:.0f} ms, FastAPI {mixed['fastapi']['p99_ms']:.0f} ms: {p99:.2f}x; goal <= 0.6; "
      f"errors: yard {mixed['yard']['errors']}, FastAPI {mixed['fastapi']['errors']}")
print(f"decoding each image costs {decoding['decode_cost']:.2f}x the time of a pass on a decoded one (passes alternated); "
      f"yard/in-process corrected for it: {statistics.mean(vs_local) * decoding['decode_cost']:.3f}")
PY
