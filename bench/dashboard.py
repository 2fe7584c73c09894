"""The browser half of bench/dashboard.sh: headless Chromium (Debian's
chromium and chromedriver, driven by selenium) against the two servers
`yard-bench dashboard-server` starts (10 jobs: the baseline; JOBS jobs).
Usage: dashboard.py YARDBENCH JOBS EPOCHS RENDERS"""
import gzip
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "browser"))
from harness import browser, wait  # noqa: E402

WEB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "web")


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(q * (len(values) - 1))))]


def first_renders(driver, base, count):
    """Navigation start to the jobs page's first page of rows (the page's own mark), ms, each on a fresh load."""
    times = []
    for _ in range(count + 1):
        driver.get("about:blank")
        driver.get(base + "/jobs")
        wait(driver, lambda d: d.execute_script("return performance.getEntriesByName('jobs-rendered').length"), 60, "no first render")
        times.append(driver.execute_script("return performance.getEntriesByName('jobs-rendered')[0].startTime"))
    return times[1:]  # the first load fills the browser's cache of the page files


def event_to_point(driver, bench, base, side, epochs):
    """Records epochs on the server at 10 a second; for each, the ms from its event entering the log to its point on the job page."""
    driver.get(base + "/jobs/live-0")
    wait(driver, lambda d: d.execute_script("return !!document.querySelector('figure.chart') && document.querySelector('figure.chart').dataset.points !== undefined"), 60)
    time.sleep(1)  # the page follows the log from here
    driver.execute_script("""
        window.__drawn = {};
        const chart = document.querySelector('figure.chart');
        new MutationObserver(() => { const n = Number(chart.dataset.points); if (!(n in window.__drawn)) window.__drawn[n] = Date.now(); })
          .observe(chart, {attributes: true, attributeFilter: ['data-points']});""")
    entered = {}
    for n in range(1, epochs + 1):
        bench.stdin.write(f"epoch {side} {n}\n")
        bench.stdin.flush()
        words = bench.stdout.readline().split()
        entered[int(words[2])] = int(words[3])
        time.sleep(0.1)
    wait(driver, lambda d: d.execute_script(f"return {epochs} in window.__drawn"), 60, "the last point was not drawn")
    drawn = {int(k): v for k, v in driver.execute_script("return window.__drawn").items()}
    # Epochs come one at a time, so points n is drawn when epoch n's point is.
    return [drawn[n] - entered[n] for n in range(1, epochs + 1) if n in drawn]


def page_bytes():
    total = raw = 0
    for folder, _, files in os.walk(WEB):
        for name in files:
            if name.endswith((".js", ".css", ".html")):
                with open(os.path.join(folder, name), "rb") as f:
                    data = f.read()
                raw += len(data)
                total += len(gzip.compress(data, 9))
    return raw, total


def main():
    yardbench, jobs, epochs, renders = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    started = time.monotonic()
    bench = subprocess.Popen([yardbench, "dashboard-server", str(jobs)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
    ports = {}
    while len(ports) < 2:
        line = bench.stdout.readline()
        if not line:
            sys.exit("yard-bench dashboard-server ended before it served")
        name, port = line.split()
        ports[name] = f"http://127.0.0.1:{port}"
    print(f"stores generated and served in {time.monotonic() - started:.1f} s (10 jobs; {jobs} jobs)")
    driver = browser()
    try:
        results = {}
        for side in ("baseline", "scaled"):
            results[side] = (first_renders(driver, ports[side], renders), event_to_point(driver, bench, ports[side], side, epochs))
        for side, label in (("baseline", "10 jobs (baseline)"), ("scaled", f"{jobs} jobs")):
            render, points = results[side]
            print(f"{label:>18}: first render p50 {statistics.median(render):6.0f} ms  max {max(render):6.0f} ms ({len(render)} loads);"
                  f"  event -> point p50 {statistics.median(points):5.0f} ms  p99 {percentile(points, 0.99):5.0f} ms ({len(points)} epochs)")
        base_render, scaled_render = statistics.median(results["baseline"][0]), statistics.median(results["scaled"][0])
        base_point, scaled_point = statistics.median(results["baseline"][1]), statistics.median(results["scaled"][1])
        raw, zipped = page_bytes()
        print(f"ratios {jobs} jobs / 10 jobs: first render {scaled_render / base_render:.2f}x, event -> point p50 {scaled_point / max(1, base_point):.2f}x")
        print(f"page files: {raw} bytes, {zipped} gzipped")
        print("goals: first render <= 500 ms: " + ("met" if scaled_render <= 500 else "NOT met")
              + "; event -> point p50 <= 100 ms: " + ("met" if scaled_point <= 100 else "NOT met")
              + "; page files <= 250 KB gzipped: " + ("met" if zipped <= 250_000 else "NOT met"))
    finally:
        driver.quit()
        try:
            bench.stdin.write("quit\n")
            bench.stdin.flush()
            bench.wait(timeout=30)
        except Exception:
            bench.kill()


if __name__ == "__main__":
    main()
