#!/usr/bin/env bash
# Installs everything Trainyard needs on a fresh Debian machine and builds it:
# Debian packages, the engine's Python venv (once per requirements file, kept
# outside the clone), and `yard`: a release build installed as PREFIX/bin/yard
# (YARD_PREFIX, else /usr/local when writable, else ~/.local).
# Usage: scripts/setup.sh [--test]   (--test: the test servers and a debug
# build for the tests instead; nothing is installed)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${TRAINYARD_CACHE:-$HOME/.cache/trainyard}
mkdir -p "$CACHE"
log() { echo "[setup] $*" >&2; }

# 1. Debian packages: SQLite headers for GRDB, a font for plots; for the
#    tests, a real redis-server too (and openssl, for its TLS certificates),
#    Chromium with its WebDriver for the dashboard's browser tests, and
#    Prometheus' promtool, which checks and unit-tests deploy/prometheus.
missing=()
dpkg -s libsqlite3-dev >/dev/null 2>&1 || missing+=(libsqlite3-dev)
if [ "${1:-}" = "--test" ]; then
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
  command -v openssl >/dev/null 2>&1 || missing+=(openssl)
  [ -x /usr/bin/chromium ] || missing+=(chromium)
  [ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
  command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
fi
dpkg -s fonts-dejavu-core >/dev/null 2>&1 || missing+=(fonts-dejavu-core)
command -v curl >/dev/null 2>&1 || missing+=(curl)
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  log "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# 2. Python venvs outside the clone, one per hash of their requirements file,
#    so CI and later runs reuse them. A venv is only used once complete.
venv_for() {  # NAME REQUIREMENTS WHAT -> prints the venv's path
  local dir="$CACHE/$1-$(sha256sum "$2" | cut -c1-16)"
  if [ ! -f "$dir/.complete" ]; then
    log "building the $3 venv in $dir (a few minutes the first time)"
    rm -rf "$dir"
    python3 -m venv "$dir"
    "$dir/bin/pip" install -q --disable-pip-version-check -r "$2" >&2
    touch "$dir/.complete"
  fi
  echo "$dir"
}
VENV=$(venv_for venv "$ROOT/engine/requirements.txt" "engine (ultralytics + torch)")
if [ "${1:-}" = "--test" ]; then
  "$VENV/bin/python" -c "import pytest" 2>/dev/null ||
    "$VENV/bin/pip" install -q --disable-pip-version-check -r "$ROOT/engine/requirements-test.txt" >&2
  # The real servers the tests start (mlflow, moto), the official clients, and selenium.
  echo "YARD_SERVICES=$(venv_for services "$ROOT/Tests/services/requirements.txt" "test services (mlflow, moto)")"
fi

# 3. The Swift build (the cache outside the clone survives fresh clones).
#    Tests use a debug build; users and benchmarks get a release build,
#    installed with the engine's sources into PREFIX/bin and PREFIX/share.
if [ "${1:-}" = "--test" ]; then
  log "building yard (debug, for the tests; ~10 minutes on a fresh machine, seconds after)"
  (cd "$ROOT" && swift build --scratch-path "$CACHE/swiftpm" --product yard >"$CACHE/build.log" 2>&1) || {
    tail -40 "$CACHE/build.log" >&2; log "swift build failed; full log in $CACHE/build.log"; exit 1; }
  echo "YARD_BIN=$CACHE/swiftpm/debug/yard"
else
  log "building yard (release; ~9 minutes on a fresh machine, a minute after a change)"
  (cd "$ROOT" && swift build -c release --scratch-path "$CACHE/swiftpm" --product yard >"$CACHE/build.log" 2>&1) || {
    tail -40 "$CACHE/build.log" >&2; log "swift build failed; full log in $CACHE/build.log"; exit 1; }
  PREFIX=${YARD_PREFIX:-}
  if [ -z "$PREFIX" ]; then
    if [ -w /usr/local/bin ]; then PREFIX=/usr/local; else PREFIX=$HOME/.local; fi
  fi
  mkdir -p "$PREFIX/bin" "$PREFIX/share/trainyard"
  # The engine beside the binary (`yard` finds PREFIX/share/trainyard/engine), swapped in whole.
  rm -rf "$PREFIX/share/trainyard/engine.new"
  mkdir -p "$PREFIX/share/trainyard/engine.new"
  cp -R "$ROOT/engine/trainyard_engine" "$ROOT/engine/trainyard" "$ROOT/engine/requirements.txt" "$PREFIX/share/trainyard/engine.new/"
  find "$PREFIX/share/trainyard/engine.new" -name __pycache__ -prune -exec rm -rf {} +
  rm -rf "$PREFIX/share/trainyard/engine" && mv "$PREFIX/share/trainyard/engine.new" "$PREFIX/share/trainyard/engine"
  install -m 755 "$CACHE/swiftpm/release/yard" "$PREFIX/bin/.yard.new" && mv -f "$PREFIX/bin/.yard.new" "$PREFIX/bin/yard"
  log "installed $PREFIX/bin/yard ($("$PREFIX/bin/yard" --version))"
  # The Python client (`from trainyard import Client`) importable by the
  # engine's Python, e.g. as a notebook kernel: a .pth naming its folder.
  echo "$PREFIX/share/trainyard/engine" >"$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/trainyard-client.pth"
  log "the Python client: $VENV/bin/python -c 'from trainyard import Client'"
  case ":$(bash -lc 'echo "$PATH"' 2>/dev/null):" in
    *":$PREFIX/bin:"*) ;;
    *) log "$PREFIX/bin is not on PATH for new shells; add it: echo 'export PATH=\"$PREFIX/bin:\$PATH\"' >> ~/.profile" ;;
  esac
  echo "YARD_BIN=$PREFIX/bin/yard"
fi
echo "YARD_PYTHON=$VENV/bin/python"
