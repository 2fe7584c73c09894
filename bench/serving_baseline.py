"""The baselines of bench/serving.sh.

`inprocess MODEL IMAGE SECONDS [decode]`: the best in-process Ultralytics
loop on this machine: one process with every core's torch threads, and one
process per core with one thread each; prints the better as JSON. The image
is decoded once. With `decode`: one process per core, each alternating a
pass on the decoded image with a pass that first decodes the JPEG's bytes,
as a server must for every request; prints what decoding costs as the
ratio of their mean times (alternating pass by pass keeps the machine's
drift out of it) and the img/s of the decoding passes.

`fastapi MODEL PORT`: a seed-004 style server: FastAPI under uvicorn, one
worker, the model loaded once, `POST /predict` runs a per-request predict
(one at a time: the handler blocks its event loop)."""

import json
import multiprocessing as mp
import os
import sys
import time


def _loop(model_path, image_path, seconds, threads, out, decode=False):
    import cv2
    import numpy as np
    import torch
    from ultralytics import YOLO

    torch.set_num_threads(threads)
    model = YOLO(model_path)
    image = cv2.imread(image_path)
    blob = np.frombuffer(open(image_path, "rb").read(), np.uint8)
    for _ in range(3):
        model.predict(image, verbose=False, imgsz=640)
    latencies, decoding, end = [], [], time.time() + seconds
    while time.time() < end:
        t = time.perf_counter()
        model.predict(image, verbose=False, imgsz=640)
        latencies.append(time.perf_counter() - t)
        if decode:
            t = time.perf_counter()
            model.predict(cv2.imdecode(blob, cv2.IMREAD_COLOR), verbose=False, imgsz=640)
            decoding.append(time.perf_counter() - t)
    out.put((latencies, decoding) if decode else latencies)


def inprocess(model_path, image_path, seconds, decode=False):
    cores = os.cpu_count() or 1
    best = None
    for processes, threads in ((cores, 1),) if decode else ((1, cores), (cores, 1)):
        queue = mp.get_context("spawn").Queue()
        workers = [mp.get_context("spawn").Process(target=_loop, args=(model_path, image_path, seconds, threads, queue, decode))
                   for _ in range(processes)]
        for w in workers:
            w.start()
        results = [queue.get() for _ in workers]
        for w in workers:
            w.join()
        if decode:
            once = [x for r in results for x in r[0]]
            each = [x for r in results for x in r[1]]
            cost = (sum(each) / len(each)) / (sum(once) / len(once))
            each.sort()
            print(json.dumps({"layout": f"{processes} process(es) x {threads} thread(s), alternating", "decode_cost": cost,
                              "img_s": processes * len(each) / sum(each), "p50_ms": 1000 * each[len(each) // 2],
                              "p99_ms": 1000 * each[min(len(each) - 1, int(len(each) * 0.99))]}))
            return
        per_second = sum(len(r) / seconds for r in results)
        latencies = sorted(x for r in results for x in r)
        row = {"layout": f"{processes} process(es) x {threads} thread(s)", "img_s": per_second,
               "p50_ms": 1000 * latencies[len(latencies) // 2], "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]}
        print(json.dumps(row), file=sys.stderr)
        if best is None or row["img_s"] > best["img_s"]:
            best = row
    print(json.dumps(best))


def fastapi_server(model_path, port):
    import cv2
    import numpy as np
    import uvicorn
    from fastapi import FastAPI, Request
    from ultralytics import YOLO

    model = YOLO(model_path)
    app = FastAPI()

    @app.get("/health")
    def health():
        return {"status": "ok"}

    @app.post("/predict")
    async def predict(request: Request):
        image = cv2.imdecode(np.frombuffer(await request.body(), np.uint8), cv2.IMREAD_COLOR)
        result = model.predict(image, verbose=False, imgsz=640)[0]
        return {"boxes": [{"class": int(c), "score": float(p), "xyxy": b} for b, c, p in
                          zip(result.boxes.xyxy.tolist(), result.boxes.cls.tolist(), result.boxes.conf.tolist())]}

    uvicorn.run(app, host="127.0.0.1", port=int(port), workers=1, log_level="warning")


if __name__ == "__main__":
    if sys.argv[1] == "inprocess":
        inprocess(sys.argv[2], sys.argv[3], float(sys.argv[4]), decode=sys.argv[5:] == ["decode"])
    else:
        fastapi_server(sys.argv[2], sys.argv[3])
