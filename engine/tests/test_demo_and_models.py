from pathlib import Path

import pytest

from trainyard_engine import demo, offline


def test_detection_dataset_layout_and_labels(tmp_path):
    data = demo.make(tmp_path / "det", "detect", train=4, val=2, size=48)
    text = data.read_text()
    assert "train: images/train" in text and "val: images/val" in text and "0: square" in text
    images = sorted((tmp_path / "det/images/train").glob("*.png"))
    labels = sorted((tmp_path / "det/labels/train").glob("*.txt"))
    assert len(images) == 4 and len(labels) == 4
    for label in labels:
        for row in label.read_text().split("\n"):
            if not row:
                continue
            cls, *box = row.split()
            assert cls in ("0", "1", "2")
            assert all(0.0 <= float(v) <= 1.0 for v in box)


def test_classification_dataset_has_a_folder_per_class(tmp_path):
    root = demo.make(tmp_path / "cls", "classify", train=3, val=1)
    assert sorted(p.name for p in (root / "train").iterdir()) == ["disc", "square"]
    assert len(list((root / "val/disc").glob("*.png"))) == 1


def test_unknown_dataset_kind_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="--kind"):
        demo.make(tmp_path, "segment")


def test_offline_preparation_puts_a_font_in_the_private_config_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("YOLO_CONFIG_DIR", raising=False)
    user_dir = offline.prepare(tmp_path / "cfg")
    assert (user_dir / "Arial.ttf").stat().st_size > 10000
    import os

    assert os.environ["YOLO_OFFLINE"] == "1"
    assert os.environ["YOLO_CONFIG_DIR"] == str(tmp_path / "cfg")


def test_model_types_build_the_right_ultralytics_class(tmp_path):
    offline.prepare(tmp_path / "cfg")
    from ultralytics import RTDETR, YOLO

    from trainyard_engine.train import build_model

    assert isinstance(build_model({"model": "rtdetr-l.yaml", "type": "rtdetr"}), RTDETR)
    yolo = build_model({"model": "yolov8n.yaml", "type": "yolo"})
    assert isinstance(yolo, YOLO) and yolo.task == "detect"
    assert build_model({"model": "yolov8n-cls.yaml"}).task == "classify"
    with pytest.raises(ValueError, match="type"):
        build_model({"model": "yolov8n.yaml", "type": "yolox"})


def test_predict_names_a_missing_weights_file_or_source(tmp_path):
    from trainyard_engine.predict import predict

    with pytest.raises(SystemExit, match="--model: no weights file at"):
        predict(tmp_path / "none.pt", tmp_path, tmp_path / "out")
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"not used")
    with pytest.raises(SystemExit, match="source: no image or folder at"):
        predict(weights, tmp_path / "nowhere", tmp_path / "out")
