"""A worker's warm engine: started ahead of need, it imports what every
training needs (no CUDA initialised, no model built), says so with one
`log` event, then waits on stdin for its job: one JSON line
`{"spec": PATH, "cwd": DIR}`. End of file (the worker stopped, or died)
ends it."""

import importlib
import json
import os
import time

# What a training imports, heaviest first; a module missing here is imported
# by the training itself if it needs it.
MODULES = (
    "torch",
    "torchvision",
    "ultralytics",
    "ultralytics.models.yolo",
    "ultralytics.models.rtdetr",
    "ultralytics.engine.trainer",
    "ultralytics.engine.exporter",
    "ultralytics.data.build",
    "ultralytics.utils.plotting",
    "ultralytics.utils.callbacks.base",
    "ultralytics.utils.callbacks.hub",
    "ultralytics.utils.callbacks.platform",
    "ultralytics.utils.callbacks.clearml",
    "ultralytics.utils.callbacks.comet",
    "ultralytics.utils.callbacks.dvc",
    "ultralytics.utils.callbacks.mlflow",
    "ultralytics.utils.callbacks.neptune",
    "ultralytics.utils.callbacks.raytune",
    "ultralytics.utils.callbacks.tensorboard",
    "ultralytics.utils.callbacks.wb",
    "matplotlib.pyplot",
    "polars",
    "sympy",
    "thop",
    "cv2",
)


def warm_up(events, started):
    """Imports MODULES; reports how long it took."""
    for name in MODULES:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - an optional module; the training imports what it needs
            pass
    seconds = round(time.time() - started, 3)
    events.emit("log", line=f"warm engine ready: imports took {seconds} s before the job came", warm_seconds=seconds)


def wait_for_job(stream):
    """The job handed over on stdin: (spec path, working folder), or None at end of file."""
    line = stream.readline()
    if not line.strip():
        return None
    job = json.loads(line)
    os.chdir(job["cwd"])
    return job["spec"]
