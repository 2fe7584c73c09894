"""`export`: a registered version's weights in another format (ONNX).

The server runs `python -m trainyard_engine export --model W.pt --format
onnx --out OUT` and keeps OUT by its content hash beside the weights. The
file is written under a temporary name in OUT's folder and renamed: OUT is
whole or absent. Its last line on stdout is JSON: {"path", "size", "ms",
"imgsz", "dynamic"}; a failure is one line on stderr and exit code 1."""

import json
import os
import shutil
import sys
import tempfile
import time

FORMATS = {"onnx": ".onnx"}


def export(model_path, fmt, out, imgsz=None, stdout=None):
    if fmt not in FORMATS:
        print(f"format {fmt!r} is not supported; use one of {', '.join(sorted(FORMATS))}", file=sys.stderr)
        return 1
    started = time.time()
    out = os.path.abspath(out)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    from ultralytics import YOLO

    # Ultralytics writes the export beside the weights: a private copy in a
    # scratch folder on OUT's file system keeps the cache clean and the rename atomic.
    with tempfile.TemporaryDirectory(prefix=".export-", dir=os.path.dirname(out)) as scratch:
        weights = os.path.join(scratch, "model.pt")
        shutil.copyfile(model_path, weights)
        model = YOLO(weights)
        size = imgsz or model.overrides.get("imgsz") or 640
        # Dynamic axes: any batch size and image shape, letterboxed like the
        # PyTorch model (so both runtimes give the same boxes).
        written = model.export(format=fmt, imgsz=size, dynamic=True, simplify=True, device="cpu", verbose=False)
        if not written or not os.path.isfile(written):
            print("the export wrote no file", file=sys.stderr)
            return 1
        with open(written, "rb") as f:
            os.fsync(f.fileno())
        os.replace(written, out)
    print(json.dumps({"path": out, "size": os.path.getsize(out), "ms": round((time.time() - started) * 1000, 1),
                      "imgsz": size, "dynamic": True}), file=stdout or sys.stdout, flush=True)
    return 0
