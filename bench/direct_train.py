"""Baseline for bench/train_overhead.sh: the same training called directly
with Ultralytics, no service. Prints JSON with the times (epoch seconds) of
its stages: launched (by the shell, `--t0`), imports done, training started,
each epoch's end, training returned."""

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
    p.add_argument("--t0", type=float, default=None, help="when the shell launched this process")
    args = p.parse_args()
    os.environ.setdefault("YOLO_OFFLINE", "1")
    from ultralytics import YOLO

    stages = {"launched": args.t0 or START, "imported": time.time()}
    epochs = []
    model = YOLO("yolov8n.yaml")
    model.add_callback("on_train_start", lambda t: stages.setdefault("train_start", time.time()))
    model.add_callback("on_fit_epoch_end", lambda t: epochs.append(time.time()))
    model.train(data=args.data, epochs=args.epochs, imgsz=args.imgsz, batch=8, workers=0, plots=False,
                project=args.project, name="direct", exist_ok=True, verbose=False)
    stages["end"] = time.time()
    stages["first_epoch"], stages["last_epoch"] = epochs[0], epochs[-1]
    print(json.dumps(stages))


if __name__ == "__main__":
    main()
