"""Command line of the engine. The worker runs
`python -m trainyard_engine train --spec SPEC.json --events-fd 3`, or ahead
of need `train --warm --events-fd 3` and then hands it the job on stdin."""

import argparse
import json
import os
import sys
import time

from . import PROCESS_START, offline
from .events import EventWriter


def main(argv=None):
    parser = argparse.ArgumentParser(prog="trainyard_engine")
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train one job from a spec file")
    t.add_argument("--spec", help="the job's spec file")
    t.add_argument("--warm", action="store_true",
                   help='import torch and Ultralytics now, then wait for the job on stdin: one line {"spec": PATH, "cwd": DIR}')
    t.add_argument("--events-fd", type=int, default=None, help="file descriptor for JSON-line events (default: stdout)")
    t.add_argument("--parent-pid", type=int, default=None,
                   help="the worker that starts the engine: it ends when that process is no longer its parent (default: its parent now)")
    d = sub.add_parser("demo-data", help="write a small synthetic dataset")
    d.add_argument("root")
    d.add_argument("--kind", default="detect", choices=["detect", "classify"])
    d.add_argument("--train", type=int, default=None)
    d.add_argument("--val", type=int, default=None)
    d.add_argument("--size", type=int, default=None)
    sub.add_parser("doctor", help="print versions and devices as JSON")
    sub.add_parser("study", help="serve Optuna studies over JSON lines on stdin/stdout (a sweep's study process)")
    pr = sub.add_parser("predict", help="run weights on images; one line per image")
    pr.add_argument("--model", required=True)
    pr.add_argument("--source", required=True)
    pr.add_argument("--save-dir", required=True)
    pr.add_argument("--conf", type=float, default=0.25)
    pr.add_argument("--imgsz", type=int, default=None)
    sv = sub.add_parser("serve", help="load weights once and answer predict requests on stdin (the server's predictor pool)")
    sv.add_argument("--model", required=True)
    sv.add_argument("--threads", type=int, default=None, help="torch threads (default: Ultralytics' choice)")
    sv.add_argument("--task", default=None, help="the model's task (an ONNX file names it too)")
    ex = sub.add_parser("export", help="write weights in another format (onnx); the last stdout line is JSON")
    ex.add_argument("--model", required=True)
    ex.add_argument("--format", default="onnx")
    ex.add_argument("--out", required=True)
    ex.add_argument("--imgsz", type=int, default=None)
    args = parser.parse_args(argv)

    if args.command == "demo-data":
        from . import demo

        sizes = {k: v for k, v in (("train", args.train), ("val", args.val), ("size", args.size)) if v}
        path = demo.make(args.root, args.kind, **sizes)
        print(json.dumps({"path": str(path)}))
        return 0

    if args.command == "study":
        from .study import serve

        return serve()

    config_dir = os.environ.get("YARD_ULTRALYTICS_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "trainyard", "ultralytics")
    if args.command == "doctor":
        from .doctor import report

        user_dir = offline.prepare(config_dir)
        info = report()
        info["font"] = (user_dir / "Arial.ttf").exists()
        if not info["font"]:
            info["problems"].append("no TTF font found for plots; apt-get install fonts-dejavu-core")
        print(json.dumps(info))
        return 0

    if args.command == "predict":
        offline.prepare(config_dir)
        offline.disable_sync()
        from .predict import predict

        return predict(args.model, args.source, args.save_dir, conf=args.conf, imgsz=args.imgsz)

    if args.command == "serve":
        from .serve import answers_stream, serve

        # Before Ultralytics is imported: what it prints must not mix with the answers.
        out = answers_stream()
        offline.prepare(config_dir)
        offline.disable_sync()
        return serve(args.model, threads=args.threads, stdout=out, task=args.task)

    if args.command == "export":
        from .serve import answers_stream

        out = answers_stream()
        offline.prepare(config_dir)
        offline.disable_sync()
        from .export import export

        try:
            return export(args.model, args.format, args.out, imgsz=args.imgsz, stdout=out)
        except Exception as error:  # one line for the server's error, not a traceback
            print(f"export failed: {type(error).__name__}: {error}"[:500], file=sys.stderr)
            return 1

    # First of all: a worker killed while this process started must not leave
    # it training the job its next attempt resumes (the pid it names is
    # checked, not the parent found now, which would be init's).
    from .lifeline import watch_parent

    watch_parent(args.parent_pid if args.parent_pid is not None else os.getppid())
    events = EventWriter(fd=args.events_fd) if args.events_fd is not None else EventWriter(stream=sys.stdout)
    spec_path, warm = args.spec, None
    if args.warm:
        from .warm import wait_for_job, warm_up

        # Ultralytics reads its settings folder when imported: prepared first.
        offline.prepare(config_dir)
        offline.disable_sync()
        warm_up(events, PROCESS_START)
        spec_path = wait_for_job(sys.stdin)
        if spec_path is None:
            return 0
        warm = {"since": round(PROCESS_START, 3), "received": round(time.time(), 3)}
    elif not spec_path:
        parser.error("train needs --spec SPEC.json (or --warm)")
    with open(spec_path, encoding="utf-8") as f:
        spec = json.load(f)
    if warm:
        spec["warm"] = warm
    offline.prepare(spec.get("config_dir") or config_dir)
    offline.disable_sync()
    from .train import train

    return train(spec, events)


if __name__ == "__main__":
    code = main()
    # Everything is written and closed: skip the interpreter's teardown, which
    # with torch loaded takes about a second and delays the job's end.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)
