"""`export`: a version's weights as ONNX, written whole under the name the
server gave, and served by the same protocol with the same answers."""

import io
import json
import os

import cv2
import numpy as np
import pytest

from trainyard_engine.export import export
from trainyard_engine.serve import serve


def request(rid, blobs, **options):
    header = dict(options, id=rid, sizes=[len(b) for b in blobs])
    return json.dumps(header).encode() + b"\n" + b"".join(blobs)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    from ultralytics import YOLO

    path = tmp_path_factory.mktemp("w") / "model.pt"
    YOLO("yolov8n.yaml").save(str(path))
    return path


def test_an_unknown_format_is_refused_and_writes_nothing(weights, tmp_path, capsys):
    out = tmp_path / "m.engine"
    assert export(str(weights), "tensorrt", str(out)) == 1
    assert "format 'tensorrt' is not supported" in capsys.readouterr().err
    assert not out.exists()


def test_the_onnx_export_answers_like_the_weights(weights, tmp_path):
    out = tmp_path / "cache" / "abc.onnx"
    report = io.StringIO()
    assert export(str(weights), "onnx", str(out), imgsz=64, stdout=report) == 0
    line = json.loads(report.getvalue().splitlines()[-1])
    assert line["path"] == str(out) and line["size"] == out.stat().st_size > 0 and line["dynamic"] is True
    # Nothing else is left beside it (the scratch copy of the weights is gone).
    assert sorted(os.listdir(out.parent)) == ["abc.onnx"]

    image = (np.random.default_rng(3).random((48, 80, 3)) * 255).astype(np.uint8)
    jpeg = cv2.imencode(".jpg", image)[1].tobytes()
    answers = {}
    for name, path in (("torch", weights), ("onnx", out)):
        stdout = io.StringIO()
        stdin = io.BytesIO(request(1, [jpeg, jpeg], conf=0.0001, imgsz=64, max_det=5))
        assert serve(str(path), threads=1, stdin=stdin, stdout=stdout, task="detect") == 0
        ready, answer = [json.loads(x) for x in stdout.getvalue().splitlines()]
        assert ready["runtime"] == name
        answers[name] = answer["results"]
    assert len(answers["onnx"]) == 2
    for torch_image, onnx_image in zip(answers["torch"], answers["onnx"]):
        torch_boxes = sorted((b["class"], round(b["score"], 3)) for b in torch_image["boxes"])
        onnx_boxes = sorted((b["class"], round(b["score"], 3)) for b in onnx_image["boxes"])
        assert len(torch_boxes) == len(onnx_boxes) > 0
        for a, b in zip(torch_image["boxes"], onnx_image["boxes"]):
            assert a["class"] == b["class"]
            assert abs(a["score"] - b["score"]) < 1e-3
            assert max(abs(x - y) for x, y in zip(a["xyxy"], b["xyxy"])) < 1e-2
