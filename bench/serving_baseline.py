"""The baselines of bench/serving.sh.

`inprocess MODEL IMAGE SECONDS [decode]`: the best in-process Ultralytics
loop on this machine: one process with every core's torch threads, and one
process per core with one thread each; prints the better as JSON. The image
is decoded once. With `decode`: one process per core, each alternating a
pass on the decoded image with a pass that first decodes the JPEG's bytes,
as a server must for every request; prints what decoding costs as the
ratio of their mean times (alternating pass by pass keeps the machine's
drift out of it) and the img/s of the decoding passes.

`interleave MODEL IMAGE CONCURRENCY SECONDS ROUNDS PROCESSES THREADS NAME=URL...`:
(1) and each server, alternated: the loop of (1) in PROCESSES processes of
THREADS threads (kept loaded) runs for SECONDS, then closed-loop load at
CONCURRENCY goes to each URL (the image's bytes) for SECONDS, then the same
the other way round, ROUNDS times. This machine's speed drifts by 10-25%
over minutes; measurements seconds apart see nearly the same machine.
Prints each round's img/s, and each server's latencies over all rounds.

`fastapi MODEL PORT`: a seed-004 style server: FastAPI under uvicorn, one
worker, the model loaded once, `POST /predict` runs a per-request predict
(one at a time: the handler blocks its event loop)."""

import json
import multiprocessing as mp
import os
import sys
import time


def _loaded(model_path, image_path, threads):
    """The model with `threads` torch threads, warmed up on the decoded image."""
    import cv2
    import torch
    from ultralytics import YOLO

    torch.set_num_threads(threads)
    model = YOLO(model_path)
    image = cv2.imread(image_path)
    for _ in range(3):
        model.predict(image, verbose=False, imgsz=640)
    return model, image


def _loop(model_path, image_path, seconds, threads, out, decode=False):
    import cv2
    import numpy as np

    model, image = _loaded(model_path, image_path, threads)
    blob = np.frombuffer(open(image_path, "rb").read(), np.uint8)
    latencies, decoding, start = [], [], time.time()
    end = start + seconds
    while time.time() < end:
        t = time.perf_counter()
        model.predict(image, verbose=False, imgsz=640)
        latencies.append(time.perf_counter() - t)
        if decode:
            t = time.perf_counter()
            model.predict(cv2.imdecode(blob, cv2.IMREAD_COLOR), verbose=False, imgsz=640)
            decoding.append(time.perf_counter() - t)
    # Rated over the time it actually ran (its last pass ends after `end`).
    out.put((latencies, decoding) if decode else (latencies, time.time() - start))


def _worker(model_path, image_path, threads, commands, out):
    """A loop of (1) kept loaded: each command is a number of seconds to run
    for; answers (passes, seconds it actually ran)."""
    model, image = _loaded(model_path, image_path, threads)
    out.put("ready")
    while (seconds := commands.get()) is not None:
        passes, start = 0, time.time()
        while time.time() < start + seconds:
            model.predict(image, verbose=False, imgsz=640)
            passes += 1
        out.put((passes, time.time() - start))


def interleave(model_path, image_path, concurrency, seconds, rounds, processes, threads, servers):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from serving_load import measure

    body = open(image_path, "rb").read()
    spawn = mp.get_context("spawn")
    out = spawn.Queue()
    commands = [spawn.Queue() for _ in range(processes)]
    workers = [spawn.Process(target=_worker, args=(model_path, image_path, threads, q, out)) for q in commands]
    for w in workers:
        w.start()
    for _ in workers:
        assert out.get() == "ready"

    def local():
        for q in commands:
            q.put(seconds)
        return sum(n / elapsed for n, elapsed in (out.get() for _ in workers))

    names = ["inprocess"] + [name for name, _ in servers]
    urls = dict(servers)
    rows, latencies, errors = [], {name: [] for name in urls}, {name: 0 for name in urls}
    for index in range(rounds):
        # ABBA: the order turns round every other round, so a steady drift cancels.
        row = {}
        for name in (names if index % 2 == 0 else names[::-1]):
            if name == "inprocess":
                row[name] = local()
                continue
            result = measure(urls[name], body, concurrency, seconds, warmup=2.0)
            row[name] = result["img_s"]
            latencies[name] += result["latencies"]
            errors[name] += result["errors"]
        print(json.dumps(row), file=sys.stderr)
        rows.append(row)
    for q in commands:
        q.put(None)
    for w in workers:
        w.join()
    summary = {"rounds": rows, "seconds": seconds, "concurrency": concurrency}
    for name, values in latencies.items():
        values.sort()
        n = len(values)
        summary[name] = {"p50_ms": 1000 * values[n // 2] if n else None, "p99_ms": 1000 * values[min(n - 1, int(n * 0.99))] if n else None,
                         "errors": errors[name], "requests": n}
    print(json.dumps(summary))


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
        per_second = sum(len(r) / elapsed for r, elapsed in results)
        latencies = sorted(x for r, _ in results for x in r)
        row = {"layout": f"{processes} process(es) x {threads} thread(s)", "processes": processes, "threads": threads, "img_s": per_second,
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
    elif sys.argv[1] == "interleave":
        interleave(sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7]), int(sys.argv[8]),
                   [tuple(arg.split("=", 1)) for arg in sys.argv[9:]])
    else:
        fastapi_server(sys.argv[2], sys.argv[3])
