#!/usr/bin/env bash
# Builds the release archive dist/trainyard-VERSION-linux-x86_64.tar.gz, which
# installs on a Linux x86_64 machine without Swift (glibc 2.35+, GCC 12 libstdc++, libsqlite3):
#   bin/yard                        swift build -c release --static-swift-stdlib (product yard):
#                                   Swift's runtime and Foundation are inside it
#   share/trainyard/engine          the engine's Python sources and requirements.txt,
#                                   where an installed yard looks (BIN/../share/trainyard/engine)
#   share/trainyard/systemd         deploy/systemd's units
#   install.sh                      makes the engine's venv (or takes --python), installs under --prefix
# The build's scratch is outside the clone: $YARD_PACKAGE_SCRATCH, else
# $TRAINYARD_CACHE/swiftpm-static (~10 minutes from empty on two cores, about a minute after a change).
# Usage: scripts/package.sh [--out DIR]   (default DIR: dist/ in the clone)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${TRAINYARD_CACHE:-$HOME/.cache/trainyard}
SCRATCH=${YARD_PACKAGE_SCRATCH:-$CACHE/swiftpm-static}
OUT=$ROOT/dist
log() { echo "[package] $*" >&2; }
fail() { echo "package.sh: $*" >&2; exit 1; }
while [ $# -gt 0 ]; do
  case "$1" in
    --out) [ $# -ge 2 ] || fail "--out needs a folder"; OUT=$2; shift 2 ;;
    *) fail "unknown option $1 (usage: scripts/package.sh [--out DIR])" ;;
  esac
done
case "$SCRATCH" in "$ROOT"|"$ROOT"/*) fail "YARD_PACKAGE_SCRATCH must be outside the clone ($SCRATCH)" ;; esac
[ "$(uname -s)-$(uname -m)" = Linux-x86_64 ] || fail "builds the linux-x86_64 archive on Linux x86_64 only (this is $(uname -s)-$(uname -m))"

VERSION=$(sed -n 's/.*static let version = "\([^"]*\)".*/\1/p' "$ROOT/Sources/YardDomain/Trainyard.swift")
[ -n "$VERSION" ] || fail "cannot read the version from Sources/YardDomain/Trainyard.swift"
NAME=trainyard-$VERSION-linux-x86_64

log "building yard $VERSION (release, static Swift stdlib) in $SCRATCH"
mkdir -p "$SCRATCH"
started=$(date +%s)
(cd "$ROOT" && swift build -c release --static-swift-stdlib --scratch-path "$SCRATCH" --product yard >"$SCRATCH/package-build.log" 2>&1) || {
  grep -E "error:" -A3 "$SCRATCH/package-build.log" | head -40 >&2; fail "swift build failed; log in $SCRATCH/package-build.log"; }
BIN=$(cd "$ROOT" && swift build -c release --static-swift-stdlib --scratch-path "$SCRATCH" --product yard --show-bin-path)/yard
log "built in $(( $(date +%s) - started )) s: $BIN"

# What makes it installable without a toolchain, checked before it is packed.
if ldd "$BIN" | grep -q 'libswift\|libFoundation\|libdispatch\|libBlocksRuntime'; then
  ldd "$BIN" >&2; fail "$BIN links Swift's shared runtime (above); it must be built with --static-swift-stdlib"
fi
got=$("$BIN" --version)
[ "$got" = "trainyard $VERSION" ] || fail "$BIN --version says \"$got\", not \"trainyard $VERSION\""

STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
DIR=$STAGE/$NAME
mkdir -p "$DIR/bin" "$DIR/share/trainyard/engine" "$DIR/share/trainyard/systemd"
# Debug sections out (most of the size); the symbol table stays.
strip --strip-debug -o "$DIR/bin/yard" "$BIN"
chmod 755 "$DIR/bin/yard"
cp -R "$ROOT/engine/trainyard_engine" "$ROOT/engine/trainyard" "$ROOT/engine/requirements.txt" "$DIR/share/trainyard/engine/"
find "$DIR/share/trainyard/engine" \( -name __pycache__ -o -name '*.pyc' \) -prune -exec rm -rf {} +
cp "$ROOT"/deploy/systemd/*.service "$DIR/share/trainyard/systemd/"
install -m 755 "$ROOT/deploy/install.sh" "$DIR/install.sh"

# Same sources, same archive: owners, order and times fixed (the commit's time).
mkdir -p "$OUT"
epoch=$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || date +%s)
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$epoch" -C "$STAGE" -cf - "$NAME" | gzip -n -9 >"$OUT/$NAME.tar.gz.tmp"
mv -f "$OUT/$NAME.tar.gz.tmp" "$OUT/$NAME.tar.gz"
(cd "$OUT" && sha256sum "$NAME.tar.gz" >"$NAME.tar.gz.sha256")
log "wrote $OUT/$NAME.tar.gz ($(du -h "$OUT/$NAME.tar.gz" | cut -f1); yard $(du -h "$DIR/bin/yard" | cut -f1) unpacked)"
echo "$OUT/$NAME.tar.gz"
