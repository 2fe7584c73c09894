// Job: its state and message (for a failed job the reason and the last log
// lines first), loss and metric curves that gain a point as each epoch
// lands (smoothing on the drawn lines, never on min/max/last), min/max/last
// per metric, plots, artifacts, the test split per class, lineage, the
// config (masked by the API) with clone-and-edit, and the log following
// live with pause and search.

import { get, post } from "../lib/api.js";
import { follow, head } from "../lib/events.js";
import { h, fill } from "../lib/dom.js";
import { LineChart } from "../lib/chart.js";
import { time, number, epochOf, activeStates, resumableStates } from "../lib/format.js";
import { showError, stateBadge } from "./common.js";
import { LogTail } from "./logtail.js";
import { renderPlots, renderArtifacts, renderTest, renderLineage, cloneDialog } from "./jobparts.js";

/** The numbers of an epoch event, as the server records them (metrics, losses, fitness). */
function numbersOf(data) {
  const out = {};
  for (const section of ["metrics", "losses"]) {
    for (const [key, value] of Object.entries(data[section] || {})) if (typeof value === "number" && Number.isFinite(value)) out[key] = value;
  }
  if (typeof data.fitness === "number" && Number.isFinite(data.fitness)) out.fitness = data.fitness;
  return out;
}

const isLoss = (key) => /loss/i.test(key);
const isMetric = (key) => !isLoss(key) && !/^lr\//.test(key);

/** Exponential moving average, as TensorBoard smooths (0: the values as they are). */
export function smooth(values, weight) {
  if (!(weight > 0)) return values;
  let last = null;
  return values.map((value) => {
    if (typeof value !== "number") return value;
    last = last === null ? value : last * weight + value * (1 - weight);
    return last;
  });
}

export function mount(root, { params, navigate }) {
  const id = params.id;
  const epochs = new Map();  // epoch -> values
  let job = null;
  let stop = null;
  let closed = false;
  let failureRound = 0;

  const status = h("p", { class: "status", role: "status" });
  const header = h("section", { class: "job-header", "aria-label": "Job" });
  const failure = h("section", { class: "failure", hidden: true, "aria-label": "Why it failed" });
  const charts = h("section", { class: "charts", "aria-label": "Curves" });
  const stats = h("section", { class: "stats", "aria-label": "Metrics" });
  const config = h("pre", { class: "config" });
  const logs = h("section", { class: "logs", "aria-label": "Log" });
  const plots = h("section", { class: "plots-box", hidden: true, "aria-label": "Plots" });
  const artifacts = h("section", { class: "artifacts-box", hidden: true, "aria-label": "Artifacts" });
  const test = h("section", { class: "test-box", hidden: true, "aria-label": "Test split" });
  const lineage = h("section", { class: "lineage-box", hidden: true, "aria-label": "Lineage" });
  // Smoothing of the drawn curves, kept while the page is open.
  const smoothing = h("input", { type: "range", id: "smoothing", min: "0", max: "0.95", step: "0.05", value: "0", "aria-label": "Smoothing" });
  const smoothingValue = h("output", { for: "smoothing", text: "0" });
  smoothing.addEventListener("input", () => { smoothingValue.textContent = smoothing.value; renderCurves(); });
  fill(root, h("p", { class: "crumbs" }, h("a", { href: "/jobs", text: "Jobs" }), " / ", h("span", { text: id })),
    status, header, failure,
    h("div", { class: "controls curve-controls" }, h("label", {}, "Smoothing ", smoothing, smoothingValue)),
    charts, stats, test, plots, artifacts, lineage,
    h("details", { class: "config-box" }, h("summary", { text: "Config" }), config), logs);
  const lossChart = new LineChart(charts, "Loss");
  const metricChart = new LineChart(charts, "Metrics");
  const tail = new LogTail(logs, id);

  function renderHeader() {
    const actions = h("div", { class: "actions" });
    if (activeStates.has(job.state) && job.state !== "stopping") actions.append(button("Stop", "stop"));
    if (resumableStates.has(job.state)) actions.append(button("Resume", "resume"));
    actions.append(h("button", { type: "button", "data-action": "clone", text: "Clone", title: "Edit a copy of this config and submit it",
      onclick: () => cloneDialog(job, navigate) }));
    const facts = [
      ["Experiment", job.experiment], ["Model", job.model], ["Epoch", epochOf(job)], ["Fitness", number(job.fitness)],
      ["Worker", [job.worker, job.device].filter(Boolean).join(" · ")], ["Dataset", job.dataset],
      ["Submitted by", job.owner], ["Priority", Number.isInteger(job.priority) ? String(job.priority) : ""],
      ["Attempts", job.attempts > 1 ? String(job.attempts) : ""], ["Waiting", job.state === "queued" ? job.waiting : ""],
      ["Created", time(job.created_at)], ["Started", time(job.started_at)], ["Finished", time(job.finished_at)],
    ].filter(([, v]) => v);
    fill(header,
      h("div", { class: "title" }, h("h1", { text: job.id }), stateBadge(job.state), actions),
      job.message && job.state !== "failed" ? h("p", { class: "message", text: job.message }) : null,
      h("dl", { class: "facts" }, facts.map(([k, v]) => h("div", {}, h("dt", { text: k }), h("dd", { text: v })))));
    header.setAttribute("data-state", job.state);
    if (job.state === "failed") {
      failure.hidden = false;
      fill(failure, h("h2", { text: "Failed" }), h("p", { class: "reason", text: job.message || "no reason recorded" }));
      const round = ++failureRound;
      tail.lastLines(20).then((lines) => {
        if (!closed && round === failureRound && lines.length) failure.append(h("h3", { text: "Last log lines" }), h("pre", { class: "log-lines", text: lines.join("\n") }));
      }).catch(() => {});
    } else {
      failure.hidden = true;
    }
  }

  function button(label, verb) {
    return h("button", {
      type: "button", "data-action": verb, text: label,
      onclick: async (event) => {
        event.currentTarget.disabled = true;
        try { job = { ...job, ...(await post(`/api/jobs/${encodeURIComponent(id)}/${verb}`)) }; renderHeader(); } catch (error) { showError(status, error); }
      },
    });
  }

  function renderCurves() {
    const rows = [...epochs.entries()].sort((a, b) => a[0] - b[0]).map(([epoch, values]) => ({ epoch, values }));
    const keys = [...new Set(rows.flatMap((r) => Object.keys(r.values)))].sort();
    const weight = Number(smoothing.value);
    const drawn = weight > 0 ? smoothRows(rows, keys, weight) : rows;
    lossChart.set(drawn, keys.filter(isLoss));
    metricChart.set(drawn, keys.filter(isMetric));
    const table = h("table", { class: "metric-stats" },
      h("thead", {}, h("tr", {}, ["Metric", "Min", "Max", "Last"].map((t, i) => h("th", { scope: "col", class: i ? "num" : "", text: t })))),
      h("tbody", {}, keys.filter((k) => !/^lr\//.test(k)).map((key) => {
        const values = rows.map((r) => r.values[key]).filter((v) => typeof v === "number");
        const last = values[values.length - 1];
        return h("tr", {}, h("th", { scope: "row", text: key }),
          h("td", { class: "num", text: number(Math.min(...values)) }), h("td", { class: "num", text: number(Math.max(...values)) }),
          h("td", { class: "num", text: number(last) }));
      })));
    fill(stats, rows.length ? h("div", { class: "scroll" }, table) : h("p", { class: "muted", text: "No epoch has finished yet." }));
  }

  function smoothRows(rows, keys, weight) {
    const out = rows.map((r) => ({ epoch: r.epoch, values: { ...r.values } }));
    for (const key of keys) {
      const series = smooth(rows.map((r) => r.values[key]), weight);
      series.forEach((value, i) => { if (typeof value === "number") out[i].values[key] = value; });
    }
    return out;
  }

  function renderFiles() {
    renderPlots(plots, job);
    renderArtifacts(artifacts, job);
    renderTest(test, job);
  }

  async function load() {
    const after = await head();
    job = await get(`/api/jobs/${encodeURIComponent(id)}`);
    if (closed) return;
    epochs.clear();
    for (const record of job.epoch_metrics || []) epochs.set(record.epoch, record.metrics || {});
    renderHeader();
    renderCurves();
    renderFiles();
    renderLineage(lineage, id).catch(() => {});
    config.textContent = JSON.stringify(job.config, null, 2);
    if (stop) stop();
    stop = follow({ entity: "job", id, type: "state,epoch" }, after, {
      "job.state": (event) => {
        job.state = event.data.state;
        if (event.data.message !== undefined) job.message = event.data.message;
        if (!activeStates.has(job.state)) {
          get(`/api/jobs/${encodeURIComponent(id)}`).then((j) => {
            if (closed) return;
            job = j;
            renderHeader();
            renderFiles();
            renderLineage(lineage, id).catch(() => {});
          }).catch(() => {});
        }
        renderHeader();
      },
      "job.epoch": (event) => {
        if (!Number.isFinite(event.data.epoch)) return;
        epochs.set(event.data.epoch, numbersOf(event.data));
        job.epoch = event.data.epoch;
        if (Number.isFinite(event.data.epochs)) job.epochs = event.data.epochs;
        if (Number.isFinite(event.data.fitness)) job.fitness = event.data.fitness;
        renderHeader();
        renderCurves();
      },
    }, () => load().catch((e) => showError(status, e)));
  }

  load().then(() => tail.start()).catch((error) => showError(status, error));
  return () => { closed = true; if (stop) stop(); tail.stop(); lossChart.destroy(); metricChart.destroy(); };
}
