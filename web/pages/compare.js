// Compare 2-10 runs (/compare?jobs=A,B,...: the selection lives in the URL,
// so it can be shared): one metric's and one loss's curves overlaid, each
// run in a colour kept by its place in the selection (the legend toggles
// runs), the last and best value of every metric side by side, and the
// config diff that hides identical values, and a diff of two runs' logs
// (numbers masked by default, so only what the runs did differently shows).
// Runs that still train gain points as their epochs land.

import { get } from "../lib/api.js";
import { diffAll, show, lineDiff, maskNumbers } from "../lib/diff.js";
import { follow, head } from "../lib/events.js";
import { h, fill } from "../lib/dom.js";
import { LineChart } from "../lib/chart.js";
import { number } from "../lib/format.js";
import { showError, stateBadge } from "./common.js";

export const palette = ["#4e79a7", "#f28e2b", "#e15759", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#ff9da7", "#9c755f", "#86bcb6"];
export const maxRuns = 10;

const isLoss = (key) => /loss/i.test(key);

/** The selection from ?jobs=: ids in order, repeats and empties dropped, at most 10. */
export function selection(query) {
  const ids = [];
  for (const id of (query.get("jobs") || "").split(",").map((s) => s.trim())) if (id && !ids.includes(id)) ids.push(id);
  return ids;
}

function numbersOf(record) {
  const out = {};
  for (const [key, value] of Object.entries(record || {})) if (typeof value === "number" && Number.isFinite(value)) out[key] = value;
  return out;
}

export function mount(root, { query, navigate }) {
  const ids = selection(query);
  const runs = new Map();  // id -> {job, epochs: Map(epoch -> values), colour}
  let closed = false;
  let stop = null;
  let redraw = null;

  const status = h("p", { class: "status", role: "status" });
  const legend = h("ul", { class: "runs", "aria-label": "Runs" });
  const metricSelect = h("select", { "aria-label": "Metric" });
  const lossSelect = h("select", { "aria-label": "Loss" });
  const charts = h("section", { class: "charts", "aria-label": "Curves" });
  const summary = h("section", { class: "scroll", "aria-label": "Last and best" });
  const hideSame = h("input", { type: "checkbox", checked: true, id: "hide-same" });
  const configBox = h("section", { class: "scroll", "aria-label": "Config" });
  const logLeft = h("select", { id: "log-left", "aria-label": "Log on the left" });
  const logRight = h("select", { id: "log-right", "aria-label": "Log on the right" });
  const ignoreNumbers = h("input", { type: "checkbox", checked: true, id: "ignore-numbers" });
  const diffButton = h("button", { type: "button", id: "log-diff", text: "Compare logs" });
  const logBox = h("section", { class: "log-diff-box", "aria-label": "Log diff" });
  fill(root, h("div", { class: "toolbar" }, h("h1", { text: "Compare" })), status, legend,
    h("div", { class: "toolbar" }, h("label", {}, "Metric ", metricSelect), h("label", {}, "Loss ", lossSelect)),
    charts, summary,
    h("div", { class: "toolbar" }, h("h2", { text: "Config" }), h("label", { for: "hide-same", class: "sub" }, hideSame, " hide identical values")),
    configBox,
    h("div", { class: "toolbar log-toolbar" }, h("h2", { text: "Logs" }), logLeft, h("span", { text: "vs" }), logRight,
      h("label", { for: "ignore-numbers", class: "sub" }, ignoreNumbers, " ignore numbers"), diffButton),
    logBox);

  if (ids.length < 2 || ids.length > maxRuns) {
    fill(status, ids.length > maxRuns
      ? `Compare takes at most ${maxRuns} runs; this link names ${ids.length}.`
      : "Pick 2 to 10 jobs on the Jobs page (their boxes, then Compare), or open /compare?jobs=A,B.");
    return () => {};
  }

  const colour = (id) => (runs.has(id) ? runs.get(id).colour : "#888");
  const metricChart = new LineChart(charts, "Metric", { colour });
  const lossChart = new LineChart(charts, "Loss", { colour });

  function keys() {
    const all = new Set();
    for (const run of runs.values()) for (const values of run.epochs.values()) for (const key of Object.keys(values)) all.add(key);
    return [...all].sort();
  }

  function fillSelect(select, options, preferred) {
    const current = select.value;
    fill(select, options.map((k) => h("option", { value: k, text: k })));
    select.value = options.includes(current) ? current : options.find((k) => preferred.test(k)) || options[0] || "";
  }

  function drawCurves() {
    const all = keys();
    fillSelect(metricSelect, all.filter((k) => !isLoss(k) && !/^lr\//.test(k)), /mAP50\(|top1|fitness/);
    fillSelect(lossSelect, all.filter(isLoss), /^train\/box_loss|^train\/loss/);
    for (const [chart, key] of [[metricChart, metricSelect.value], [lossChart, lossSelect.value]]) {
      chart.caption.textContent = key || chart.title;
      const epochs = [...new Set([...runs.values()].flatMap((r) => [...r.epochs.keys()]))].sort((a, b) => a - b);
      const rows = epochs.map((epoch) => {
        const values = {};
        for (const [id, run] of runs) { const v = run.epochs.get(epoch); if (v && typeof v[key] === "number") values[id] = v[key]; }
        return { epoch, values };
      });
      chart.set(rows, key ? [...runs.keys()] : []);
    }
  }

  function drawSummary() {
    const all = keys().filter((k) => !/^lr\//.test(k));
    const columns = [...runs.keys()];
    fill(summary, h("h2", { text: "Last and best" }), h("table", { class: "compare-metrics" },
      h("thead", {}, h("tr", {}, h("th", { scope: "col", text: "metric" }),
        columns.map((id) => h("th", { scope: "col", class: "num" }, h("span", { class: "swatch", "data-colour": runs.get(id).colour }), ` ${short(id)}`)))),
      h("tbody", {}, all.map((key) => {
        const stats = columns.map((id) => {
          const series = [...runs.get(id).epochs.entries()].sort((a, b) => a[0] - b[0]).map(([, v]) => v[key]).filter((v) => typeof v === "number");
          if (!series.length) return null;
          return { last: series[series.length - 1], best: isLoss(key) ? Math.min(...series) : Math.max(...series) };
        });
        const bests = stats.filter(Boolean).map((s) => s.best);
        const top = bests.length ? (isLoss(key) ? Math.min(...bests) : Math.max(...bests)) : null;
        return h("tr", { "data-metric": key }, h("th", { scope: "row", text: key }), stats.map((s) => h("td", { class: `num${s && s.best === top && new Set(bests).size > 1 ? " best-of" : ""}`,
          text: s ? `${number(s.last)} (best ${number(s.best)})` : "" })));
      }))));
    paintSwatches(summary);
  }

  function drawConfig() {
    const columns = [...runs.keys()];
    const rows = diffAll(columns.map((id) => runs.get(id).job.config)).filter((r) => !hideSame.checked || !r.same);
    fill(configBox, rows.length ? h("table", { class: "diff" },
      h("thead", {}, h("tr", {}, h("th", { scope: "col", text: "key" }), columns.map((id) => h("th", { scope: "col", text: short(id) })))),
      h("tbody", {}, rows.map((r) => h("tr", { class: r.same ? "same" : "changed", "data-key": r.key }, h("th", { scope: "row", text: r.key }),
        r.values.map((v) => h("td", { text: show(v) }))))))
      : h("p", { class: "muted", text: "The configs are identical." }));
  }

  function drawLegend() {
    fill(legend, [...runs.values()].map(({ job, colour }) => h("li", { "data-job": job.id },
      h("span", { class: "swatch", "data-colour": colour }),
      h("a", { href: `/jobs/${encodeURIComponent(job.id)}`, class: "job-link", text: job.id }), " ", stateBadge(job.state),
      h("span", { class: "sub", text: ` ${[job.experiment, job.model].filter(Boolean).join(" · ")}` }))));
    paintSwatches(legend);
  }

  function fillLogChoices() {
    const columns = [...runs.keys()];
    for (const [select, index] of [[logLeft, 0], [logRight, 1]]) {
      const current = select.value;
      fill(select, columns.map((id) => h("option", { value: id, text: short(id) })));
      select.value = columns.includes(current) ? current : columns[index] || "";
    }
  }

  const logText = async (id) => {
    const response = await fetch(`/api/jobs/${encodeURIComponent(id)}/logs`, { credentials: "same-origin" });
    if (!response.ok) throw new Error(`the log of ${id} is not available (${response.status})`);
    return (await response.text()).split("\n").filter((line) => line.length);
  };

  /** The two logs' diff: changed lines with 2 lines of context, long runs of same lines folded. */
  async function drawLogDiff() {
    diffButton.disabled = true;
    fill(logBox, h("p", { class: "muted", text: "Reading both logs…" }));
    try {
      const [left, right] = await Promise.all([logText(logLeft.value), logText(logRight.value)]);
      if (closed) return;
      const { ops, truncated } = lineDiff(left, right, ignoreNumbers.checked ? maskNumbers : undefined);
      const changed = ops.map((o) => o.op !== "same");
      const near = (i) => changed.slice(Math.max(0, i - 2), i + 3).some(Boolean);
      const lines = [];
      let folded = 0;
      const flush = () => { if (folded) lines.push(h("div", { class: "fold", text: `… ${folded} same line${folded === 1 ? "" : "s"}` })); folded = 0; };
      ops.forEach((o, i) => {
        if (o.op === "same" && !near(i)) { folded += 1; return; }
        flush();
        const mark = o.op === "add" ? "+ " : o.op === "del" ? "- " : "  ";
        lines.push(h("div", { class: `line ${o.op}`, text: mark + (o.op === "add" ? o.right : o.left) }));
      });
      flush();
      const adds = ops.filter((o) => o.op === "add").length, dels = ops.filter((o) => o.op === "del").length;
      fill(logBox,
        h("p", { class: "sub", text: `${dels} line${dels === 1 ? "" : "s"} only in ${short(logLeft.value)}, ${adds} only in ${short(logRight.value)}`
          + (truncated ? " (the last 2,000 lines of each)" : "") }),
        adds + dels ? h("pre", { class: "log diff-lines", tabindex: "0", "aria-label": "Log diff" }, lines)
          : h("p", { class: "muted", text: "The logs are the same" + (ignoreNumbers.checked ? " but for their numbers." : ".") }));
    } catch (error) {
      showError(logBox, error);
    } finally {
      diffButton.disabled = false;
    }
  }
  diffButton.addEventListener("click", () => drawLogDiff());

  redraw = () => { drawLegend(); drawCurves(); drawSummary(); drawConfig(); fillLogChoices(); };
  metricSelect.addEventListener("change", drawCurves);
  lossSelect.addEventListener("change", drawCurves);
  hideSame.addEventListener("change", drawConfig);

  async function load() {
    const after = await head();
    const jobs = await Promise.all(ids.map((id) => get(`/api/jobs/${encodeURIComponent(id)}`).catch((error) => ({ error, id }))));
    if (closed) return;
    const missing = jobs.filter((j) => j.error);
    fill(status, missing.length ? `Not found: ${missing.map((j) => j.id).join(", ")}` : "");
    runs.clear();
    jobs.filter((j) => !j.error).forEach((job, index) => {
      const epochs = new Map();
      for (const record of job.epoch_metrics || []) epochs.set(record.epoch, numbersOf(record.metrics));
      runs.set(job.id, { job, epochs, colour: palette[index % palette.length] });
    });
    redraw();
    if (stop) stop();
    stop = follow({ entity: "job", type: "state,epoch" }, after, {
      "job.epoch": (event) => {
        const run = runs.get(event.id);
        if (!run || !Number.isFinite(event.data.epoch)) return;
        run.epochs.set(event.data.epoch, { ...numbersOf(event.data.metrics), ...numbersOf(event.data.losses),
          ...(Number.isFinite(event.data.fitness) ? { fitness: event.data.fitness } : {}) });
        drawCurves();
        drawSummary();
      },
      "job.state": (event) => {
        const run = runs.get(event.id);
        if (!run) return;
        run.job.state = event.data.state;
        drawLegend();
      },
    }, () => load().catch((e) => showError(status, e)));
  }

  load().catch((error) => showError(status, error));
  return () => { closed = true; if (stop) stop(); metricChart.destroy(); lossChart.destroy(); };
}

/** A job id short enough for a column head (its tail tells runs apart). */
function short(id) {
  return id.length > 18 ? `…${id.slice(-14)}` : id;
}

/** Swatches take their colour from data-colour through the CSSOM (the CSP forbids style attributes). */
function paintSwatches(parent) {
  for (const swatch of parent.querySelectorAll(".swatch[data-colour]")) swatch.style.backgroundColor = swatch.dataset.colour;
}
