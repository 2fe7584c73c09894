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

# 2. The engine's venv, keyed by its requirements file.
HASH=$(sha256sum "$ROOT/engine/requirements.txt" | cut -c1-16)
VENV="$CACHE/venv-$HASH"
if [ ! -f "$VENV/.complete" ]; then
  log "building the engine venv in $VENV (ultralytics + torch, a few minutes the first time)"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$ROOT/engine/requirements.txt"
  touch "$VENV/.complete"
fi
if [ "${1:-}" = "--test" ] && ! "$VENV/bin/python" -c "import pytest" 2>/dev/null; then
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$ROOT/engine/requirements-test.txt"
fi

# 2b. For tests: the real servers (mlflow, moto) and official clients, in a venv of their own.
if [ "${1:-}" = "--test" ]; then
  SHASH=$(sha256sum "$ROOT/Tests/services/requirements.txt" | cut -c1-16)
  SERVICES="$CACHE/services-$SHASH"
  if [ ! -f "$SERVICES/.complete" ]; then
    log "building the test services venv in $SERVICES (mlflow, moto)"
    rm -rf "$SERVICES"
    python3 -m venv "$SERVICES"
    "$SERVICES/bin/pip" install -q --disable-pip-version-check -r "$ROOT/Tests/services/requirements.txt"
    touch "$SERVICES/.complete"
  fi
  echo "YARD_SERVICES=$SERVICES"
fi

# 3. The Swift build (the cache outside the clone survives fresh clones).
log "building yard (swift build; ~10 minutes on a fresh machine, seconds after)"
(cd "$ROOT" && swift build --scratch-path "$CACHE/swiftpm" --product yard >"$CACHE/build.log" 2>&1) || {
  tail -40 "$CACHE/build.log" >&2; log "swift build failed; full log in $CACHE/build.log"; exit 1; }
echo "YARD_BIN=$CACHE/swiftpm/debug/yard"
echo "YARD_PYTHON=$VENV/bin/python"
