#!/usr/bin/env bash
# Benchmark: `yard backup` against GNU tar of the same data dir, in the same
# run, page cache warm. The data dir is generated (SIZE_MB in all): a 64 MB
# SQLite store, checkpoints and weights (6 MB each, random: incompressible,
# as .pt files nearly are), a dataset of 40 KB images whose version tree
# hard-links its objects (as `datasets add` does), small run files.
# Two pairs, each the median of RUNS runs:
#   uncompressed: tar -cf (and tar -cf + sync FILE) vs yard backup --compression none, and
#                 tar -cf vs yard backup --compression none --no-sync (neither waits for the disk)
#   zstd:         tar --zstd -cf     vs yard backup --compression zstd
# yard does more than tar: it snapshots the store through SQLite's online
# backup and hashes every file (sha256) for the manifest.
# Prints MB/s and yard's speed as a fraction of tar's (goal >= 0.7).
# Then the longest pause a backup causes to a training's epoch events (goal
# <= 100 ms): yard-bench records an epoch every 20 ms into a real store in a
# copy of the data dir (hard links) as a worker's reports do, alone for 5 s,
# then while `yard backup --compression zstd` runs over it in its own process.
# Usage: bench/backup.sh [SIZE_MB=1500] [RUNS=3]   (YARD_BIN: a yard binary; default: scripts/setup.sh's release build)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SIZE_MB=${1:-1500}
RUNS=${2:-3}
if [ -z "${YARD_BIN:-}" ]; then eval "$("$ROOT/scripts/setup.sh")"; fi
command -v zstd >/dev/null || { echo "bench/backup.sh needs zstd on PATH" >&2; exit 1; }
CACHE=${TRAINYARD_CACHE:-$HOME/.cache/trainyard}
(cd "$ROOT" && swift build -c release --scratch-path "$CACHE/swiftpm" --product YardBench >"$CACHE/build-bench.log" 2>&1) || {
  tail -30 "$CACHE/build-bench.log" >&2; exit 1; }
WORK=$(mktemp -d /tmp/yard-bench-backup.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
DATA="$WORK/data"

python3 - "$DATA" "$SIZE_MB" <<'PY'
import hashlib, os, random, sqlite3, sys
root, total = sys.argv[1], int(sys.argv[2]) << 20
rnd = random.Random(0)
def write(rel, n):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    data = rnd.randbytes(n)
    with open(path, "wb") as f:
        f.write(data)
    return data
os.makedirs(root)
db = sqlite3.connect(os.path.join(root, "yard.sqlite"))
db.execute("PRAGMA journal_mode=WAL")
db.execute("CREATE TABLE epoch (job_id TEXT, epoch INTEGER, metrics TEXT)")
row = '{"metrics/mAP50(B)": 0.5, "train/box_loss": 1.25, "lr/pg0": 0.001}' * 4
db.executemany("INSERT INTO epoch VALUES (?, ?, ?)", ((f"job-{i // 100}", i % 100, row) for i in range(64 << 20 >> 8)))
db.commit(); db.close()
used = os.path.getsize(os.path.join(root, "yard.sqlite"))
# Weights and checkpoints: 40 % of the size.
job = 0
while used < total * 0.4:
    for name in ("runs/job-%d/weights/last.pt", "runs/job-%d/weights/best.pt", "artifacts/job-%d/weights/best.pt"):
        write(name % job, 6 << 20); used += 6 << 20
    write(f"runs/job-{job}/results.csv", 4000); used += 4000
    job += 1
# A dataset: objects, and a version tree of hard links to them.
n = 0
while used < total:
    data = write(f"datasets/tmp/{n}", 40 << 10)
    md5 = hashlib.md5(data).hexdigest()
    obj = os.path.join(root, "datasets/objects", md5[:2], md5[2:])
    os.makedirs(os.path.dirname(obj), exist_ok=True)
    os.rename(os.path.join(root, f"datasets/tmp/{n}"), obj)
    tree = os.path.join(root, "datasets/versions/v1.dir/tree/images", f"{n:06d}.jpg")
    os.makedirs(os.path.dirname(tree), exist_ok=True)
    os.link(obj, tree)
    used += 40 << 10
    n += 1
os.rmdir(os.path.join(root, "datasets/tmp"))
print(f"data dir: {used / 1e6:.0f} MB in {job * 4 + n + 1} files ({n} dataset objects, each also linked from the version tree)")
PY
BYTES=$(du -sb "$DATA" | cut -f1)

timed() {  # prints seconds of "$@"
  local t0; t0=$(date +%s.%N)
  "$@" >/dev/null 2>"$WORK/err" || { cat "$WORK/err" >&2; exit 1; }
  python3 -c "print($(date +%s.%N) - $t0)"
}
tar_plain() { rm -f "$WORK/t.tar"; timed tar -cf "$WORK/t.tar" -C "$DATA" .; }
tar_zstd() { rm -f "$WORK/t.tar.zst"; timed tar --zstd -cf "$WORK/t.tar.zst" -C "$DATA" .; }
tar_sync() { rm -f "$WORK/s.tar"; timed sh -c "tar -cf '$WORK/s.tar' -C '$DATA' . && sync '$WORK/s.tar'"; }  # durable, as yard's archive is (fsync before the rename)
yard_plain() { rm -f "$WORK/y.tar"; timed "$YARD_BIN" backup "$WORK/y.tar" --data-dir "$DATA" --compression none; }
yard_nosync() { rm -f "$WORK/n.tar"; timed "$YARD_BIN" backup "$WORK/n.tar" --data-dir "$DATA" --compression none --no-sync; }
yard_zstd() { rm -f "$WORK/y.tar.zst"; timed "$YARD_BIN" backup "$WORK/y.tar.zst" --data-dir "$DATA" --compression zstd; }

tar_plain >/dev/null; yard_plain >/dev/null  # warm the page cache
for i in $(seq 1 "$RUNS"); do
  # The runs that do not wait for the disk leave its writes to the next one: each is followed by a sync (not timed).
  tar_plain >>"$WORK/tp"; sync; tar_sync >>"$WORK/ts"; yard_plain >>"$WORK/yp"; yard_nosync >>"$WORK/yn"; sync
  tar_zstd >>"$WORK/tz"; sync; yard_zstd >>"$WORK/yz"
done
# The archive restores and checks (not timed).
"$YARD_BIN" restore "$WORK/y.tar.zst" --data-dir "$WORK/restored" --dry-run | tail -1
python3 - "$WORK" "$BYTES" "$(stat -c %s "$WORK/t.tar")" "$(stat -c %s "$WORK/y.tar")" <<'PY'
import statistics, sys
work, size, tar_size, yard_size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
med = lambda n: statistics.median(float(x) for x in open(f"{work}/{n}").read().split())
tp, ts, yp, yn, tz, yz = med("tp"), med("ts"), med("yp"), med("yn"), med("tz"), med("yz")
mb = size / 1e6
print(f"archive sizes (uncompressed): tar {tar_size / 1e6:.0f} MB, yard {yard_size / 1e6:.0f} MB")
print(f"tar -cf              : {tp:6.2f} s  {mb / tp:7.0f} MB/s")
print(f"tar -cf + sync FILE  : {ts:6.2f} s  {mb / ts:7.0f} MB/s   (durable on disk, as yard's archive is)")
print(f"yard backup (none)   : {yp:6.2f} s  {mb / yp:7.0f} MB/s   {tp / yp:.2f}x tar's speed (goal >= 0.7), {ts / yp:.2f}x tar + sync")
print(f"yard backup --no-sync: {yn:6.2f} s  {mb / yn:7.0f} MB/s   {tp / yn:.2f}x tar's speed (goal >= 0.7; neither waits for the disk)")
print(f"tar --zstd -cf       : {tz:6.2f} s  {mb / tz:7.0f} MB/s")
print(f"yard backup (zstd)   : {yz:6.2f} s  {mb / yz:7.0f} MB/s   {tz / yz:.2f}x tar's speed (goal >= 0.7)")
PY

# What tar and the runs above left in the page cache goes to the disk first,
# or the baseline measures that (tar's 1 GB, written back meanwhile, held
# an epoch 1.25 s here).
sync
PAUSE="$WORK/pause"
mkdir -p "$PAUSE"
cp -al "$DATA/runs" "$DATA/artifacts" "$DATA/datasets" "$PAUSE/"
"$CACHE/swiftpm/release/YardBench" backup-pause "$PAUSE" "$YARD_BIN"
