"""`serve`: one model version loaded once, answering predict requests.

The server's predictor pool runs `python -m trainyard_engine serve --model
WEIGHTS --threads N [--task T]`; WEIGHTS ending in `.onnx` is run by
onnxruntime (Ultralytics' AutoBackend) instead of torch. Requests arrive on stdin, each a JSON header line
followed by the raw bytes of its images:

    {"id": 7, "sizes": [52311, 48800], "conf": 0.25, "iou": 0.7,
     "imgsz": 640, "max_det": 300, "classes": [0, 2], "top_k": 5}

Answers leave on stdout, one JSON line each, in request order:
{"id": 7, "results": [...], "ms": {...}} or {"id": 7, "error": "...", "kind":
"input" (an image the model cannot read: the client's) or "model" (the
predictor failed: out of memory, a runtime error, a NaN answer)}.
The first line out says the model is loaded: {"ready": true, ...}. Anything
Ultralytics prints goes to stderr, never into the answers."""

import json
import os
import sys
import time


class BadImage(ValueError):
    """An image that cannot be decoded: the request's fault, not the model's."""


def read_exact(stream, size):
    chunks, left = [], size
    while left > 0:
        chunk = stream.read(left)
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def describe(result, top_k):
    h, w = result.orig_shape[:2]
    out = {"width": int(w), "height": int(h)}
    if result.probs is not None:
        probs = result.probs.data.float().cpu()
        k = min(top_k, probs.numel())
        values, indices = probs.topk(k)
        out["top"] = [{"class": int(i), "name": result.names[int(i)], "score": float(v)} for v, i in zip(values, indices)]
        return out
    boxes = []
    if result.boxes is not None:
        xyxy = result.boxes.xyxy.float().cpu().tolist()
        xyxyn = result.boxes.xyxyn.float().cpu().tolist()
        for box, norm, c, p in zip(xyxy, xyxyn, result.boxes.cls.tolist(), result.boxes.conf.tolist()):
            boxes.append({"class": int(c), "name": result.names[int(c)], "score": float(p),
                          "xyxy": [float(v) for v in box], "xyxyn": [float(v) for v in norm]})
    out["boxes"] = boxes
    return out


_cascade = None


def blur_faces(image, settings):
    """Blurs every frontal face OpenCV's Haar cascade finds, in place;
    returns how many. Detection runs on a copy scaled to `detect_side`."""
    import cv2

    global _cascade
    if _cascade is None:
        path = os.path.join(cv2.data.haarcascades, "haarcascade_frontalface_default.xml")
        _cascade = cv2.CascadeClassifier(path)
        if _cascade.empty():
            raise RuntimeError(f"OpenCV's face cascade could not be loaded from {path}")
    h, w = image.shape[:2]
    scale = min(1.0, float(settings.get("detect_side", 1280)) / max(h, w))
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if scale < 1.0:
        gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    min_size = max(8, int(round(int(settings.get("min_size", 24)) * scale)))
    faces = _cascade.detectMultiScale(gray, scaleFactor=float(settings.get("scale_factor", 1.1)),
                                      minNeighbors=int(settings.get("min_neighbors", 5)), minSize=(min_size, min_size))
    for x, y, fw, fh in (faces if len(faces) else []):
        x0, y0 = max(0, int(x / scale)), max(0, int(y / scale))
        x1, y1 = min(w, int((x + fw) / scale) + 1), min(h, int((y + fh) / scale) + 1)
        region = image[y0:y1, x0:x1]
        k = max(3, (max(x1 - x0, y1 - y0) // 2) | 1)  # a kernel half the face: nothing recognisable left
        image[y0:y1, x0:x1] = cv2.GaussianBlur(region, (k, k), 0)
    return len(faces)


def answers_stream():
    """The process' stdout, kept for answers; fd 1 (what print and
    Ultralytics' logger write to) goes to stderr from here on."""
    out = os.fdopen(os.dup(1), "w", buffering=1)
    sys.stdout.flush()
    os.dup2(2, 1)
    return out


def limit_onnx_threads(threads):
    """onnxruntime uses every core per session by default; the pool runs
    several predictors, each told how many threads it may use."""
    import onnxruntime

    base = onnxruntime.InferenceSession

    class Session(base):
        def __init__(self, path_or_bytes, sess_options=None, *args, **kwargs):
            if sess_options is None:
                sess_options = onnxruntime.SessionOptions()
                sess_options.intra_op_num_threads = int(threads)
                sess_options.inter_op_num_threads = 1
            super().__init__(path_or_bytes, sess_options, *args, **kwargs)

    onnxruntime.InferenceSession = Session


def serve(model_path, threads=None, stdin=None, stdout=None, task=None):
    started = time.time()
    out = stdout or answers_stream()
    source = stdin or sys.stdin.buffer

    import cv2
    import numpy as np
    import torch
    from ultralytics import YOLO

    # Ultralytics pins torch to one thread on small machines: the pool says how many.
    runtime = "onnx" if str(model_path).endswith(".onnx") else "torch"
    if threads:
        torch.set_num_threads(int(threads))
        if runtime == "onnx":
            limit_onnx_threads(threads)
    model = YOLO(model_path, task=task) if task else YOLO(model_path)
    names = {int(k): v for k, v in model.names.items()}
    # One warm-up pass, so the first request does not pay for lazy setup.
    model.predict(np.zeros((64, 64, 3), dtype=np.uint8), verbose=False, imgsz=64)
    # A real photo shipped with Ultralytics: the server's health check predicts on it.
    from ultralytics.utils import ASSETS

    sample = ASSETS / "bus.jpg"
    out.write(json.dumps({"ready": True, "task": model.task, "runtime": runtime, "names": names, "load_ms": round((time.time() - started) * 1000, 1),
                          "threads": torch.get_num_threads(), "pid": os.getpid(),
                          "sample": str(sample) if sample.is_file() else None}) + "\n")
    out.flush()

    while True:
        line = source.readline()
        if not line:
            return 0
        try:
            header = json.loads(line)
        except ValueError:
            out.write(json.dumps({"id": None, "error": "request header is not JSON", "kind": "input"}) + "\n")
            continue
        rid = header.get("id")
        try:
            blobs = [read_exact(source, int(n)) for n in header.get("sizes", [])]
        except EOFError:
            return 0
        answer, pixels = answer_request(model, header, blobs)
        del blobs
        # Before the answer: the server reads the predictor's memory once it is
        # answered, and a predictor still holding its peak would be replaced.
        release_memory(model, pixels)
        try:
            text = json.dumps(answer, allow_nan=False)
        except ValueError:  # NaN or infinity in an answer: JSON has no word for them
            text = json.dumps({"id": rid, "error": "the model produced a value that is not a finite number (NaN or infinity)", "kind": "model"})
        out.write(text + "\n")
        out.flush()


# Decoded pixels (3 bytes each) past which the heap's free memory is handed
# back to the system after a request (a 4 MP photo is 12 MB decoded).
TRIM_PIXELS = 4_000_000


def answer_request(model, header, blobs):
    """One request's answer and the pixels it decoded. Its decoded images
    live only in here: nothing of them outlives the answer."""
    import cv2
    import numpy as np

    rid = header.get("id")
    pixels = 0
    try:
        t0 = time.time()
        images = []
        for index, blob in enumerate(blobs):
            image = cv2.imdecode(np.frombuffer(blob, np.uint8), cv2.IMREAD_COLOR)
            if image is None:
                raise BadImage(f"image {index + 1} could not be decoded")
            pixels += image.shape[0] * image.shape[1]
            images.append(image)
        blurred = None
        if header.get("blur_faces"):
            blurred = [blur_faces(image, header["blur_faces"]) for image in images]
        t1 = time.time()
        kwargs = {"verbose": False, "conf": float(header.get("conf", 0.25)), "iou": float(header.get("iou", 0.7)),
                  "max_det": int(header.get("max_det", 300))}
        if header.get("imgsz"):
            kwargs["imgsz"] = int(header["imgsz"])
        if header.get("classes") is not None:
            kwargs["classes"] = [int(c) for c in header["classes"]]
        results = model.predict(images, **kwargs) if images else []
        t2 = time.time()
        top_k = int(header.get("top_k", 5))
        described = [describe(r, top_k) for r in results]
        if blurred is not None:
            for entry, count in zip(described, blurred):
                entry["faces_blurred"] = count
        return {"id": rid, "results": described,
                "ms": {"decode": round((t1 - t0) * 1000, 2), "inference": round((t2 - t1) * 1000, 2)}}, pixels
    except BadImage as error:
        return {"id": rid, "error": str(error), "kind": "input"}, pixels
    except Exception as error:  # a failure never ends the predictor
        return {"id": rid, "error": f"{type(error).__name__}: {error}"[:500], "kind": "model"}, pixels


def release_memory(model, pixels):
    """Ultralytics' predictor keeps its last batch, source and results (the
    original images) until the next call: dropped here. After a large request
    the heap's free pages go back to the system (glibc keeps them
    otherwise, and the predictor would stay at its peak)."""
    predictor = getattr(model, "predictor", None)
    if predictor is not None:
        for name in ("batch", "results", "dataset"):
            if hasattr(predictor, name):
                setattr(predictor, name, None)
    if pixels >= TRIM_PIXELS:
        trim_heap()  # a few ms; the images were freed when their last reference went


_malloc_trim = None


def trim_heap():
    """glibc's malloc_trim(0); nothing where there is no glibc."""
    global _malloc_trim
    if _malloc_trim is None:
        try:
            import ctypes

            _malloc_trim = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _malloc_trim = False
    if _malloc_trim:
        _malloc_trim(0)
