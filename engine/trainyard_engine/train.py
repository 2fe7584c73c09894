"""Runs one training job: builds the model, wires callbacks that report
events, honours stop signals and resumes from a checkpoint."""

import json
import os
import platform
import signal
import sys
import time
import traceback
from pathlib import Path

from . import PROCESS_START


class StopRequested(Exception):
    """Raised from a callback after a checkpoint was saved: unlike letting
    Ultralytics finish, raising keeps last.pt resumable. `completed`: the
    epochs done (an abandoned run stops inside the next one)."""

    def __init__(self, last, completed):
        super().__init__(last)
        self.completed = completed


def one_line(error):
    """Ultralytics' own message, first paragraph, on one line."""
    text = str(error).strip() or type(error).__name__
    first = text.split("\n\n", 1)[0]
    return " ".join(first.split())


class StopControl:
    """SIGTERM/SIGINT set `trainer.stop`: Ultralytics ends the epoch after the
    current batch, validates and saves last.pt, then `on_fit_epoch_end` raises
    StopRequested (in the last epoch training just finishes). A second signal
    changes nothing; a third exits at once with code 130, without a checkpoint.

    SIGUSR1 abandons the run (a pruned trial, never resumed): the next batch's
    end raises StopRequested, with no validation and no new checkpoint."""

    def __init__(self):
        self.requests = 0
        self.abandoned = False
        self.trainer = None

    def install(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)
        signal.signal(signal.SIGUSR1, self._abandon)

    def _abandon(self, signum, frame):
        self.abandoned = True
        self.requests += 1

    def _handle(self, signum, frame):
        self.requests += 1
        if self.trainer is not None:
            self.trainer.stop = True
        if self.requests >= 3:
            os._exit(130)

    @property
    def requested(self):
        return self.requests > 0


def build_model(spec):
    """YOLO or RT-DETR from a .pt, a model .yaml or a path; a resume loads the
    checkpoint instead."""
    from ultralytics import RTDETR, YOLO

    source = spec.get("resume") or spec["model"]
    kind = spec.get("type", "yolo")
    if kind == "rtdetr":
        return RTDETR(source)
    if kind == "yolo":
        return YOLO(source)
    raise ValueError(f"type: unknown model type {kind!r}; use yolo or rtdetr")


def versions():
    """What computed the run, for its lineage and for `yard rerun` to compare."""
    import numpy
    import torch
    import ultralytics

    from . import __version__

    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return {
        "ultralytics": ultralytics.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "cuda": torch.version.cuda or "",
        "cudnn": str(cudnn) if cudnn else "",
        "engine": __version__,
    }


def write_environment(save_dir):
    """`environment.txt` in the run folder: every installed distribution as
    `name==version`, sorted (what `pip freeze` lists), kept with the run so
    its lineage bundle says what computed it. Never fails the run."""
    try:
        from importlib import metadata

        names = {f"{dist.metadata['Name']}=={dist.version}" for dist in metadata.distributions() if dist.metadata["Name"]}
        Path(save_dir, "environment.txt").write_text("\n".join(sorted(names, key=str.lower)) + "\n")
    except Exception:  # noqa: BLE001 - the record is a courtesy; training goes on
        traceback.print_exc(file=sys.stderr)


def artifacts_in(save_dir):
    """The files worth keeping from a run folder, with their kind."""
    save_dir = Path(save_dir)
    if not save_dir.is_dir():
        return []
    found = []
    for path in sorted(save_dir.rglob("*")):
        if not path.is_file():
            continue
        suffix = path.suffix.lower()
        if suffix == ".pt":
            kind = "weights"
        elif path.name == "results.csv":
            kind = "results"
        elif path.name == "args.yaml":
            kind = "args"
        elif suffix in (".png", ".jpg", ".jpeg", ".svg"):
            kind = "plot"
        elif suffix in (".onnx", ".torchscript", ".engine"):
            kind = "export"
        else:
            kind = "other"
        found.append((str(path), kind))
    return found


class Reporter:
    """The Ultralytics callbacks that turn training into events."""

    def __init__(self, events, stop, spec):
        self.events = events
        self.stop = stop
        self.spec = spec
        self.batch = 0
        self.batches = 0
        self.in_final_eval = False
        self.final_metrics = None
        self.started = time.monotonic()

    def attach(self, model):
        for name in ("on_pretrain_routine_start", "on_train_start", "on_train_epoch_start",
                     "on_train_batch_end", "on_fit_epoch_end"):
            model.add_callback(name, getattr(self, name))

    def on_pretrain_routine_start(self, trainer):
        self.stop.trainer = trainer
        if self.stop.requested:
            trainer.stop = True
        original = trainer.final_eval

        def final_eval():
            self.in_final_eval = True
            original()

        trainer.final_eval = final_eval

    def on_train_start(self, trainer):
        write_environment(trainer.save_dir)
        self.events.emit(
            "started",
            versions=versions(),
            device=str(trainer.device),
            host=platform.node(),
            save_dir=str(trainer.save_dir),
            epochs=trainer.epochs,
            start_epoch=trainer.start_epoch,
            resumed=bool(self.spec.get("resume")),
            task=getattr(trainer.args, "task", None),
            pid=os.getpid(),
            # A warm engine's job began when it was handed over; its imports were done before.
            process_start=(self.spec.get("warm") or {}).get("received", round(PROCESS_START, 3)),
            warm=bool(self.spec.get("warm")),
        )

    def on_train_epoch_start(self, trainer):
        self.batch = 0
        self.batches = len(trainer.train_loader) if trainer.train_loader is not None else 0

    def on_train_batch_end(self, trainer):
        if self.stop.abandoned:
            raise StopRequested("", trainer.epoch)
        self.batch += 1
        losses = trainer.label_loss_items(trainer.tloss, prefix="train") if trainer.tloss is not None else {}
        self.events.progress(
            force=self.batch == self.batches,
            epoch=trainer.epoch + 1,
            epochs=trainer.epochs,
            batch=self.batch,
            batches=self.batches,
            losses=losses,
            elapsed=round(time.monotonic() - self.started, 3),
        )

    def on_fit_epoch_end(self, trainer):
        if self.in_final_eval:
            self.final_metrics = dict(trainer.metrics or {})
            return
        self.events.emit(
            "epoch",
            epoch=trainer.epoch + 1,
            epochs=trainer.epochs,
            metrics=dict(trainer.metrics or {}),
            losses=trainer.label_loss_items(trainer.tloss, prefix="train") if trainer.tloss is not None else {},
            lr=dict(getattr(trainer, "lr", {}) or {}),
            seconds=round(float(getattr(trainer, "epoch_time", 0) or 0), 4),
            fitness=trainer.fitness,
        )
        last = Path(trainer.last)
        if self.stop.requested and trainer.epoch + 1 < trainer.epochs:
            raise StopRequested(str(last) if last.exists() else "", trainer.epoch + 1)


# Ultralytics arguments that choose where files go or what is loaded as the
# run's settings: Trainyard owns them (the service refuses them at submit time;
# this is the engine's own check).
RESERVED_TRAIN_ARGS = ("project", "name", "exist_ok", "save_dir", "cfg", "model", "resume")


def check_train_args(train_args):
    reserved = sorted(key for key in train_args if key in RESERVED_TRAIN_ARGS)
    if reserved:
        raise ValueError(f"train.{reserved[0]}: reserved by Trainyard, which chooses where runs are saved; remove it")


def finished_checkpoint(path):
    """Whether a checkpoint is the final one of a training that ended:
    Ultralytics strips it (epoch -1, no optimizer), and it cannot resume."""
    import torch

    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    return isinstance(ckpt, dict) and (ckpt.get("epoch", -1) == -1 or ckpt.get("optimizer") is None)


def last_results(save_dir):
    """The numbers of results.csv's last row (the final epoch)."""
    import csv

    path = Path(save_dir) / "results.csv"
    if not path.is_file():
        return {}
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        return {}
    numbers = {}
    for key, value in rows[-1].items():
        try:
            numbers[key.strip()] = float(value)
        except (TypeError, ValueError):
            continue
    return numbers


def report_finished(spec, events, save_dir):
    """A resume of a training that had already finished (its end went
    unrecorded): report its results from the run folder, train nothing, and
    never fall back to Ultralytics' default dataset."""
    weights = save_dir / "weights"
    best, last = weights / "best.pt", weights / "last.pt"
    numbers = last_results(save_dir)
    events.emit(
        "started",
        versions=versions(),
        device=str((spec.get("train") or {}).get("device", "cpu")),
        host=platform.node(),
        save_dir=str(save_dir),
        epochs=int(numbers.get("epoch", 0)) or None,
        start_epoch=int(numbers.get("epoch", 0)),
        resumed=True,
        pid=os.getpid(),
    )
    events.emit("log", line="the checkpoint is from a training that already finished; reporting its results without training again")
    for path, kind in artifacts_in(save_dir):
        events.emit("artifact", path=path, kind=kind)
    metrics = {key: value for key, value in numbers.items() if key.startswith("metrics/") or key.startswith("val/")}
    events.emit(
        "finished",
        best=str(best) if best.exists() else None,
        last=str(last) if last.exists() else None,
        metrics=metrics,
        fitness=None,
        save_dir=str(save_dir),
    )
    return 0


EVALUATED_TASKS = ("detect", "segment", "pose", "obb")


def test_split(data):
    """The dataset YAML's `test:` entry, or None (a folder dataset, no test split)."""
    if not data or not str(data).endswith((".yaml", ".yml")):
        return None
    try:
        from ultralytics.utils import YAML

        return (YAML.load(data) or {}).get("test") or None
    except Exception:  # noqa: BLE001 - an unreadable YAML has failed training already
        return None


def evaluate_test(model, spec, events, save_dir):
    """After training: Ultralytics' own `val(split="test")` with the best
    weights, when the dataset has a test split. Writes test/evaluation.json
    (overall and per-class precision, recall, F1, mAP50, mAP50-95, the
    confusion matrix) next to Ultralytics' test plots and reports the same
    as an `evaluation` event. A failure here is logged; the training stands."""
    train_args = spec.get("train") or {}
    if spec.get("evaluate_test") is False or model.task not in EVALUATED_TASKS or not test_split(train_args.get("data")):
        return
    events.emit("log", line="evaluating the best weights on the test split")
    args = {k: v for k, v in train_args.items() if k in ("imgsz", "batch", "device", "workers", "half", "single_cls")}
    try:
        metrics = model.val(data=train_args["data"], split="test", project=str(save_dir), name="test", exist_ok=True,
                            plots=True, verbose=False, **args)
        names = [str(n) for n in model.names.values()]
        per_class = []
        for row in metrics.summary():
            key = next((k for k in row if k.endswith("-P")), None)
            prefix = key[:-1] if key else "Box-"
            per_class.append({
                "name": row.get("Class"),
                "images": row.get("Images"),
                "instances": row.get("Instances"),
                "precision": row.get(prefix + "P"),
                "recall": row.get(prefix + "R"),
                "f1": row.get(prefix + "F1"),
                "mAP50": row.get("mAP50"),
                "mAP50-95": row.get("mAP50-95"),
            })
        results = metrics.results_dict
        precision = next((v for k, v in results.items() if k.startswith("metrics/precision")), None)
        recall = next((v for k, v in results.items() if k.startswith("metrics/recall")), None)
        overall = {
            "precision": precision,
            "recall": recall,
            "f1": (2 * precision * recall / (precision + recall)) if precision and recall else 0.0,
            "mAP50": next((v for k, v in results.items() if k.startswith("metrics/mAP50(")), None),
            "mAP50-95": next((v for k, v in results.items() if k.startswith("metrics/mAP50-95(")), None),
        }
        matrix = getattr(getattr(metrics, "confusion_matrix", None), "matrix", None)
        evaluation = {
            "split": "test",
            "metrics": overall,
            "classes": per_class,
            "confusion_matrix": {"names": names + ["background"], "matrix": matrix.tolist() if matrix is not None else None,
                                 "rows": "predicted", "columns": "true"},
        }
        out = Path(save_dir) / "test"
        out.mkdir(parents=True, exist_ok=True)
        from .events import _clean

        (out / "evaluation.json").write_text(json.dumps(_clean(evaluation), indent=1, allow_nan=False))
        events.emit("evaluation", **evaluation)
    except StopRequested:
        raise
    except Exception as error:  # noqa: BLE001 - evaluation never fails a finished training
        traceback.print_exc(file=sys.stderr)
        events.emit("log", line=f"test-split evaluation failed: {one_line(error)}")


def train(spec, events):
    """Trains one job. Returns the process exit code."""
    stop = StopControl()
    stop.install()
    reporter = Reporter(events, stop, spec)
    save_dir = Path(spec["project"]) / spec["name"]
    try:
        check_train_args(spec.get("train") or {})
        if spec.get("resume") and finished_checkpoint(spec["resume"]):
            return report_finished(spec, events, save_dir)
        model = build_model(spec)
        reporter.attach(model)
        if spec.get("resume"):
            events.emit("log", line=f"resuming from {spec['resume']}")
            # data too: without it Ultralytics falls back to its default dataset (coco8.yaml).
            overrides = {k: v for k, v in (spec.get("train") or {}).items() if k in ("device", "batch", "workers", "data")}
            # The checkpoint names the run folder of the machine that wrote it:
            # a job taken over by another worker continues in this one's.
            overrides["save_dir"] = str(save_dir)
            model.train(resume=True, **overrides)
        else:
            args = dict(spec.get("train") or {})
            args.update(project=spec["project"], name=spec["name"], exist_ok=True)
            model.train(**args)
        trainer = model.trainer
        best = Path(trainer.best)
        last = Path(trainer.last)
        evaluate_test(model, spec, events, save_dir)
        for path, kind in artifacts_in(save_dir):
            events.emit("artifact", path=path, kind=kind)
        metrics = reporter.final_metrics if reporter.final_metrics is not None else dict(trainer.metrics or {})
        events.emit(
            "finished",
            best=str(best) if best.exists() else None,
            last=str(last) if last.exists() else None,
            metrics=metrics,
            fitness=getattr(trainer, "best_fitness", None),
            save_dir=str(save_dir),
        )
        return 0
    except StopRequested as stopped:
        for path, kind in artifacts_in(save_dir):
            events.emit("artifact", path=path, kind=kind)
        events.emit("stopped", last=str(stopped) or None, epoch=stopped.completed)
        return 0
    except BaseException as error:  # noqa: BLE001 - every failure becomes one event
        if isinstance(error, SystemExit) and error.code in (0, None):
            raise
        traceback.print_exc(file=sys.stderr)
        for path, kind in artifacts_in(save_dir):
            events.emit("artifact", path=path, kind=kind)
        events.emit("failed", error=type(error).__name__, message=one_line(error))
        return 1
