"""Issue 7: a job whose training finished while its end went unrecorded is
requeued with a resume; that must report the finished run, not train again
and not fall back to Ultralytics' default dataset (coco8.yaml)."""

import io
import json

from trainyard_engine import demo, offline
from trainyard_engine.events import EventWriter
from trainyard_engine.train import finished_checkpoint, train


def run(spec):
    out = io.StringIO()
    code = train(spec, EventWriter(stream=out))
    return code, [json.loads(line) for line in out.getvalue().splitlines()]


def test_resuming_a_finished_training_reports_it_without_training(tmp_path):
    offline.prepare(tmp_path / "cfg")
    data = demo.make(tmp_path / "data", "detect", train=4, val=2, size=32)
    spec = {
        "job_id": "done",
        "model": "yolov8n.yaml",
        "type": "yolo",
        "project": str(tmp_path / "runs"),
        "name": "done",
        "train": {"data": str(data), "epochs": 1, "imgsz": 32, "batch": 2, "workers": 0, "device": "cpu", "plots": False},
    }
    code, events = run(spec)
    assert code == 0, events[-1]
    last = tmp_path / "runs/done/weights/last.pt"
    assert finished_checkpoint(last)

    code, events = run({**spec, "resume": str(last)})
    kinds = [e["event"] for e in events]
    assert code == 0, events[-1]
    assert "epoch" not in kinds and "failed" not in kinds
    assert kinds[0] == "started" and kinds[-1] == "finished"
    finished = events[-1]
    assert finished["best"].endswith("weights/best.pt")
    assert any(key.startswith("metrics/") for key in finished["metrics"])
    assert not (tmp_path / "runs/done2").exists(), "nothing trained into a new folder"
