"""The serve protocol: a header line and image bytes in, one JSON answer out
per request, in order; a bad image is an answer with an error, never the end
of the predictor."""

import io
import json

import cv2
import numpy as np

from trainyard_engine.serve import serve


def request(rid, blobs, **options):
    header = dict(options, id=rid, sizes=[len(b) for b in blobs])
    return json.dumps(header).encode() + b"\n" + b"".join(blobs)


def test_requests_are_answered_in_order_and_a_bad_image_is_an_answer():
    image = (np.random.default_rng(1).random((48, 64, 3)) * 255).astype(np.uint8)
    jpeg = cv2.imencode(".jpg", image)[1].tobytes()
    stdin = io.BytesIO(request(1, [jpeg], conf=0.0001, imgsz=64, max_det=3)
                       + b"not json\n"
                       + request(2, [jpeg, b"garbage"], imgsz=64)
                       + request(3, [jpeg, jpeg], conf=0.0001, imgsz=64, classes=[0]))
    stdout = io.StringIO()
    assert serve("yolov8n.yaml", threads=1, stdin=stdin, stdout=stdout) == 0
    lines = [json.loads(line) for line in stdout.getvalue().splitlines()]
    ready, first, unreadable, bad, two = lines
    assert ready["ready"] is True and ready["task"] == "detect" and ready["threads"] == 1
    assert first["id"] == 1 and first["results"][0]["width"] == 64 and first["results"][0]["height"] == 48
    assert 0 < len(first["results"][0]["boxes"]) <= 3
    box = first["results"][0]["boxes"][0]
    assert abs(box["xyxyn"][2] - box["xyxy"][2] / 64) < 1e-6
    assert unreadable["error"] == "request header is not JSON"
    assert bad["id"] == 2 and "image 2 could not be decoded" in bad["error"] and bad["kind"] == "input"
    assert two["id"] == 3 and len(two["results"]) == 2
    assert all(b["class"] == 0 for r in two["results"] for b in r["boxes"])


def test_faces_are_blurred_before_the_model_sees_them():
    """zidane.jpg (shipped with Ultralytics) has two frontal faces; with
    blurring on they are found, counted and blurred; off, nothing is said."""
    from ultralytics.utils import ASSETS

    from trainyard_engine.serve import blur_faces

    photo = (ASSETS / "zidane.jpg").read_bytes()
    image = cv2.imdecode(np.frombuffer(photo, np.uint8), cv2.IMREAD_COLOR)
    original = image.copy()
    assert blur_faces(image, {"detect_side": 640}) == 2
    changed = np.any(image != original, axis=2)
    assert 0 < changed.mean() < 0.2, "the faces changed, the rest of the photo did not"
    blank = np.full((120, 160, 3), 127, np.uint8)
    assert blur_faces(blank, {}) == 0 and (blank == 127).all()

    stdin = io.BytesIO(request(1, [photo], imgsz=64, blur_faces={"detect_side": 640, "min_neighbors": 5})
                       + request(2, [photo], imgsz=64))
    stdout = io.StringIO()
    assert serve("yolov8n.yaml", threads=1, stdin=stdin, stdout=stdout) == 0
    _, on, off = [json.loads(line) for line in stdout.getvalue().splitlines()]
    assert on["results"][0]["faces_blurred"] == 2
    assert "faces_blurred" not in off["results"][0]


def resident_bytes():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS:"))


def test_a_large_request_leaves_no_memory_behind():
    """Ultralytics' predictor keeps its last batch (the decoded images) until
    the next call, and glibc keeps freed heap: after a 48 MP request (144 MB
    decoded) the predictor is back within 48 MB of what it held before."""
    from ultralytics import YOLO

    from trainyard_engine.serve import answer_request, release_memory

    model = YOLO("yolov8n.yaml")
    small = cv2.imencode(".jpg", np.zeros((48, 64, 3), np.uint8))[1].tobytes()
    large = cv2.imencode(".png", np.zeros((8000, 6000, 3), np.uint8))[1].tobytes()
    answer_request(model, {"id": 1, "imgsz": 64}, [small])
    release_memory(model, 0)
    before = resident_bytes()
    answer, pixels = answer_request(model, {"id": 2, "imgsz": 64}, [large])
    assert pixels == 48_000_000 and answer["results"][0]["width"] == 6000
    release_memory(model, pixels)
    assert model.predictor.batch is None and model.predictor.results is None
    assert resident_bytes() - before < 48 << 20
