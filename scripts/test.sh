#!/usr/bin/env bash
# Installs everything (as scripts/setup.sh) and runs all tests: Swift unit,
# API and store tests, end-to-end tests that train real Ultralytics models
# on CPU through `yard up` against a real MLflow server, and the engine's
# Python tests. The MLflow and S3 (moto) servers are started here, once per
# run, on 127.0.0.1, and stopped when the run ends; Redis tests start
# redis-servers of their own (they restart, kill and freeze them).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${TRAINYARD_CACHE:-$HOME/.cache/trainyard}
eval "$("$ROOT/scripts/setup.sh" --test)"
export YARD_BIN YARD_PYTHON YARD_SERVICES
cd "$ROOT"

RUN=$(mktemp -d /tmp/yard-test.XXXXXX)
free_port() { "$YARD_SERVICES/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
MLFLOW_PORT=$(free_port)
setsid "$YARD_SERVICES/bin/mlflow" server --host 127.0.0.1 --port "$MLFLOW_PORT" --workers 1 \
  --backend-store-uri "sqlite:///$RUN/mlflow.db" --artifacts-destination "$RUN/mlflow-artifacts" --serve-artifacts \
  >"$RUN/mlflow.log" 2>&1 &
MLFLOW_PID=$!
S3_PORT=$(free_port)
"$YARD_SERVICES/bin/moto_server" -H 127.0.0.1 -p "$S3_PORT" >"$RUN/moto.log" 2>&1 &
S3_PID=$!
# The tests' own temp files (and the redis-servers, tmpfs mounts and helper
# processes they start) live under $RUN/tmp, so a test binary that crashes
# before its fixtures clean up leaves nothing running after the run.
mkdir -p "$RUN/tmp"
reap() {
  for proc in /proc/[0-9]*; do
    local pid=${proc#/proc/} cwd
    [ "$pid" = "$$" ] && continue
    cwd=$(readlink "$proc/cwd" 2>/dev/null) || continue
    if [[ "$cwd" == "$RUN/tmp"* ]] || tr '\0' ' ' <"$proc/cmdline" 2>/dev/null | grep -qF "$RUN/tmp"; then
      kill -CONT "$pid" 2>/dev/null; kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  grep -F " $RUN/tmp/" /proc/mounts | cut -d' ' -f2 | xargs -r -n1 umount 2>/dev/null || true
}
cleanup() {
  kill -TERM -- -"$MLFLOW_PID" 2>/dev/null || true; kill -TERM "$S3_PID" 2>/dev/null || true
  wait "$MLFLOW_PID" "$S3_PID" 2>/dev/null || true; reap; rm -rf "$RUN"
}
trap cleanup EXIT
export YARD_TEST_MLFLOW_URI="http://127.0.0.1:$MLFLOW_PORT"
export YARD_TEST_S3_ENDPOINT="http://127.0.0.1:$S3_PORT"

echo "== engine (pytest)"
(cd engine && "$YARD_PYTHON" -m pytest -q -p no:cacheprovider tests)

echo "== swift build --build-tests"
swift build --build-tests --scratch-path "$CACHE/swiftpm" >"$CACHE/build-tests.log" 2>&1 || {
  grep -E "error:" -A3 "$CACHE/build-tests.log" | head -80 >&2; echo "swift build --build-tests failed; log in $CACHE/build-tests.log" >&2; exit 1; }

for _ in $(seq 1 120); do
  curl -fsS "$YARD_TEST_MLFLOW_URI/health" >/dev/null 2>&1 && break
  kill -0 "$MLFLOW_PID" 2>/dev/null || { cat "$RUN/mlflow.log" >&2; echo "mlflow server did not start" >&2; exit 1; }
  sleep 0.5
done
curl -fsS "$YARD_TEST_MLFLOW_URI/health" >/dev/null || { tail -20 "$RUN/mlflow.log" >&2; echo "mlflow server not healthy" >&2; exit 1; }
for _ in $(seq 1 60); do curl -fsS "$YARD_TEST_S3_ENDPOINT/" >/dev/null 2>&1 && break; sleep 0.5; done

# The end-to-end suites run on their own: they hold timing promises under
# load (/health within 1 s while 50 clients stream a real training) that the
# unit suites' own servers (a redis-server per test) would otherwise share
# the two cores with.
export TMPDIR="$RUN/tmp"
# One test at a time (about 100 s here): run together, the suites that load
# the machine on purpose (50 SSE readers, 8 writers, kill -9 children, a
# redis-server each) pushed the timing promises of others past their bounds.
echo "== swift test (unit, store, queue, redis, server)"
swift test --skip-build --scratch-path "$CACHE/swiftpm" --skip YardEndToEndTests --no-parallel
echo "== swift test (end to end)"
swift test --skip-build --scratch-path "$CACHE/swiftpm" --filter YardEndToEndTests
# The dashboard in headless Chromium against a live `yard up`; screenshots
# of every page are kept in $YARD_SHOTS after the run.
echo "== browser (selenium, headless chromium)"
YARD_SHOTS=${YARD_SHOTS:-$CACHE/dashboard-shots} "$YARD_SERVICES/bin/python" -m unittest discover -s "$ROOT/Tests/browser" -v
# deploy/'s files (compose, Kubernetes, systemd units, Dockerfiles) checked
# against the built yard's flags, and the worker's GPU-picking entrypoint
# run. The release archive's test (its yard in a bare Debian root, install.sh)
# runs only when dist/ holds this version's archive or with
# YARD_TEST_PACKAGE=1, which builds it first (10+ minutes).
echo "== deploy (unittest)"
"$YARD_SERVICES/bin/python" -m unittest discover -s "$ROOT/Tests/deploy" -v
