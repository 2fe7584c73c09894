#!/usr/bin/env bash
# Benchmark: reading a dataset's files three ways, on the same generated
# YOLO dataset (IMAGES small JPEGs with a label file each), page cache warm:
#   1. Ultralytics' own label scan (YOLODataset -> cache_labels, its thread pool),
#   2. md5sum over every file (find | xargs md5sum),
#   3. `yard datasets validate` (release build): md5 of every file, image
#      headers, every label row, duplicates, counts, on all cores.
# Prints files/s and the ratios (goals: yard >= 10x Ultralytics, >= 0.5x md5sum),
# medians of RUNS runs each.
# Usage: bench/dataset_scan.sh [IMAGES=20000] [RUNS=3]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
IMAGES=${1:-20000}
RUNS=${2:-3}
eval "$("$ROOT/scripts/setup.sh")"
WORK=$(mktemp -d /tmp/yard-bench-scan.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
export YOLO_CONFIG_DIR="$WORK/ultralytics" YOLO_OFFLINE=1

"$YARD_PYTHON" - "$WORK/data" "$IMAGES" <<'PY'
import sys
from pathlib import Path
import numpy as np
from PIL import Image
root, n = Path(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(0)
for split, count in (("train", n - n // 10), ("val", n // 10)):
    (root / "images" / split).mkdir(parents=True)
    (root / "labels" / split).mkdir(parents=True)
    for i in range(count):
        Image.fromarray(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)).save(root / "images" / split / f"{i:06d}.jpg", quality=80)
        rows = [f"{rng.integers(0, 3)} {rng.uniform(0.2, 0.8):.6f} {rng.uniform(0.2, 0.8):.6f} {rng.uniform(0.05, 0.3):.6f} {rng.uniform(0.05, 0.3):.6f}"
                for _ in range(int(rng.integers(1, 5)))]
        (root / "labels" / split / f"{i:06d}.txt").write_text("\n".join(rows) + "\n")
(root / "data.yaml").write_text(f"path: {root}\ntrain: images/train\nval: images/val\nnames: [a, b, c]\n")
PY
FILES=$(find "$WORK/data" -type f | wc -l)
echo "dataset: $IMAGES images, $FILES files, $(du -sh "$WORK/data" | cut -f1)"

ultralytics_scan() {
  find "$WORK/data/labels" -name '*.cache' -delete
  "$YARD_PYTHON" - "$WORK/data" 2>/dev/null <<'PY' | sed -n 's/^SECONDS //p'
import sys, time
from ultralytics.data.dataset import YOLODataset
root = sys.argv[1]
t = time.perf_counter()
for split in ("train", "val"):
    YOLODataset(img_path=f"{root}/images/{split}", data={"names": {0: "a", 1: "b", 2: "c"}, "channels": 3}, task="detect", imgsz=128, augment=False)
print("SECONDS", time.perf_counter() - t)
PY
}
md5_scan() {
  local t0; t0=$(date +%s.%N)
  find "$WORK/data" -type f -not -name '*.cache' -print0 | xargs -0 md5sum >/dev/null
  "$YARD_PYTHON" -c "print($(date +%s.%N) - $t0)"
}
yard_scan() {
  local t0; t0=$(date +%s.%N)
  "$YARD_BIN" datasets validate "$WORK/data" --json >"$WORK/report.json"
  "$YARD_PYTHON" -c "print($(date +%s.%N) - $t0)"
}
# Warm the page cache and Python's imports once.
ultralytics_scan >/dev/null; md5_scan >/dev/null; yard_scan >/dev/null
for i in $(seq 1 "$RUNS"); do
  ultralytics_scan >>"$WORK/u.txt"
  md5_scan >>"$WORK/m.txt"
  yard_scan >>"$WORK/y.txt"
done
"$YARD_PYTHON" - "$WORK" "$FILES" "$IMAGES" <<'PY'
import json, statistics, sys
work, files, images = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
med = lambda name: statistics.median(float(x) for x in open(f"{work}/{name}.txt").read().split())
u, m, y = med("u"), med("m"), med("y")
report = json.load(open(f"{work}/report.json"))
assert report["files"] >= files - 2, report["files"]  # the yaml and every image and label were read
print(f"Ultralytics label scan : {u:6.2f} s  {files / u:9.0f} files/s ({images / u:.0f} images/s)")
print(f"md5sum                 : {m:6.2f} s  {files / m:9.0f} files/s")
print(f"yard datasets validate : {y:6.2f} s  {files / y:9.0f} files/s  ({sum(p['severity'] == 'error' for p in report['problems'])} errors, {sum(p['severity'] == 'warning' for p in report['problems'])} warnings)")
print(f"yard vs Ultralytics: {u / y:.1f}x faster (goal >= 10)")
print(f"yard vs md5sum     : {m / y:.2f}x its speed (goal >= 0.5)")
PY
