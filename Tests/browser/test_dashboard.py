"""The dashboard in a real browser (headless Chromium) against a live
`yard up`: a job appears and changes state without a reload, a training's
chart gains a point per epoch while its page is open, hostile names and log
lines render as text, sign-in gives an HttpOnly SameSite=Strict cookie, a
forged cross-site change is refused, and the console stays clean.
Screenshots of every page (1280x800 and 390x844, light and dark) are saved
in the test's temp folder (printed) and in $YARD_SHOTS when set.
Run: $YARD_SERVICES/bin/python -m unittest discover -s Tests/browser -v"""
import http.server
import json
import os
import threading
import time
import unittest
import urllib.request

from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By

from harness import Yard, browser, console_errors, emulate, images_painted, screenshot, temp_folder, wait

HOSTILE = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2">'
# A dataset folder whose name Ultralytics prints in the job's log (no "/" possible in a name).
HOSTILE_FOLDER = "demo <img src=x onerror=window.__xss=3>"
SIZES = [(1280, 800), (390, 844)]
SCHEMES = ["light", "dark"]


def job_yaml(data, epochs, experiment="browser"):
    quoted = experiment.replace("\\", "\\\\").replace('"', '\\"')
    return (f'model: yolov8n.yaml\nexperiment: "{quoted}"\nmetadata: {{note: "{quoted}"}}\n'
            f'train: {{data: "{data}", epochs: {epochs}, imgsz: 32, batch: 8, workers: 0, plots: false}}\n')


def sweep_yaml(data, experiment):
    quoted = experiment.replace("\\", "\\\\").replace('"', '\\"')
    return (f'model: yolov8n.yaml\nexperiment: "{quoted}"\n'
            f'train: {{data: "{data}", epochs: 1, imgsz: 32, batch: 8, workers: 0, plots: false, optimizer: SGD}}\n'
            'sweeper: {n_trials: 3, max_concurrent: 1, sampler: RandomSampler, seed: 7,\n'
            '  search_space: {train: {lr0: [loguniform, 0.0001, 0.1], momentum: [uniform, 0.6, 0.98]}}}\n')


def text(driver, script):
    return driver.execute_script(f"const e = {script}; return e ? e.textContent : null;")


class LiveTraining(unittest.TestCase):
    """One `yard up` with one local worker and a real tiny training."""

    @classmethod
    def setUpClass(cls):
        cls.folder = temp_folder("live")
        print(f"\n[browser] output (screenshots, yard log) in {cls.folder}", flush=True)
        cls.yard = Yard(cls.folder, workers=1)
        demo = os.path.join(cls.folder, HOSTILE_FOLDER)
        made = cls.yard.yard("datasets", "demo", demo, "--kind", "detect", "--train", "16", "--val", "8")
        if made.returncode != 0:
            raise RuntimeError(f"yard datasets demo: {made.stdout}{made.stderr}")
        cls.data = os.path.join(demo, "data.yaml")
        cls.driver = browser()

    @classmethod
    def tearDownClass(cls):
        cls.driver.quit()
        cls.yard.close()

    def test_a_training_shows_live_on_the_jobs_and_job_pages(self):
        d, yard = self.driver, self.yard
        d.get(yard.base + "/jobs")
        wait(d, lambda d: text(d, "document.querySelector('main h1')") == "Jobs", 30, "the jobs page did not render")
        d.execute_script("window.__marker = 42")

        # A new job appears without a reload, and its row follows the training.
        blocker = yard.submit(job_yaml(self.data, 1000))  # stopped by the test
        row = lambda id: f"document.querySelector('tr[data-job=\"{id}\"]')"
        wait(d, lambda d: d.execute_script(f"return !!{row(blocker)}"), 30, "the submitted job did not appear")
        first = d.execute_script(f"return {row(blocker)}.dataset.state")
        wait(d, lambda d: d.execute_script(f"return {row(blocker)}.dataset.state") == "running"
             and not (text(d, f"{row(blocker)}.querySelector('td.epoch')") or "").startswith("0/"), 300,
             "the row did not show the running job's first epoch")
        self.assertIn(first, ("queued", "running"))

        # Two jobs wait behind it; the Stop button of one stops it, and its row says so.
        job = yard.submit(job_yaml(self.data, 4, experiment=HOSTILE))
        other = yard.submit(job_yaml(self.data, 1))
        wait(d, lambda d: d.execute_script(f"return {row(other)} && {row(other)}.dataset.state") == "queued", 30, "the third job did not appear queued")
        self.assertIn(HOSTILE, text(d, f"{row(job)}.querySelector('.sub')"), "the experiment is shown as text")
        d.find_element(By.CSS_SELECTOR, f'tr[data-job="{other}"] button[data-action="stop"]').click()
        wait(d, lambda d: d.execute_script(f"return {row(other)}.dataset.state") == "stopped", 60, "the stopped job's row did not change")
        self.assertEqual(yard.job(other)["state"], "stopped")

        # The waiting job's page (by its link, no reload) gains a point per epoch once it trains.
        d.find_element(By.CSS_SELECTOR, f'tr[data-job="{job}"] a.job-link').click()
        wait(d, lambda d: d.execute_script("return document.querySelector('.job-header')?.dataset.state") == "queued", 30, "no job page")
        d.execute_script("""
            const chart = document.querySelector('figure.chart');
            window.__points = [chart.dataset.points];
            new MutationObserver((records) => { for (const r of records) window.__points.push(r.target.dataset.points === r.oldValue ? null : r.oldValue); })
              .observe(chart, {attributes: true, attributeFilter: ['data-points'], attributeOldValue: true});""")
        # The log is paused before the job starts: lines wait until Follow is pressed.
        d.find_element(By.CSS_SELECTOR, "section.logs button[aria-pressed]").click()
        shown = d.execute_script("return document.querySelectorAll('pre.log .line').length")
        self.assertEqual(yard.request("POST", f"/api/jobs/{blocker}/stop")[0], 200)
        wait(d, lambda d: d.execute_script("return document.querySelector('.job-header')?.dataset.state") == "succeeded", 600,
             "the job page did not show the job succeeded")
        wait(d, lambda d: d.execute_script("return document.querySelector('figure.chart')?.dataset.points") == "4", 30, "the chart has not 4 points")
        values = [int(v) for v in d.execute_script("return window.__points.concat([document.querySelector('figure.chart').dataset.points])") if v is not None]
        distinct = [v for i, v in enumerate(values) if i == 0 or v != values[i - 1]]
        self.assertEqual(distinct, [0, 1, 2, 3, 4], f"points went {values}: one per epoch, each as it landed")
        self.assertEqual(d.execute_script("return window.__marker"), 42, "the page was reloaded")
        self.assertTrue(d.execute_script("return !!document.querySelector('.uplot canvas')"), "uPlot drew no canvas")
        stats = d.execute_script("return [...document.querySelectorAll('.metric-stats tbody th')].map(e => e.textContent)")
        self.assertTrue(any("mAP50" in s for s in stats), stats)

        self.assertEqual(d.execute_script("return document.querySelectorAll('pre.log .line').length"), shown, "lines were added while paused")
        status = "document.querySelector('section.logs [role=status]')"
        wait(d, lambda d: "paused (" in (text(d, status) or "") and not (text(d, status) or "").endswith("(0 new)"), 30, "no count of waiting lines")
        d.find_element(By.CSS_SELECTOR, "section.logs button[aria-pressed]").click()
        self.assertGreater(d.execute_script("return document.querySelectorAll('pre.log .line').length"), shown)

        # Hostile text: the experiment, metadata and the log line with the folder's name are text.
        wait(d, lambda d: "onerror=window.__xss=3" in (text(d, "document.querySelector('pre.log')") or ""), 60,
             "the log does not show the dataset folder's name")
        self.assertIn(HOSTILE, text(d, "document.querySelector('.job-header')"))
        d.find_element(By.CSS_SELECTOR, ".config-box summary").click()
        self.assertIn("<script>window.__xss=1</script>", text(d, "document.querySelector('pre.config')"))
        self.assertIsNone(d.execute_script("return window.__xss"))
        self.assertEqual(d.execute_script("return document.querySelectorAll('main script, main img').length"), 0)
        with self.assertRaises(NoAlertPresentException):
            d.switch_to.alert.text
        self.assertEqual(console_errors(d), [])

        # Back to the list by the navigation: the job succeeded, the first one stopped.
        d.find_element(By.CSS_SELECTOR, 'nav a[href="/jobs"]').click()
        wait(d, lambda d: d.execute_script(f"return {row(job)} && {row(job)}.dataset.state") == "succeeded", 30, "the list does not show it succeeded")
        self.assertEqual(d.execute_script(f"return {row(blocker)}.dataset.state"), "stopped")
        self.assertEqual(d.execute_script("return window.__marker"), 42)
        self.__class__.trained = job

    def test_ab_a_sweep_page_draws_its_trials_and_brushing_filters_them(self):
        d, yard = self.driver, self.yard
        status, body, _ = yard.request("POST", "/api/sweeps", sweep_yaml(self.data, HOSTILE), content_type="application/yaml")
        self.assertEqual(status, 201, body)
        sweep = body["id"]
        emulate(d, 1280, 800, "light")
        d.get(yard.base + "/sweeps")
        link = f'a.row-link[href="/sweeps/{sweep}"]'
        wait(d, lambda d: d.execute_script(f"return !!document.querySelector('{link}')"), 30, "the sweeps table has no link to the sweep")
        d.execute_script("window.__marker = 7")
        d.find_element(By.CSS_SELECTOR, link).click()
        # Opened before its trials end: the page follows them to the end.
        wait(d, lambda d: d.execute_script("return document.querySelector('.sweep-header') && document.querySelector('.sweep-header').dataset.state") == "finished",
             900, "the sweep page did not show the sweep finished")
        wait(d, lambda d: d.execute_script("return document.querySelectorAll('.trials-table tbody tr').length") == 3, 30, "not 3 trial rows")
        self.assertEqual(d.execute_script("return window.__marker"), 7, "the page was reloaded")
        api = yard.request("GET", f"/api/sweeps/{sweep}")[1]
        states = d.execute_script("return [...document.querySelectorAll('.trials-table tbody tr')].map(r => r.dataset.state)")
        self.assertEqual(states, [t.get("told") or t.get("state") for t in sorted(api["trial_list"], key=lambda t: t["number"])])
        # Every trial is a line across the search space, and each parameter has its scatter.
        wait(d, lambda d: d.execute_script("return document.querySelectorAll('figure.parallel polyline').length") == 3, 30, "not 3 lines")
        labels = d.execute_script("return [...document.querySelectorAll('figure.parallel .axis-label')].map(e => e.textContent)")
        self.assertEqual(labels[:2], ["train.lr0", "train.momentum"], labels)
        self.assertEqual(d.execute_script("return document.querySelectorAll('figure.scatter').length"), 2)
        self.assertEqual(d.execute_script("return document.querySelector('figure.chart[aria-label=\"Best so far\"]').dataset.points"), "3")
        self.assertIn(HOSTILE, text(d, "document.querySelector('.sweep-header')"), "the experiment is shown as text")
        self.assertIsNone(d.execute_script("return window.__xss"))

        # Brushing the top of the lr0 axis leaves the trials with the largest rates; clearing brings all back.
        lr = {str(t["number"]): t["params"]["train.lr0"] for t in api["trial_list"]}
        hit = d.find_element(By.CSS_SELECTOR, 'figure.parallel rect.hit[data-key="train.lr0"]')
        height = hit.size["height"]
        ActionChains(d).move_to_element_with_offset(hit, 0, -height // 2 + 2).click_and_hold() \
            .move_by_offset(0, height // 5).move_by_offset(0, 2).release().perform()
        shown = d.execute_script("return [...document.querySelectorAll('.trials-table tbody tr')].map(r => r.dataset.trial)")
        self.assertIn(max(lr, key=lr.get), shown)
        self.assertNotIn(min(lr, key=lr.get), shown)
        self.assertLess(len(shown), 3)
        self.assertEqual(d.execute_script("return document.querySelectorAll('figure.parallel polyline.dim').length"), 3 - len(shown))
        d.find_element(By.CSS_SELECTOR, "figure.parallel figcaption button").click()
        self.assertEqual(d.execute_script("return document.querySelectorAll('.trials-table tbody tr').length"), 3)
        screenshot(d, os.path.join(self.folder, "shots"), "sweep-brushed-1280x800-light")
        self.assertEqual(console_errors(d), [])
        self.__class__.sweep = sweep
        self.__class__.trial_job = next(t["job_id"] for t in api["trial_list"] if t.get("told") == "succeeded")

    def test_b_every_page_in_both_themes_and_sizes(self):
        d, yard = self.driver, self.yard
        job = getattr(self.__class__, "trained", None)
        pages = [("jobs", "/jobs"), ("sweeps", "/sweeps"), ("models", "/models"), ("datasets", "/datasets"), ("workers", "/workers")]
        sweep = getattr(self.__class__, "sweep", None)
        if sweep:
            pages.insert(2, ("sweep", f"/sweeps/{sweep}"))
        if job:
            pages.insert(1, ("job", f"/jobs/{job}"))
            if getattr(self.__class__, "plotted", None):
                # Its top; test_aa's job-plots-* and job-lineage-* shots are scrolled to those parts.
                pages.insert(2, ("job-plotted", f"/jobs/{self.__class__.plotted}"))
            pages.insert(-2, ("model", "/models/browser-model"))
            trial = getattr(self.__class__, "trial_job", None)
            if trial:
                pages.insert(2, ("compare", f"/compare?jobs={job},{trial}"))
            # Something in the tables: the trained job as a model version, the demo data as a dataset.
            status, body, _ = yard.request("POST", "/api/models", {"job_id": job, "name": "browser-model", "alias": "production"})
            self.assertIn(status, (200, 201), body)
            status, body, _ = yard.request("POST", "/api/datasets", {"name": "browser-demo", "source": os.path.dirname(self.data)})
            self.assertEqual(status, 200, body)
            self.assertIn('"added"', body)
        shots = []
        for scheme in SCHEMES:
            for width, height in SIZES:
                emulate(d, width, height, scheme)
                for name, path in pages:
                    d.get(yard.base + path)
                    wait(d, lambda d: d.execute_script("return !!document.querySelector('main h1') && ![...document.querySelectorAll('.status')].some(e => e.textContent === 'Loading…')"), 30)
                    if name == "job":
                        wait(d, lambda d: d.execute_script("return document.querySelector('.uplot canvas') && document.querySelector('pre.log .line')"), 60)
                    if name == "jobs":
                        wait(d, lambda d: d.execute_script("return !!document.querySelector('tbody tr')"), 30)
                        # Every job id on one line, at any width (on a phone they broke mid-word in a narrow column).
                        broken = d.execute_script("return [...document.querySelectorAll('tbody .job-link')].filter(a => a.getClientRects().length > 1).map(a => a.textContent)")
                        self.assertEqual(broken, [], f"job ids wrapped at {width} px")
                    if name == "sweep":
                        wait(d, lambda d: d.execute_script("return document.querySelectorAll('figure.parallel polyline').length === 3 && !!document.querySelector('.uplot canvas')"), 30)
                    if name == "compare":
                        wait(d, lambda d: d.execute_script("return document.querySelectorAll('.uplot canvas').length === 2 && !!document.querySelector('table.diff')"), 30)
                    if name == "model":
                        wait(d, lambda d: d.execute_script("return !!document.querySelector('table.versions tbody tr')"), 30)
                    error = text(d, "document.querySelector('.status.error')")
                    self.assertIsNone(error, f"{path}: {error}")
                    wide = d.execute_script("return document.documentElement.scrollWidth")
                    self.assertLessEqual(wide, width + 1, f"{path} at {width} px scrolls sideways ({wide} px)")
                    shots.append(screenshot(d, os.path.join(self.folder, "shots"), f"{name}-{width}x{height}-{scheme}"))
        print(f"\n[browser] {len(shots)} screenshots in {os.path.dirname(shots[0])}", flush=True)
        self.assertEqual(console_errors(d), [])


    def test_bb_promote_shows_the_candidate_against_the_holder_then_moves_the_alias(self):
        d, yard = self.driver, self.yard
        trial = getattr(self.__class__, "trial_job", None)
        if not getattr(self.__class__, "trained", None) or not trial:
            self.fail("needs the training and the sweep of the tests before it")
        status, body, _ = yard.request("POST", "/api/models", {"job_id": trial, "name": "browser-model"})
        self.assertIn(status, (200, 201), body)
        candidate = body["version"]
        d.get(yard.base + "/models")
        wait(d, lambda d: d.execute_script("return !!document.querySelector('a.row-link[href=\"/models/browser-model\"]')"), 30, "no link to the model")
        d.find_element(By.CSS_SELECTOR, 'a.row-link[href="/models/browser-model"]').click()
        row = f'table.versions tr[data-version="{candidate}"]'
        wait(d, lambda d: d.execute_script(f"return !!document.querySelector('{row}')"), 30, "no row for the new version")
        self.assertEqual(text(d, 'document.querySelector(\'.aliases li[data-alias="production"] .chip\')'), "production → v1")
        d.find_element(By.CSS_SELECTOR, f'{row} button[data-action="promote"]').click()
        # The dialog compares first: the holder's and the candidate's metrics, and the config values that differ (the trial's lr0).
        wait(d, lambda d: d.execute_script("return !!document.querySelector('dialog.promote[open] table.diff tbody tr')"), 30, "no config diff")
        keys = d.execute_script("return [...document.querySelectorAll('dialog.promote table.diff tbody th')].map(e => e.textContent)")
        self.assertIn("train.lr0", keys)
        self.assertNotIn("train.imgsz", keys, "identical values are hidden")
        self.assertGreater(d.execute_script("return document.querySelectorAll('dialog.promote table.deltas tbody tr').length"), 0)
        self.assertIn("production is on v1", text(d, "document.querySelector('dialog.promote .comparison')"))
        for scheme in SCHEMES:
            for width, height in SIZES:
                emulate(d, width, height, scheme)
                screenshot(d, os.path.join(self.folder, "shots"), f"promote-{width}x{height}-{scheme}")
        emulate(d, 1280, 800, "light")
        d.find_element(By.CSS_SELECTOR, "dialog.promote button[type=submit]").click()
        wait(d, lambda d: text(d, 'document.querySelector(\'.aliases li[data-alias="production"] .chip\')') == f"production → v{candidate}", 60,
             "the page does not show the alias moved")
        self.assertEqual(yard.request("GET", "/api/models/browser-model/aliases/production")[1]["version"], candidate)
        # Roll back: the alias goes back to v1, and the moves list both.
        d.find_element(By.CSS_SELECTOR, '.aliases li[data-alias="production"] button[data-action="rollback"]').click()
        wait(d, lambda d: text(d, 'document.querySelector(\'.aliases li[data-alias="production"] .chip\')') == "production → v1", 60, "no rollback shown")
        self.assertGreaterEqual(d.execute_script("return document.querySelectorAll('table.history tbody tr').length"), 3)
        self.assertEqual(console_errors(d), [])

    def test_bc_compare_overlays_two_runs_and_shows_their_differing_config(self):
        d, yard = self.driver, self.yard
        trained, trial = getattr(self.__class__, "trained", None), getattr(self.__class__, "trial_job", None)
        if not trained or not trial:
            self.fail("needs the training and the sweep of the tests before it")
        emulate(d, 1280, 800, "light")
        d.get(yard.base + "/jobs")
        wait(d, lambda d: d.execute_script(f"return !!document.querySelector('input[data-compare=\"{trial}\"]')"), 30, "no box to tick")
        self.assertFalse(d.find_element(By.ID, "compare").is_enabled(), "Compare needs two runs")
        for id in (trained, trial):
            d.find_element(By.CSS_SELECTOR, f'input[data-compare="{id}"]').click()
        d.find_element(By.ID, "compare").click()
        wait(d, lambda d: d.execute_script("return location.pathname") == "/compare", 30, "Compare did not open")
        shared = d.current_url
        self.assertIn(f"jobs={trained},{trial}", shared.replace("%2C", ","))
        for visit in ("by the button", "by the shared link"):
            if visit == "by the shared link":
                d.get(shared)
            wait(d, lambda d: d.execute_script("return document.querySelectorAll('.uplot canvas').length") == 2, 30, f"no curves ({visit})")
            self.assertEqual(d.execute_script("return [...document.querySelectorAll('ul.runs li')].map(e => e.dataset.job)"), [trained, trial])
            # The metric chart has a series per run and a point per epoch of the longer run (4).
            self.assertEqual(d.execute_script("return document.querySelector('figure.chart').dataset.points"), "4")
            keys = d.execute_script("return [...document.querySelectorAll('table.diff tbody tr')].map(e => e.dataset.key)")
            for differing in ("train.epochs", "train.optimizer", "metadata.note"):
                self.assertIn(differing, keys)
            self.assertNotIn("train.imgsz", keys, "identical values are hidden")
            cells = d.execute_script("return [...document.querySelectorAll('table.compare-metrics tbody tr:first-child td')].map(e => e.textContent)")
            self.assertEqual(len(cells), 2, cells)
            self.assertTrue(all("best" in c for c in cells), cells)
            # Side by side: a run's cell sits beside the other's, not under it (a stray class once stacked them).
            tops = d.execute_script("return [...document.querySelectorAll('table.compare-metrics tbody tr:first-child > *')].map(e => Math.round(e.getBoundingClientRect().top))")
            self.assertEqual(len(set(tops)), 1, tops)
        d.find_element(By.ID, "hide-same").click()
        self.assertIn("train.imgsz", d.execute_script("return [...document.querySelectorAll('table.diff tbody tr')].map(e => e.dataset.key)"))
        # The legend toggles a run off (uPlot's legend), and the hostile experiment is text.
        self.assertIn(HOSTILE, text(d, "document.querySelector('table.diff')"))
        self.assertIsNone(d.execute_script("return window.__xss"))
        d.find_element(By.CSS_SELECTOR, "figure.chart .u-legend .u-series:nth-child(2)").click()
        self.assertIn("u-off", d.find_element(By.CSS_SELECTOR, "figure.chart .u-legend .u-series:nth-child(2)").get_attribute("class"))
        # The two runs' logs: what one did and the other did not (the sweep's SGD against the other's automatic choice).
        def log_diff():
            d.find_element(By.ID, "log-diff").click()
            wait(d, lambda d: d.execute_script("return !!document.querySelector('.log-diff-box pre.diff-lines') && !document.getElementById('log-diff').disabled"), 60, "no log diff")
            return d.execute_script("return [...document.querySelectorAll('.diff-lines .line')].map(e => [e.className.split(' ')[1], e.textContent])")
        masked = log_diff()
        changed = [t for kind, t in masked if kind in ("add", "del")]
        self.assertTrue(any(t.startswith("- ") for t in changed) and any(t.startswith("+ ") for t in changed), changed[:20])
        self.assertTrue(any("optimizer" in t.lower() for t in changed), changed[:40])
        left, right = (yard.request("GET", f"/api/jobs/{id}/logs")[1].splitlines() for id in (trained, trial))
        self.assertTrue(all(t[2:] in left for kind, t in masked if kind == "del"), "a removed line is the left log's")
        self.assertTrue(all(t[2:] in right for kind, t in masked if kind == "add"), "an added line is the right log's")
        d.find_element(By.ID, "ignore-numbers").click()
        exact = log_diff()
        self.assertGreaterEqual(len([1 for kind, _ in exact if kind != "same"]), len(changed), "masking numbers can only hide differences")
        self.assertIsNone(d.execute_script("return window.__xss"))
        # The shot shows the diff itself (it showed the config table above it).
        d.execute_script("document.querySelector('.diff-lines .line.add, .diff-lines .line.del').scrollIntoView({block: 'center'})")
        screenshot(d, os.path.join(self.folder, "shots"), "compare-logs-1280x800-light")
        d.get(yard.base + "/compare?jobs=" + trained)
        wait(d, lambda d: "Pick 2 to 10 jobs" in (text(d, "document.querySelector('main .status')") or ""), 30, "one run is not refused")
        self.assertEqual(console_errors(d), [])

    def test_bd_the_playground_draws_boxes_for_a_trained_model(self):
        d, yard = self.driver, self.yard
        if not getattr(self.__class__, "trained", None):
            self.fail("needs the training of the test before it")
        image = os.path.join(os.path.dirname(self.data), "images", "val")
        image = os.path.join(image, sorted(os.listdir(image))[0])
        emulate(d, 1280, 800, "light")
        d.get(yard.base + "/models/browser-model")
        wait(d, lambda d: d.execute_script("return !!document.querySelector('a.try')"), 30, "no link to the playground")
        d.find_element(By.CSS_SELECTOR, "a.try").click()
        wait(d, lambda d: d.execute_script("return document.getElementById('pg-model') && document.getElementById('pg-model').value") == "browser-model", 30, "the model is not chosen")
        # The lowest confidence: a model trained 4 epochs on 16 tiny images finds little above the default.
        d.execute_script("const c = document.getElementById('pg-conf'); c.value = '0.001'; c.dispatchEvent(new Event('input'));")
        d.find_element(By.ID, "pg-file").send_keys(image)
        wait(d, lambda d: d.execute_script("return document.querySelector('figure.prediction') && document.querySelector('figure.prediction').dataset.boxes"), 300,
             "no prediction drawn")
        count = int(d.execute_script("return document.querySelector('figure.prediction').dataset.boxes"))
        self.assertEqual(d.execute_script("return document.querySelectorAll('figure.prediction svg.boxes rect.box').length"), count)
        # The same image through the API at the same settings finds as many boxes.
        with open(image, "rb") as f:
            body = f.read()
        request = urllib.request.Request(f"{yard.base}/api/predict/browser-model?alias=production&conf=0.001&iou=0.7", data=body,
                                         headers={"Content-Type": "image/jpeg"}, method="POST")
        with urllib.request.urlopen(request, timeout=120) as response:
            answer = json.loads(response.read())
        self.assertEqual(len(answer["images"][0]["boxes"]), count)
        self.assertGreater(count, 0, "no box at confidence 0.001")
        labels = d.execute_script("return [...document.querySelectorAll('figure.prediction .box-label')].map(e => e.textContent)")
        self.assertEqual(sorted(l.rsplit(" ", 1)[0] for l in labels), sorted(b["name"] for b in answer["images"][0]["boxes"]), labels)
        # A second version beside the first, on the same image.
        d.execute_script("const s = document.getElementById('pg-beside'); s.value = s.options[s.options.length - 1].value; s.dispatchEvent(new Event('change'));")
        wait(d, lambda d: d.execute_script("return document.querySelectorAll('figure.prediction[data-boxes]').length") == 2, 300, "no second panel")
        for scheme in SCHEMES:
            for width, height in SIZES:
                emulate(d, width, height, scheme)
                wide = d.execute_script("return document.documentElement.scrollWidth")
                self.assertLessEqual(wide, width + 1, f"the playground at {width} px scrolls sideways ({wide} px)")
                screenshot(d, os.path.join(self.folder, "shots"), f"playground-{width}x{height}-{scheme}")
        self.assertEqual(console_errors(d), [])

    def test_be_a_dataset_page_shows_its_versions_splits_classes_and_report(self):
        d, yard = self.driver, self.yard
        status, body, _ = yard.request("GET", "/api/datasets/browser-demo")
        self.assertEqual(status, 200, body)
        version = body["versions"][0]
        emulate(d, 1280, 800, "light")
        d.get(yard.base + "/datasets")
        link = 'a.row-link[href="/datasets/browser-demo"]'
        wait(d, lambda d: d.execute_script(f"return !!document.querySelector('{link}')"), 30, "no link to the dataset")
        d.find_element(By.CSS_SELECTOR, link).click()
        section = f'section.dataset-version[data-version="{version["number"]}"]'
        wait(d, lambda d: d.execute_script(f"return !!document.querySelector('{section}')"), 30, "no version section")
        self.assertEqual(text(d, f"document.querySelector('{section} .hash')"), version["id"], "the DVC hash")
        for split, counts in version["splits"].items():
            column = d.execute_script(f"return [...document.querySelectorAll('{section} table.splits thead th')].map(e => e.textContent).indexOf('{split}')")
            self.assertGreater(column, 0, split)
            shown = d.execute_script(f"return document.querySelector('{section} table.splits tr[data-row=\"images\"]').children[{column}].textContent")
            self.assertEqual(shown, str(counts["images"]), split)
        self.assertEqual(d.execute_script(f"return [...document.querySelectorAll('{section} tr[data-class] th')].map(e => e.textContent)"), version["classes"])
        # The source names the hostile folder: text, never markup.
        self.assertIn("onerror=window.__xss=3", text(d, f"document.querySelector('{section} .facts')"))
        self.assertIsNone(d.execute_script("return window.__xss"))
        d.find_element(By.CSS_SELECTOR, f"{section} details.report summary").click()
        report = yard.request("GET", f"/api/datasets/browser-demo/versions/{version['number']}/report")[1]
        if report["problems"]:
            wait(d, lambda d: d.execute_script(f"return document.querySelectorAll('{section} table.problems tbody tr').length") == min(1000, len(report["problems"])), 30, "problems not listed")
        else:
            wait(d, lambda d: "No problems in" in (text(d, f"document.querySelector('{section} details.report')") or ""), 30, "no report shown")
        for scheme in SCHEMES:
            for width, height in SIZES:
                emulate(d, width, height, scheme)
                wide = d.execute_script("return document.documentElement.scrollWidth")
                self.assertLessEqual(wide, width + 1, f"the dataset page at {width} px scrolls sideways ({wide} px)")
                screenshot(d, os.path.join(self.folder, "shots"), f"dataset-{width}x{height}-{scheme}")
        self.assertEqual(console_errors(d), [])

    def test_aa_a_job_page_shows_plots_artifacts_lineage_searches_its_log_and_clones(self):
        d, yard = self.driver, self.yard
        # Ultralytics' plots on: results.png, the confusion matrix and the PR/F1 curves are drawn after the run.
        job = yard.submit(job_yaml(self.data, 1, experiment="plotted").replace("plots: false", "plots: true"))
        emulate(d, 1280, 800, "light")
        d.get(f"{yard.base}/jobs/{job}")
        wait(d, lambda d: d.execute_script("return document.querySelector('.job-header')?.dataset.state") == "succeeded", 600, "the job did not succeed")
        wait(d, lambda d: d.execute_script("return document.querySelectorAll('.plots img').length") > 0, 30, "no plot shown")
        names = d.execute_script("return [...document.querySelectorAll('.plots figcaption')].map(e => e.textContent)")
        self.assertIn("results.png", names)
        self.assertTrue(any("confusion_matrix" in n for n in names), names)
        wait(d, lambda d: d.execute_script("return [...document.querySelectorAll('.plots img')].every(i => i.complete && i.naturalWidth > 0)"), 60,
             "a plot did not load")
        # Every artifact is a link that downloads the stored bytes.
        links = d.execute_script("return [...document.querySelectorAll('table.artifacts a')].map(a => [a.textContent, a.getAttribute('href')])")
        self.assertIn("weights/best.pt", [name for name, _ in links])
        stored = {a["key"].split("/", 1)[1]: a["size"] for a in yard.job(job)["artifacts"]}
        self.assertEqual(sorted(name for name, _ in links), sorted(stored))
        href = dict(links)["weights/best.pt"]
        size = d.execute_script("return fetch(arguments[0]).then(r => r.ok ? r.arrayBuffer().then(b => b.byteLength) : -r.status)", href)
        self.assertEqual(size, stored["weights/best.pt"])
        # Lineage: the DVC hash of the data it trained on and the engine's versions.
        wait(d, lambda d: d.execute_script("return !document.querySelector('section.lineage-box').hidden"), 30, "no lineage")
        lineage = yard.request("GET", f"/api/lineage/{job}")[1]
        self.assertIn(lineage["dataset"]["hash"], text(d, "document.querySelector('section.lineage-box')"))
        self.assertIn("ultralytics", text(d, "document.querySelector('section.lineage-box')"))
        # The log's search shows only the lines that hold the text, and says how many.
        total = d.execute_script("return document.querySelectorAll('pre.log .line').length")
        search = d.find_element(By.ID, "log-search")
        search.send_keys("optimizer")
        shown = d.execute_script("return [...document.querySelectorAll('pre.log .line')].filter(l => !l.hidden).map(l => l.textContent)")
        self.assertTrue(shown and all("optimizer" in l.lower() for l in shown), shown)
        self.assertLess(len(shown), total)
        self.assertEqual(text(d, "document.querySelector('section.logs [aria-live=polite]')"), f"{len(shown)} matching")
        # Smoothing redraws the curves and leaves min/max/last as recorded.
        before = d.execute_script("return [...document.querySelectorAll('.metric-stats td')].map(e => e.textContent)")
        d.execute_script("const s = document.getElementById('smoothing'); s.value = '0.6'; s.dispatchEvent(new Event('input'));")
        self.assertEqual(d.execute_script("return [...document.querySelectorAll('.metric-stats td')].map(e => e.textContent)"), before)
        for scheme in SCHEMES:
            for width, height in SIZES:
                emulate(d, width, height, scheme)
                wide = d.execute_script("return document.documentElement.scrollWidth")
                self.assertLessEqual(wide, width + 1, f"the job page with plots at {width} px scrolls sideways ({wide} px)")
                # The plots, then the artifacts and lineage below them (the top is in the job-* shots).
                # Scrolled again at each look: the emulated resize redraws the charts above after a frame.
                wait(d, lambda d: d.execute_script("const p = document.querySelector('div.plots'); p.scrollIntoView(); "
                                                   "return window.scrollY > 0 && [...p.querySelectorAll('img')].slice(0, 2).every(i => i.complete && i.naturalWidth > 0)"),
                     15, "plots not loaded")
                self.assertGreater(images_painted(d, "div.plots img"), 0, "no plot in view")
                screenshot(d, os.path.join(self.folder, "shots"), f"job-plots-{width}x{height}-{scheme}")
                d.execute_script("document.querySelector('section.lineage-box').scrollIntoView()")
                screenshot(d, os.path.join(self.folder, "shots"), f"job-lineage-{width}x{height}-{scheme}")
                d.execute_script("window.scrollTo(0, 0)")
        emulate(d, 1280, 800, "light")
        # Clone and edit: the config in an editor, submitted as a new job whose page opens.
        d.find_element(By.CSS_SELECTOR, '.job-header button[data-action="clone"]').click()
        wait(d, lambda d: d.execute_script("return !!document.querySelector('dialog.clone[open] textarea')"), 10, "no clone dialog")
        config = json.loads(d.execute_script("return document.getElementById('clone-config').value"))
        self.assertEqual(config["experiment"], "plotted")
        config["experiment"] = "cloned <b>x</b>"
        config["train"]["epochs"] = 2
        screenshot(d, os.path.join(self.folder, "shots"), "job-clone-1280x800-light")
        d.execute_script("document.getElementById('clone-config').value = arguments[0]", json.dumps(config, indent=2))
        d.find_element(By.CSS_SELECTOR, 'dialog.clone button[data-action="submit-clone"]').click()
        wait(d, lambda d: d.current_url.rstrip("/") != f"{yard.base}/jobs/{job}" and "/jobs/" in d.current_url, 30, "the clone's page did not open")
        clone = d.current_url.rsplit("/", 1)[1]
        self.assertNotEqual(clone, job)
        copied = yard.job(clone)
        self.assertEqual((copied["experiment"], copied["config"]["train"]["epochs"]), ("cloned <b>x</b>", 2))
        wait(d, lambda d: "cloned <b>x</b>" in (text(d, "document.querySelector('.job-header')") or ""), 30, "the clone's page shows its experiment as text")
        self.assertEqual(yard.request("POST", f"/api/jobs/{clone}/stop")[0], 200)
        # The jobs page filtered by experiment on the server: only the clone, and the URL holds the filter.
        d.get(f"{yard.base}/jobs")
        wait(d, lambda d: d.execute_script("return !!document.querySelector('tbody tr')"), 30, "no jobs")
        box = d.find_element(By.ID, "experiment-filter")
        box.send_keys("cloned <b>x</b>\n")
        wait(d, lambda d: "experiment=" in d.current_url, 10, "the filter is not in the URL")
        wait(d, lambda d: d.execute_script("return [...document.querySelectorAll('tbody tr')].map(r => r.dataset.job)") == [clone], 30, "the filter did not apply")
        self.assertIsNone(d.execute_script("return window.__xss"))
        self.assertEqual(console_errors(d), [])
        self.__class__.plotted = job

    def test_c_a_failed_job_shows_why_and_its_last_log_lines_first(self):
        d, yard = self.driver, self.yard
        broken = os.path.join(self.folder, "broken")
        os.makedirs(broken, exist_ok=True)
        with open(os.path.join(broken, "data.yaml"), "w") as f:
            f.write("path: .\ntrain: images\nval: images\nnames: {0: a}\n")  # no images there
        job = yard.submit(job_yaml(os.path.join(broken, "data.yaml"), 1))
        emulate(d, 1280, 800, "light")
        d.get(f"{yard.base}/jobs/{job}")
        wait(d, lambda d: d.execute_script("return document.querySelector('.job-header')?.dataset.state") == "failed", 300, "the page did not show the job failed")
        wait(d, lambda d: d.execute_script("return !!document.querySelector('.failure pre.log-lines')"), 30, "no last log lines")
        reason = text(d, "document.querySelector('.failure .reason')")
        self.assertEqual(reason, yard.job(job)["message"])
        self.assertTrue(reason)
        # The failure comes before the curves, the config and the log.
        order = d.execute_script("return [...document.querySelector('main').children].map(e => e.className)")
        self.assertLess(order.index("failure"), order.index("charts"), order)
        self.assertTrue(d.find_element(By.CSS_SELECTOR, '.job-header button[data-action="resume"]').is_displayed())
        screenshot(d, os.path.join(self.folder, "shots"), "job-failed-1280x800-light")
        self.assertEqual(console_errors(d), [])


class Navigation(unittest.TestCase):
    """Pages a person leaves: their event streams must not keep the browser's
    few connections to the server (bench/dashboard.sh found pages kept in the
    back-forward cache holding theirs: later requests waited about a minute)."""

    @classmethod
    def setUpClass(cls):
        cls.folder = temp_folder("navigation")
        cls.yard = Yard(cls.folder)
        cls.driver = browser()

    @classmethod
    def tearDownClass(cls):
        cls.driver.quit()
        cls.yard.close()

    def test_pages_left_for_another_hold_no_stream(self):
        d, yard = self.driver, self.yard
        for visit in range(1, 10):
            d.get("about:blank")  # the page left goes to the back-forward cache
            d.get(yard.base + "/jobs")
            wait(d, lambda d: d.execute_script("return performance.getEntriesByName('jobs-rendered').length"), 60, f"visit {visit}: no render")
            # From navigation to rows: under a second here, a minute while held streams starve the page's requests.
            took = d.execute_script("return performance.getEntriesByName('jobs-rendered')[0].startTime")
            self.assertLess(took, 20_000, f"visit {visit}: the jobs page took {took:.0f} ms (the browser's connections are held by pages left)")
        self.assertEqual(console_errors(d), [])


    def test_the_workers_page_shows_each_worker_and_renders_its_text_as_text(self):
        d, yard = self.driver, self.yard
        d.get(yard.base + "/workers")
        wait(d, lambda d: d.execute_script("return document.querySelectorAll('article.worker-card').length") == 1, 30, "no worker card")
        card = text(d, "document.querySelector('article.worker-card')")
        self.assertIn("Last heard", card)
        self.assertIn(d.execute_script("return document.querySelector('article.worker-card').dataset.status"), ("idle", "busy"))
        self.assertRegex(text(d, "document.querySelector('.toolbar [aria-live]')"), r"^1 worker: 1 (idle|busy)$")
        # A lost worker with a GPU nearly full, every string hostile: drawn as text, the memory bar marked.
        d.execute_script("window.__xss = 0")
        html = d.execute_script("""
            return import('/ui/pages/workers.js').then((m) => {
              const now = Date.now();
              const card = m.card({id: '<script>window.__xss=1</script>', host: '<img src=x onerror="window.__xss=2">', status: 'lost',
                device: 'cuda:0', tags: ['a100', '<i>t</i>'], job: 'j<b>1</b>', heartbeat_at: new Date(now - 120000).toISOString(),
                gpus: [{index: 0, name: 'A100<script>', utilization_percent: 45, memory_used_mib: 75000, memory_total_mib: 81920, temperature_c: 61}]}, now);
              card.id = 'crafted';
              document.body.append(card);
              return card.outerHTML;
            })""")
        crafted = text(d, "document.getElementById('crafted')")
        for shown in ("<script>window.__xss=1</script>", '<img src=x onerror="window.__xss=2">', "<i>t</i>", "A100<script>", "45%", "73.2 / 80 GiB", "61°C", "2 min ago", "lost"):
            self.assertIn(shown, crafted)
        self.assertNotIn("<img", html.replace("&lt;img", ""))
        self.assertEqual(d.execute_script("return document.querySelectorAll('#crafted .meter.warn').length"), 1)
        self.assertEqual(d.execute_script("return document.querySelector('#crafted a.job-link').getAttribute('href')"), "/jobs/j%3Cb%3E1%3C%2Fb%3E")
        self.assertEqual(d.execute_script("return window.__xss"), 0)
        self.assertEqual(console_errors(d), [])

    def streams(self):
        """Event streams the server holds open (its own gauge)."""
        text = self.yard.request("GET", "/metrics")[1]
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith('trainyard_sse_clients{') and 'route="/api/events"' in line)

    def test_a_hidden_tab_gives_its_stream_back_and_catches_up_when_shown(self):
        """A browser opens 6 connections to a host over HTTP/1.1 and every
        stream holds one, so seven open tabs starved the seventh. A hidden tab
        closes its stream after a grace and, shown again, follows from the
        last event it had. Headless Chromium reports every tab visible, so
        the browser's signal is given by hand (document.hidden and the
        visibilitychange event, as a real tab switch fires them)."""
        d, yard = self.driver, self.yard
        d.get(yard.base + "/jobs")
        wait(d, lambda d: d.execute_script("return performance.getEntriesByName('jobs-rendered').length"), 60, "no render")
        wait(d, lambda d: self.streams() >= 1, 15, "the jobs page opened no stream")
        def visibility(hidden):
            d.execute_script("""
                Object.defineProperty(document, 'hidden', {value: arguments[0], configurable: true});
                Object.defineProperty(document, 'visibilityState', {value: arguments[0] ? 'hidden' : 'visible', configurable: true});
                document.dispatchEvent(new Event('visibilitychange'));""", hidden)
        visibility(True)
        wait(d, lambda d: self.streams() == 0, 20, "a hidden tab still holds its stream")
        # What happens while it is hidden reaches it when it is shown, without a reload.
        data = os.path.join(self.folder, "hidden-data")
        os.makedirs(os.path.join(data, "images"), exist_ok=True)
        with open(os.path.join(data, "data.yaml"), "w") as f:
            f.write("path: .\ntrain: images\nval: images\nnames: {0: a}\n")
        job = yard.submit(job_yaml(os.path.join(data, "data.yaml"), 1, experiment="while hidden"))
        time.sleep(1)
        self.assertFalse(d.execute_script("return [...document.querySelectorAll('a')].some(a => a.textContent === arguments[0])", job))
        d.execute_script("window.__same = true")
        visibility(False)
        wait(d, lambda d: d.execute_script("return [...document.querySelectorAll('a')].some(a => a.textContent === arguments[0])", job), 20,
             "the job submitted while the tab was hidden did not appear when it was shown")
        self.assertTrue(d.execute_script("return window.__same === true"), "the page was reloaded")
        self.assertGreaterEqual(self.streams(), 1)
        self.assertEqual(console_errors(d), [])


class Attacker(http.server.BaseHTTPRequestHandler):
    """A page of another site that tries to submit a job on the dashboard's
    server, by fetch (no-cors) and by a text/plain form, both of which a
    browser sends without asking the server first."""
    target = ""
    config = ""

    def do_GET(self):
        quoted = json.dumps(self.config)
        page = f"""<!doctype html><html><body><p id=state>working</p>
<form id=forged method=post enctype="text/plain" action="{self.target}"><input type=hidden name="model: yolov8n.yaml
x" value="1"></form>
<script>
fetch("{self.target}", {{method: "POST", mode: "no-cors", credentials: "include", headers: {{"Content-Type": "text/plain"}}, body: {quoted}}})
  .catch(() => null).then(() => {{ window.__fetched = true; document.getElementById("state").textContent = "fetched"; }});
</script></body></html>"""
        body = page.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class SignIn(unittest.TestCase):
    """`yard up` with YARD_TOKEN."""
    token = "browser-test-token-0123456789"

    @classmethod
    def setUpClass(cls):
        cls.folder = temp_folder("token")
        cls.yard = Yard(cls.folder, token=cls.token)
        cls.driver = browser()

    @classmethod
    def tearDownClass(cls):
        cls.driver.quit()
        cls.yard.close()

    def setUp(self):
        self.driver.execute_cdp_cmd("Network.clearBrowserCookies", {})
        self.driver.get_log("browser")  # what an earlier test left

    def sign_in(self, token):
        d = self.driver
        field = d.find_element(By.ID, "token")
        field.clear()
        field.send_keys(token)
        d.find_element(By.CSS_SELECTOR, "form.sign-in button[type=submit]").click()

    def test_pages_need_sign_in_and_the_cookie_is_http_only_and_strict(self):
        d, yard = self.driver, self.yard
        d.get(yard.base + "/jobs")
        wait(d, lambda d: d.execute_script("return !!document.getElementById('token')"), 30, "no sign-in form")
        self.assertTrue(d.current_url.startswith(yard.base + "/sign-in?next="), d.current_url)
        for scheme in SCHEMES:
            for width, height in SIZES:
                emulate(d, width, height, scheme)
                screenshot(d, os.path.join(self.folder, "shots"), f"sign-in-{width}x{height}-{scheme}")
        emulate(d, 1280, 800, "light")

        self.sign_in("wrong-token")
        wait(d, lambda d: "wrong" in (text(d, "document.querySelector('form.sign-in .error')") or ""), 30, "no error for a wrong token")
        self.assertEqual([c for c in d.get_cookies() if c["name"] == "yard_session"], [])

        self.sign_in(self.token)
        wait(d, lambda d: text(d, "document.querySelector('main h1')") == "Jobs", 30, "signing in did not lead to the jobs page")
        self.assertEqual(d.current_url, yard.base + "/jobs")
        cookies = [c for c in d.get_cookies() if c["name"] == "yard_session"]
        self.assertEqual(len(cookies), 1, d.get_cookies())
        cookie = cookies[0]
        self.assertTrue(cookie["httpOnly"])
        self.assertEqual(cookie["sameSite"], "Strict")
        self.assertNotIn(self.token, cookie["value"])
        self.assertNotIn("yard_session", d.execute_script("return document.cookie"))
        self.assertEqual(d.execute_script("return localStorage.length + sessionStorage.length"), 0)
        self.assertNotIn(self.token, d.page_source + d.current_url)

        # The session works for the API; sign-out ends it.
        status = d.execute_script("return fetch('/api/jobs').then(r => r.status)")
        self.assertEqual(status, 200)
        d.find_element(By.ID, "sign-out").click()
        wait(d, lambda d: d.execute_script("return !!document.getElementById('token')"), 30, "sign-out did not lead to sign-in")
        self.assertEqual(d.execute_script("return fetch('/api/jobs').then(r => r.status)"), 401)
        errors = [e for e in console_errors(d) if "status of 401" not in e["message"]]
        self.assertEqual(errors, [])

    def jobs(self):
        return self.yard.request("GET", "/api/jobs")[1]["jobs"]

    def test_the_api_docs_page_lists_every_path_after_sign_in(self):
        """/api/docs (issue 29): our own page renders /api/openapi.json; a
        browser without a session signs in first and lands back on it."""
        d, yard = self.driver, self.yard
        d.get(yard.base + "/api/docs")
        wait(d, lambda d: d.execute_script("return !!document.getElementById('token')"), 30, "no sign-in form")
        self.assertTrue(d.current_url.startswith(yard.base + "/sign-in?next=/api/docs"), d.current_url)
        self.sign_in(self.token)
        wait(d, lambda d: d.execute_script("return document.getElementById('main').dataset.ready === 'true'"), 30, "the docs page did not render")
        self.assertEqual(d.current_url, yard.base + "/api/docs")
        status, spec, _ = yard.request("GET", "/api/openapi.json")
        self.assertEqual(status, 200)
        operations = {(path, method) for path, item in spec["paths"].items() for method in item if method in ("get", "post", "put", "patch", "delete")}
        shown = {(e.get_attribute("data-path"), e.get_attribute("data-method")) for e in d.find_elements(By.CSS_SELECTOR, "details.op[data-path]")}
        self.assertEqual(shown, operations)
        self.assertIn("/api/jobs/{id}/weights", {path for path, _ in shown})
        schemas = {e.get_attribute("id") for e in d.find_elements(By.CSS_SELECTOR, "#schemas details.op")}
        self.assertEqual(schemas, {"schema-" + name for name in spec["components"]["schemas"]})
        # An operation opens to its parameters and responses, as text.
        d.get(yard.base + "/api/docs#op-getJob")
        wait(d, lambda d: d.execute_script("return document.getElementById('main').dataset.ready === 'true'"), 30, "no render")
        opened = d.find_element(By.ID, "op-getJob")
        self.assertEqual(opened.get_attribute("open"), "true")
        self.assertIn("a job id", opened.text)
        self.assertIn("JobDetail", opened.text)
        for scheme in SCHEMES:
            for width, height in SIZES:
                emulate(d, width, height, scheme)
                screenshot(d, os.path.join(self.folder, "shots"), f"api-docs-{width}x{height}-{scheme}")
        emulate(d, 1280, 800, "light")
        self.assertEqual(console_errors(d), [])

    def test_a_forged_cross_site_submit_is_refused(self):
        d, yard = self.driver, self.yard
        data = os.path.join(self.folder, "data.yaml")
        with open(data, "w") as f:
            f.write("path: .\ntrain: images\nval: images\nnames: {0: a}\n")
        config = job_yaml(data, 1, experiment="forged")
        # Signed in, as the victim is.
        d.get(yard.base + "/sign-in")
        wait(d, lambda d: d.execute_script("return !!document.getElementById('token')"), 30)
        self.sign_in(self.token)
        wait(d, lambda d: text(d, "document.querySelector('main h1')") == "Jobs", 30)
        before = len(self.jobs())

        # Another site (localhost is not 127.0.0.1) posts a job, by fetch and by a form.
        Attacker.target = f"{yard.base}/api/jobs"
        Attacker.config = config
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Attacker)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.addCleanup(server.server_close)
        try:
            d.get(f"http://localhost:{server.server_address[1]}/")
            wait(d, lambda d: d.execute_script("return window.__fetched === true"), 30, "the attacker's fetch did not finish")
            d.execute_script("document.getElementById('forged').submit()")
            wait(d, lambda d: d.current_url.startswith(yard.base), 30, "the forged form did not post")
            self.assertIn("refused", d.page_source)
        finally:
            server.shutdown()
        self.assertEqual(len(self.jobs()), before, "a forged request submitted a job")

        # With the victim's real cookie but no CSRF token, or from a foreign Origin: refused too.
        session = [c for c in d.get_cookies() if c["name"] == "yard_session"][0]["value"]
        cookie = {"Cookie": f"yard_session={session}"}
        csrf = yard.request("GET", "/api/session", headers=cookie)[1]["csrf"]
        post = lambda headers: yard.request("POST", "/api/jobs", config, headers={**cookie, **headers}, content_type="application/yaml")[0]
        self.assertEqual(post({}), 403)
        self.assertEqual(post({"X-CSRF-Token": "guess", "Origin": yard.base}), 403)
        self.assertEqual(post({"X-CSRF-Token": csrf, "Origin": "http://localhost:1"}), 403)
        self.assertEqual(len(self.jobs()), before)
        # The page's own way: the cookie, the CSRF token, this origin.
        self.assertEqual(post({"X-CSRF-Token": csrf, "Origin": yard.base}), 201)
        self.assertEqual(len(self.jobs()), before + 1)


if __name__ == "__main__":
    unittest.main()
