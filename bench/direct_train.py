"""Baseline for bench/train_overhead.sh: the same training called directly
with Ultralytics, no service. Prints JSON with its wall time and the time
from process start to the end of the first epoch."""

import argparse
import json
import os
import time

START = time.time()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--project", required=True)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--imgsz", type=int, default=64)
    args = p.parse_args()
    os.environ.setdefault("YOLO_OFFLINE", "1")
    from ultralytics import YOLO

    first = {}
    model = YOLO("yolov8n.yaml")
    model.add_callback("on_fit_epoch_end", lambda t: first.setdefault("t", time.time()))
    model.train(data=args.data, epochs=args.epochs, imgsz=args.imgsz, batch=8, workers=0, plots=False,
                project=args.project, name="direct", exist_ok=True, verbose=False)
    end = time.time()
    print(json.dumps({"wall": end - START, "first_epoch": first.get("t", end) - START}))


if __name__ == "__main__":
    main()
