"""Closed-loop HTTP load for bench/serving.sh: CONCURRENCY clients, each
sending the image and waiting for the answer before sending again, for
SECONDS after a warm-up. Prints {img_s, p50_ms, p99_ms, errors} as JSON."""

import http.client
import json
import sys
import threading
import time
from urllib.parse import urlparse


def main(url, image_path, concurrency, seconds, content_type="image/jpeg"):
    target = urlparse(url)
    body = open(image_path, "rb").read()
    path = target.path + (f"?{target.query}" if target.query else "")
    latencies, errors, lock = [], [0], threading.Lock()
    start_at, stop_at = time.time() + 3, time.time() + 3 + seconds

    def client():
        connection = http.client.HTTPConnection(target.hostname, target.port, timeout=300)
        while True:
            t = time.perf_counter()
            now = time.time()
            if now >= stop_at:
                return
            try:
                connection.request("POST", path, body=body, headers={"Content-Type": content_type})
                response = connection.getresponse()
                response.read()
                ok = response.status == 200
            except Exception:
                ok = False
                connection = http.client.HTTPConnection(target.hostname, target.port, timeout=300)
            elapsed = time.perf_counter() - t
            # Counted: sent after the warm-up, answered within the window.
            if now >= start_at and time.time() <= stop_at:
                with lock:
                    if ok:
                        latencies.append(elapsed)
                    else:
                        errors[0] += 1

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    latencies.sort()
    n = len(latencies)
    print(json.dumps({"img_s": n / seconds, "p50_ms": 1000 * latencies[n // 2] if n else None,
                      "p99_ms": 1000 * latencies[min(n - 1, int(n * 0.99))] if n else None, "errors": errors[0], "requests": n}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
