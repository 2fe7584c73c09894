import io
import json
import math

import numpy as np

from trainyard_engine.events import EventWriter
from trainyard_engine.train import artifacts_in, one_line


def lines(stream):
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_events_are_one_json_object_per_line_with_clean_numbers():
    out = io.StringIO()
    writer = EventWriter(stream=out)
    writer.emit("epoch", epoch=1, metrics={"m": np.float32(0.5), "nan": math.nan, "inf": math.inf}, lr=[np.float64(0.01)])
    (event,) = lines(out)
    assert event["event"] == "epoch"
    assert event["metrics"] == {"m": 0.5, "nan": None, "inf": None}
    assert event["lr"] == [0.01]
    assert isinstance(event["time"], float)


def test_progress_is_throttled_but_forced_events_pass():
    out = io.StringIO()
    writer = EventWriter(stream=out, min_progress_interval=60)
    for batch in range(1, 50):
        writer.progress(batch=batch)
    writer.progress(force=True, batch=50)
    assert [e["batch"] for e in lines(out)] == [1, 50]


def test_a_closed_stream_never_raises():
    out = io.StringIO()
    writer = EventWriter(stream=out)
    out.close()
    writer.emit("log", line="still fine")


def test_one_line_keeps_the_first_paragraph_of_ultralytics_errors():
    error = SyntaxError("'lr9' is not a valid YOLO argument. Similar arguments are i.e. ['lr0=0.01'].\n\n    Arguments received: ...")
    assert one_line(error) == "'lr9' is not a valid YOLO argument. Similar arguments are i.e. ['lr0=0.01']."
    assert one_line(ValueError("")) == "ValueError"


def test_artifacts_are_classified(tmp_path):
    (tmp_path / "weights").mkdir()
    for name in ("weights/best.pt", "results.csv", "args.yaml", "results.png", "labels.jpg", "notes.txt"):
        (tmp_path / name).write_text("x")
    kinds = {p.split("/")[-1]: k for p, k in artifacts_in(tmp_path)}
    assert kinds == {"best.pt": "weights", "results.csv": "results", "args.yaml": "args", "results.png": "plot",
                     "labels.jpg": "plot", "notes.txt": "other"}
    assert artifacts_in(tmp_path / "missing") == []
