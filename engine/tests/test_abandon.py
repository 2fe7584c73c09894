"""A pruned trial is abandoned (SIGUSR1): it stops at the end of the batch
under way, with no validation of that epoch and no new checkpoint."""

import io
import json
import os
import signal

from trainyard_engine import demo, offline
from trainyard_engine.events import EventWriter
from trainyard_engine.train import train


class AbandonInSecondEpoch(io.StringIO):
    """The event stream; the second epoch's first batch sends this process
    SIGUSR1, as a worker pruning the trial would."""

    def write(self, text):
        if '"event":"progress"' in text and '"epoch":2,' in text and '"batch":1,' in text:
            os.kill(os.getpid(), signal.SIGUSR1)
        return super().write(text)


def test_an_abandoned_run_stops_within_the_next_epoch_without_validating_it(tmp_path):
    offline.prepare(tmp_path / "cfg")
    data = demo.make(tmp_path / "data", "detect", train=8, val=2, size=32)
    spec = {
        "job_id": "pruned",
        "model": "yolov8n.yaml",
        "type": "yolo",
        "project": str(tmp_path / "runs"),
        "name": "pruned",
        "train": {"data": str(data), "epochs": 5, "imgsz": 32, "batch": 2, "workers": 0, "device": "cpu", "plots": False},
    }
    out = AbandonInSecondEpoch()
    try:
        code = train(spec, EventWriter(stream=out, min_progress_interval=0))
    finally:
        signal.signal(signal.SIGUSR1, signal.SIG_DFL)
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    kinds = [e["event"] for e in events]
    assert code == 0, events[-1]
    assert [e["epoch"] for e in events if e["event"] == "epoch"] == [1], "no second epoch was validated"
    assert kinds[-1] == "stopped" and events[-1]["epoch"] == 1, events[-1]
    progress = [e["batch"] for e in events if e["event"] == "progress" and e["epoch"] == 2]
    assert progress == [1], f"stopped at the end of the next batch, not of the epoch (4 batches): {progress}"
