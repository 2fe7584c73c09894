#!/usr/bin/env bash
# Installs everything (as scripts/setup.sh) and runs all tests: Swift unit,
# API and store tests, end-to-end tests that train real Ultralytics models
# on CPU through `yard up`, and the engine's Python tests.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${TRAINYARD_CACHE:-$HOME/.cache/trainyard}
eval "$("$ROOT/scripts/setup.sh" --test)"
export YARD_BIN YARD_PYTHON
cd "$ROOT"

echo "== engine (pytest)"
(cd engine && "$YARD_PYTHON" -m pytest -q -p no:cacheprovider tests)

echo "== swift test"
swift build --build-tests --scratch-path "$CACHE/swiftpm" >"$CACHE/build-tests.log" 2>&1 || {
  grep -E "error:" -A3 "$CACHE/build-tests.log" | head -80 >&2; echo "swift build --build-tests failed; log in $CACHE/build-tests.log" >&2; exit 1; }
swift test --skip-build --scratch-path "$CACHE/swiftpm"
