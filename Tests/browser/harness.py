"""The browser tests' fixtures: a real `yard up` (YARD_BIN, the engine's
Python YARD_PYTHON) on 127.0.0.1 in a temp folder, and headless Chromium
driven by chromedriver (Debian's chromium and chromium-driver), with the
browser's console log kept and screenshots saved as test output."""
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = os.environ.get("YARD_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("YARD_CHROMEDRIVER", "/usr/bin/chromedriver")
# Screenshots: under the run's temp folder, and a copy where a person looks (YARD_SHOTS).
SHOTS = os.environ.get("YARD_SHOTS")


def require_env(name):
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(f"{name} is not set: run scripts/test.sh, or set {name} (see scripts/setup.sh --test)")
    return value


class Yard:
    """`yard up` on a free port with its own data folder; stopped by close()."""

    def __init__(self, folder, token=None, workers=1):
        self.folder = folder
        self.bin = require_env("YARD_BIN")
        self.python = require_env("YARD_PYTHON")
        self.token = token
        os.makedirs(folder, exist_ok=True)
        env = dict(os.environ, YARD_PYTHON=self.python)
        env.pop("YARD_TOKEN", None)
        if token:
            env["YARD_TOKEN"] = token
        self.log_path = os.path.join(folder, "yard-up.log")
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [self.bin, "up", "--port", "0", "--data-dir", os.path.join(folder, "data"), "--python", self.python,
             "--workers", str(workers), "--stop-grace", "30"],
            stdout=self.log, stderr=subprocess.STDOUT, env=env, cwd=folder)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with open(self.log_path) as f:
                text = f.read()
            found = re.search(r"serving http://127\.0\.0\.1:(\d+)", text)
            if found:
                self.port = int(found.group(1))
                self.base = f"http://127.0.0.1:{self.port}"
                return
            if self.process.poll() is not None:
                raise RuntimeError(f"yard up ended: {text[-2000:]}")
            time.sleep(0.1)
        with open(self.log_path) as f:
            raise RuntimeError(f"yard up did not serve in 120 s: {f.read()[-2000:]}")

    def request(self, method, path, body=None, headers=None, content_type="application/json"):
        headers = dict(headers or {})
        if self.token and "Cookie" not in headers:
            headers["Authorization"] = f"Bearer {self.token}"
        data = None
        if body is not None:
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            headers["Content-Type"] = content_type
        request = urllib.request.Request(self.base + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                text = response.read().decode()
                return response.status, (json.loads(text) if text and response.headers.get_content_type() == "application/json" else text), response.headers
        except urllib.error.HTTPError as error:
            text = error.read().decode()
            return error.code, text, error.headers

    def submit(self, yaml):
        status, body, _ = self.request("POST", "/api/jobs", yaml, content_type="application/yaml")
        if status != 201:
            raise RuntimeError(f"submit: {status} {body}")
        return body["id"]

    def job(self, id):
        return self.request("GET", f"/api/jobs/{id}")[1]

    def yard(self, *arguments):
        return subprocess.run([self.bin, *arguments], capture_output=True, text=True, timeout=300,
                              env=dict(os.environ, YARD_PYTHON=self.python))

    def close(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


def browser(width=1280, height=800):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     f"--window-size={width},{height}", "--disable-extensions", "--no-first-run"]:
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    return driver


def wait(driver, condition, timeout=120, message=""):
    """Waits for condition(driver) to be truthy (polled), returns its value."""
    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(lambda d: condition(d), message)


def images_painted(driver, selector, timeout=15):
    """Waits until every image of `selector` that is in the viewport has
    loaded and decoded and two frames have painted since, so a screenshot
    shows the images and not their placeholders. Returns how many there
    were; fails when one of them cannot be decoded (a broken image)."""
    before = driver.timeouts.script
    driver.set_script_timeout(timeout + 5)
    try:
        result = driver.execute_async_script("""
            const [selector, seconds, done] = arguments;
            const shown = [...document.querySelectorAll(selector)].filter((img) => {
              const box = img.getBoundingClientRect();
              return box.bottom > 0 && box.top < innerHeight && box.width > 0;
            });
            const pending = new Set(shown);
            const late = setTimeout(() => done({ count: shown.length, broken: 0, waiting: [...pending].map((img) => img.alt || img.src) }),
                                    seconds * 1000);
            Promise.all(shown.map((img) => img.decode().then(() => img.naturalWidth > 0, () => false).finally(() => pending.delete(img))))
              .then((ok) => requestAnimationFrame(() => requestAnimationFrame(() => {
                clearTimeout(late);
                done({ count: shown.length, broken: ok.filter((x) => !x).length, waiting: [] });
              })));
        """, selector, timeout)
    finally:
        driver.set_script_timeout(before)
    if result["waiting"]:
        raise AssertionError(f"images of {selector} in view not loaded after {timeout} s: {result['waiting']}")
    if result["broken"]:
        raise AssertionError(f"{result['broken']} of {result['count']} images of {selector} in view did not load")
    return result["count"]


def console_errors(driver):
    return [entry for entry in driver.get_log("browser") if entry.get("level") == "SEVERE"]


def emulate(driver, width, height, scheme):
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600})
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": scheme}]})


def screenshot(driver, folder, name):
    """Saves a full-viewport PNG under folder (and YARD_SHOTS); returns its path."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, name + ".png")
    driver.save_screenshot(path)
    if SHOTS:
        os.makedirs(SHOTS, exist_ok=True)
        shutil.copy(path, os.path.join(SHOTS, name + ".png"))
    return path


def temp_folder(name):
    return tempfile.mkdtemp(prefix=f"yard-browser-{name}-")
