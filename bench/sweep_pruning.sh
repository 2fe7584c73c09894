#!/usr/bin/env bash
# Benchmark: what pruning saves. One generated dataset, the same sampler and
# seed, the same n_trials: a study without pruning and one with Optuna's
# each pruner named, all run by `yard up` (release build, 2 local workers)
# with real Ultralytics trials. Prints each study's total epochs trained and
# best value, and the ratios of each pruned study to the unpruned one. Goal:
# a pruned study reaches the unpruned best (within run-to-run noise) with at
# most 40% of its epochs.
# Each pruner may carry Optuna's settings after commas, e.g.
# "SuccessiveHalvingPruner,reduction_factor=3,bootstrap_count=1".
# Usage: bench/sweep_pruning.sh [TRIALS=16] [EPOCHS=10] [PRUNERS="SuccessiveHalvingPruner MedianPruner"] [GRACE=2]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${TRAINYARD_CACHE:-$HOME/.cache/trainyard}
TRIALS=${1:-16}
EPOCHS=${2:-10}
PRUNERS=${3:-SuccessiveHalvingPruner MedianPruner}
GRACE=${4:-2}
(cd "$ROOT" && swift build -c release --scratch-path "$CACHE/swiftpm" --product yard >"$CACHE/build-bench.log" 2>&1) || {
  tail -30 "$CACHE/build-bench.log" >&2; exit 1; }
YARD="$CACHE/swiftpm/release/yard"
DIR=$(mktemp -d /tmp/yard-bench-sweep.XXXXXX)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$YARD" datasets demo "$DIR/demo" --train 64 --val 16 >/dev/null
"$YARD" up --port "$PORT" --data-dir "$DIR/data" --workers 2 >"$DIR/up.log" 2>&1 &
UP=$!
trap 'kill $UP 2>/dev/null; wait $UP 2>/dev/null; rm -rf "$DIR"' EXIT
for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break; sleep 0.2; done
SERVER="http://127.0.0.1:$PORT"

run() {  # NAME PRUNER[,KEY=VALUE...] -> prints "epochs best seconds states"
  local pruner=${2%%,*} extra="" setting
  if [ "$pruner" != "$2" ]; then
    for setting in $(tr ',' ' ' <<<"${2#*,}"); do extra="$extra  ${setting%%=*}: ${setting#*=}"$'\n'; done
  fi
  cat >"$DIR/$1.yaml" <<YAML
model: yolov8n.yaml
train: {data: $DIR/demo/data.yaml, epochs: $EPOCHS, imgsz: 128, batch: 16, workers: 0, plots: false, optimizer: SGD, warmup_epochs: 0}
sweeper:
  study_name: $1
  n_trials: $TRIALS
  max_concurrent: 2
  sampler: TPESampler
  seed: 7
  pruner: $pruner
  grace_period: $GRACE
${extra}  direction: minimize
  fitness: train/box_loss
  search_space: {train: {lr0: [loguniform, 1.0e-4, 0.5], momentum: [uniform, 0.6, 0.98]}}
YAML
  local start id
  start=$(date +%s.%N)
  id=$("$YARD" sweep "$DIR/$1.yaml" --json --server "$SERVER" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  while [ "$(curl -fsS "$SERVER/api/sweeps/$id" | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])')" != finished ]; do sleep 1; done
  local seconds
  seconds=$(python3 -c "import time; print(round(time.time() - $start, 1))")
  curl -fsS "$SERVER/api/sweeps/$id" | python3 -c "
import json, sys
s = json.load(sys.stdin)
epochs = sum(t.get('epoch', 0) for t in s['trial_list'])
states = {}
for t in s['trial_list']: states[t['state']] = states.get(t['state'], 0) + 1
print(epochs, s['best']['value'], $seconds, json.dumps(states).replace(' ', ''))"
}

read -r E0 B0 S0 X0 < <(run unpruned none)
printf '%-24s %4s epochs, best train/box_loss %s, %s s, trials %s\n' "none" "$E0" "$B0" "$S0" "$X0"
N=0
for PRUNER in $PRUNERS; do
  N=$((N + 1))  # each study its own name (the unpruned one is "unpruned")
  read -r E1 B1 S1 X1 < <(run "p$N" "$PRUNER")
  printf '%-24s %4s epochs, best train/box_loss %s, %s s, trials %s\n' "$PRUNER" "$E1" "$B1" "$S1" "$X1"
  python3 - "$PRUNER" "$E0" "$B0" "$S0" "$E1" "$B1" "$S1" <<'PY'
import sys
name = sys.argv[1]
e0, b0, s0, e1, b1, s1 = map(float, sys.argv[2:])
print(f"  {name} / none: epochs {e1 / e0:.2f}x, wall time {s1 / s0:.2f}x, best {b1 / b0:.3f}x (minimize: <= 1 is as good or better)")
PY
done
echo "goal: epochs <= 0.40x with the best within run-to-run noise"
