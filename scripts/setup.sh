#!/usr/bin/env bash
# Installs everything Trainyard needs on a fresh Debian machine and builds it:
# Debian packages, the engine's Python venv (once per requirements file, kept
# outside the clone), and the `yard` binary (build cache outside the clone).
# Usage: scripts/setup.sh [--test]   (--test also installs test tools)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${TRAINYARD_CACHE:-$HOME/.cache/trainyard}
mkdir -p "$CACHE"
log() { echo "[setup] $*" >&2; }

# 1. Debian packages: SQLite headers for GRDB, a font for plots.
missing=()
dpkg -s libsqlite3-dev >/dev/null 2>&1 || missing+=(libsqlite3-dev)
dpkg -s fonts-dejavu-core >/dev/null 2>&1 || missing+=(fonts-dejavu-core)
command -v curl >/dev/null 2>&1 || missing+=(curl)
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  log "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq && $SUDO DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
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
  # The real servers the tests start (mlflow, moto) and the official clients.
  echo "YARD_SERVICES=$(venv_for services "$ROOT/Tests/services/requirements.txt" "test services (mlflow, moto)")"
fi

# 3. The Swift build (the cache outside the clone survives fresh clones).
log "building yard (swift build; ~10 minutes on a fresh machine, seconds after)"
(cd "$ROOT" && swift build --scratch-path "$CACHE/swiftpm" --product yard >"$CACHE/build.log" 2>&1) || {
  tail -40 "$CACHE/build.log" >&2; log "swift build failed; full log in $CACHE/build.log"; exit 1; }
echo "YARD_BIN=$CACHE/swiftpm/debug/yard"
echo "YARD_PYTHON=$VENV/bin/python"
