#!/bin/sh
# Installs this Trainyard release (run from the unpacked archive that
# scripts/package.sh makes; it needs no Swift):
#   PREFIX/bin/yard                      the static-stdlib binary
#   PREFIX/share/trainyard/engine        the engine (Python sources, requirements.txt)
#   PREFIX/share/trainyard/venv          the engine's venv, made here with pip, unless --python
#   PREFIX/share/trainyard/python        runs the venv's Python or --python's; an installed
#                                        yard uses it when neither --python nor YARD_PYTHON is given
# Usage: install.sh [--prefix DIR] [--python PATH] [--no-check]
#   --prefix DIR   where to install (default /usr/local when writable, else ~/.local)
#   --python PATH  use this Python (e.g. a GPU server's CUDA environment with
#                  ultralytics installed) instead of making a venv
#   --no-check     skip `yard doctor` at the end (it imports torch: seconds)
# pip honours PIP_INDEX_URL / PIP_EXTRA_INDEX_URL (e.g. torch's CPU wheels).
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
PREFIX=""
PYTHON=""
CHECK=1
fail() { echo "install.sh: $*" >&2; exit 1; }
log() { echo "[install] $*" >&2; }

while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) [ $# -ge 2 ] && [ -n "$2" ] || fail "--prefix needs a folder"; PREFIX=$2; shift 2 ;;
    --prefix=*) PREFIX=${1#--prefix=}; [ -n "$PREFIX" ] || fail "--prefix needs a folder"; shift ;;
    --python) [ $# -ge 2 ] && [ -n "$2" ] || fail "--python needs the path of a Python interpreter"; PYTHON=$2; shift 2 ;;
    --python=*) PYTHON=${1#--python=}; [ -n "$PYTHON" ] || fail "--python needs the path of a Python interpreter"; shift ;;
    --no-check) CHECK=0; shift ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) fail "unknown option $1 (see --help)" ;;
  esac
done

[ -x "$HERE/bin/yard" ] && [ -f "$HERE/share/trainyard/engine/trainyard_engine/__main__.py" ] ||
  fail "run me from the unpacked release archive (bin/yard and share/trainyard/engine beside me)"
[ "$(uname -m)" = x86_64 ] || fail "this archive is for x86_64 Linux, this machine is $(uname -m)"
# The binary carries Swift's runtime; it needs glibc, libstdc++ and the system's SQLite.
if ! version=$("$HERE/bin/yard" --version 2>&1); then
  fail "bin/yard does not run here ($(echo "$version" | tail -1)); it needs glibc 2.35 or newer, the libstdc++ of GCC 12 or newer and libsqlite3 (Debian/Ubuntu: apt-get install libsqlite3-0), and /proc mounted"
fi

if [ -z "$PREFIX" ]; then
  if [ -w /usr/local/bin ]; then PREFIX=/usr/local; else PREFIX=$HOME/.local; fi
fi
case "$PREFIX" in /*) ;; *) PREFIX=$(pwd)/$PREFIX ;; esac
case "$PREFIX" in *"'"*|*'
'*) fail "--prefix: a folder without quotes or newlines, please" ;; esac
SHARE=$PREFIX/share/trainyard

# The engine's Python (checked before anything is written).
if [ -n "$PYTHON" ]; then
  case "$PYTHON" in /*) ;; *) PYTHON=$(command -v "$PYTHON" 2>/dev/null || echo "$PYTHON") ;; esac
  case "$PYTHON" in *"'"*|*'
'*) fail "--python: a path without quotes or newlines, please" ;; esac
  [ -f "$PYTHON" ] && [ -x "$PYTHON" ] || fail "--python: $PYTHON is not an executable file"
  [ "$("$PYTHON" -c 'import sys; print(sys.version_info >= (3, 11))' 2>/dev/null)" = True ] ||
    fail "--python: $PYTHON is not a Python 3.11 or newer"
  if ! why=$("$PYTHON" -c 'import ultralytics, torch' 2>&1); then
    fail "--python: $PYTHON cannot import ultralytics and torch ($(echo "$why" | tail -1)); pip install -r $HERE/share/trainyard/engine/requirements.txt into it, or leave --python out to get a venv"
  fi
  TARGET=$PYTHON
  mkdir -p "$PREFIX/bin" "$SHARE" || fail "--prefix: cannot create $PREFIX/bin and $SHARE"
else
  BASE=$(command -v python3 2>/dev/null) || fail "no python3 on PATH: install Python 3.11+ with its venv module (Debian: apt-get install python3-venv), or give --python"
  "$BASE" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
    fail "$BASE is Python $("$BASE" -c 'import sys; print("%d.%d" % sys.version_info[:2])'); the engine needs 3.11 or newer (or give --python)"
  mkdir -p "$PREFIX/bin" "$SHARE" || fail "--prefix: cannot create $PREFIX/bin and $SHARE"
  REQ=$HERE/share/trainyard/engine/requirements.txt
  STAMP=$(sha256sum "$REQ" | cut -c1-16)
  if [ -f "$SHARE/venv/.requirements-$STAMP" ]; then
    log "the engine's venv is up to date ($SHARE/venv)"
  else
    log "making the engine's venv in $SHARE/venv (ultralytics, torch: a few minutes)"
    rm -rf "$SHARE/venv.new"
    "$BASE" -m venv "$SHARE/venv.new" || fail "$BASE -m venv failed; install its venv module (Debian: apt-get install python3-venv)"
    "$SHARE/venv.new/bin/pip" install -q --disable-pip-version-check -r "$REQ" ||
      { rm -rf "$SHARE/venv.new"; fail "pip install -r requirements.txt failed (above); nothing was changed"; }
    touch "$SHARE/venv.new/.requirements-$STAMP"
    # A venv's scripts name its folder: it is made where it stays, then swapped in whole.
    rm -rf "$SHARE/venv.old"
    [ -d "$SHARE/venv" ] && mv "$SHARE/venv" "$SHARE/venv.old"
    mv "$SHARE/venv.new" "$SHARE/venv" && rm -rf "$SHARE/venv.old"
  fi
  TARGET=$SHARE/venv/bin/python
fi

# The engine, swapped in whole (as scripts/setup.sh does).
rm -rf "$SHARE/engine.new"
cp -R "$HERE/share/trainyard/engine" "$SHARE/engine.new"
rm -rf "$SHARE/engine" && mv "$SHARE/engine.new" "$SHARE/engine"
if [ -z "$PYTHON" ]; then
  # The Python client (`from trainyard import Client`) in the venv.
  echo "$SHARE/engine" >"$("$TARGET" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/trainyard-client.pth"
fi

printf "#!/bin/sh\n# The engine's Python, chosen by install.sh.\nexec '%s' \"\$@\"\n" "$TARGET" >"$SHARE/python.new"
chmod 755 "$SHARE/python.new" && mv -f "$SHARE/python.new" "$SHARE/python"

cp "$HERE/bin/yard" "$PREFIX/bin/.yard.new" && chmod 755 "$PREFIX/bin/.yard.new" && mv -f "$PREFIX/bin/.yard.new" "$PREFIX/bin/yard"
log "installed $PREFIX/bin/yard ($version), the engine's Python: $TARGET"

if [ "$CHECK" = 1 ]; then
  CHECKDIR=$(mktemp -d)
  if ! env -u YARD_PYTHON -u YARD_ENGINE_DIR "$PREFIX/bin/yard" doctor --data-dir "$CHECKDIR" >&2; then
    rm -rf "$CHECKDIR"
    fail "yard doctor found problems (above); the files are installed"
  fi
  rm -rf "$CHECKDIR"
fi
case ":$PATH:" in
  *":$PREFIX/bin:"*) ;;
  *) log "$PREFIX/bin is not on PATH; add it: export PATH=\"$PREFIX/bin:\$PATH\"" ;;
esac
