"""Closed-loop HTTP load for bench/serving.sh: CONCURRENCY clients, each
sending the image and waiting for the answer before sending again, for
SECONDS after a warm-up. Counted: the answers that arrive within the
window, whenever they were sent (at c=16, the 16 requests in flight when the
window opens are answered inside it; leaving them out undercounts by about
c/SECONDS img/s). Prints {img_s, p50_ms, p99_ms, errors} as JSON."""

import http.client
import json
import sys
import threading
import time
from urllib.parse import urlparse


def measure(url, body, concurrency, seconds, warmup=3.0, content_type="image/jpeg"):
    target = urlparse(url)
    path = target.path + (f"?{target.query}" if target.query else "")
    latencies, errors, lock = [], [0], threading.Lock()
    start_at = time.time() + warmup
    stop_at = start_at + seconds

    def client():
        connection = http.client.HTTPConnection(target.hostname, target.port, timeout=300)
        while True:
            t = time.perf_counter()
            if time.time() >= stop_at:
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
            if start_at <= time.time() <= stop_at:
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
    return {"img_s": n / seconds, "p50_ms": 1000 * latencies[n // 2] if n else None,
            "p99_ms": 1000 * latencies[min(n - 1, int(n * 0.99))] if n else None, "errors": errors[0], "requests": n,
            "latencies": latencies}


if __name__ == "__main__":
    result = measure(sys.argv[1], open(sys.argv[2], "rb").read(), int(sys.argv[3]), float(sys.argv[4]))
    del result["latencies"]
    print(json.dumps(result))
