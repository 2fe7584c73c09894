#!/usr/bin/env bash
# The main job: install everything, start `yard up` on the embedded default,
# train a YOLO model on a generated demo dataset with a live progress bar,
# and print where the weights and metrics are.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
eval "$("$ROOT/scripts/setup.sh")"
PORT=${YARD_PORT:-8787}
DATA="$ROOT/.yard"
export YARD_SERVER="http://127.0.0.1:$PORT"

if curl -fsS "$YARD_SERVER/health" >/dev/null 2>&1; then
  echo "error: something already serves $YARD_SERVER; stop it or set YARD_PORT to a free port" >&2
  exit 1
fi
# (An older quick start's harder dataset is replaced.)
grep -qs triangle "$DATA/demo/data.yaml" || { rm -rf "$DATA/demo"; "$YARD_BIN" datasets demo "$DATA/demo" --python "$YARD_PYTHON"; }

"$YARD_BIN" up --port "$PORT" --data-dir "$DATA" --python "$YARD_PYTHON" >"$DATA/up.log" 2>&1 &
UP=$!
trap 'kill -TERM $UP 2>/dev/null; wait $UP 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  curl -fsS "$YARD_SERVER/health" >/dev/null 2>&1 && break
  kill -0 $UP 2>/dev/null || { cat "$DATA/up.log" >&2; exit 1; }
  sleep 0.2
done

"$YARD_BIN" submit "$ROOT/examples/quickstart.yaml" --wait | tee "$DATA/quickstart.out"
ID=$(sed -n 's/^submitted //p' "$DATA/quickstart.out" | head -1)
YARD=yard; [ "$(command -v yard)" = "$YARD_BIN" ] || YARD=$YARD_BIN
echo
echo "Everything is in $DATA (database, runs, weights). See what the model learned on the validation images:"
echo "  $YARD predict $DATA/runs/$ID/weights/best.pt $DATA/demo/images/val"
