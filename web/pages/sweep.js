// Sweep: its state and best trial, the trials table (state, the epoch a
// pruned one stopped at, each parameter, the value), the best-so-far curve,
// parallel coordinates of the search space whose brushes filter the table,
// and the fitness against each parameter. Follows the event log: a trial
// asked or told, or a trial's job changing state or finishing an epoch,
// re-reads the sweep.

import { get, post } from "../lib/api.js";
import { follow, head } from "../lib/events.js";
import { h, fill } from "../lib/dom.js";
import { LineChart } from "../lib/chart.js";
import { ParallelCoordinates } from "../lib/parallel.js";
import { time, number } from "../lib/format.js";
import { showError, stateBadge } from "./common.js";

const endedStates = new Set(["finished", "stopped", "failed"]);

/** A value from low (0) to high (1) as a colour from blue to orange, readable on both themes. */
function ramp(t) {
  const a = [78, 121, 167], b = [242, 142, 43];
  const c = a.map((x, i) => Math.round(x + (b[i] - x) * Math.min(1, Math.max(0, t))));
  return `rgb(${c.join(",")})`;
}

function display(value) {
  if (value === undefined || value === null) return "";
  if (typeof value === "number") return number(value);
  return typeof value === "string" ? value : JSON.stringify(value);
}

/** The best value after each told trial, in the order of trial numbers. */
export function bestSoFar(trials, direction) {
  let best = null;
  return trials.map((trial) => {
    const v = trial.value;
    if (typeof v === "number" && Number.isFinite(v) && trial.told === "succeeded") {
      if (best === null || (direction === "minimize" ? v < best : v > best)) best = v;
    }
    return best;
  });
}

export function mount(root, { params }) {
  const id = params.id;
  let sweep = null;
  let closed = false;
  let stopFollowing = null;
  let selected = null;  // trial numbers left by the brushes, or null
  let reloadTimer = null;

  const status = h("p", { class: "status", role: "status" });
  const header = h("section", { class: "job-header sweep-header", "aria-label": "Sweep" });
  const charts = h("section", { class: "charts", "aria-label": "Curves" });
  const tableBox = h("section", { class: "scroll trials", "aria-label": "Trials" });
  const scatterBox = h("section", { class: "charts scatters", "aria-label": "Fitness against each parameter" });
  fill(root, h("p", { class: "crumbs" }, h("a", { href: "/sweeps", text: "Sweeps" }), " / ", h("span", { text: id })),
    status, header, charts, tableBox, scatterBox);
  const bestChart = new LineChart(charts, "Best so far", { x: "trial", points: ["trial"] });
  const parallel = new ParallelCoordinates(charts, { label: "Search space", onFilter: (ids) => { selected = ids; renderTable(); } });

  function direction() {
    const sweeper = sweep && sweep.config && sweep.config.sweeper;
    return sweeper && sweeper.direction === "minimize" ? "minimize" : "maximize";
  }

  function trials() {
    return [...(sweep.trial_list || [])].sort((a, b) => a.number - b.number);
  }

  /** The search space's keys, in the order the trials name them. */
  function paramKeys() {
    const keys = [];
    for (const trial of trials()) for (const key of Object.keys(trial.params || {})) if (!keys.includes(key)) keys.push(key);
    return keys;
  }

  function renderHeader() {
    const actions = h("div", { class: "actions" });
    if (!endedStates.has(sweep.state) && sweep.state !== "stopping") {
      actions.append(h("button", {
        type: "button", "data-action": "stop", text: "Stop",
        onclick: async (event) => {
          event.currentTarget.disabled = true;
          try { sweep = await post(`/api/sweeps/${encodeURIComponent(id)}/stop`); render(); } catch (error) { showError(status, error); }
        },
      }));
    }
    const counts = Object.entries(sweep.counts || {}).map(([k, v]) => `${v} ${k}`).join(", ");
    const best = sweep.best ? `trial ${sweep.best.number}: ${number(sweep.best.value)}` : "";
    const facts = [
      ["Study", sweep.study], ["Experiment", sweep.experiment], ["Trials", `${sweep.trials}${sweep.n_trials ? ` of ${sweep.n_trials}` : ""}${counts ? ` (${counts})` : ""}`],
      ["Fitness", sweep.fitness ? `${sweep.fitness} (${direction()})` : ""], ["Best", best],
      ["Created", time(typeof sweep.created_at === "number" ? new Date(sweep.created_at * 1000).toISOString() : sweep.created_at)],
    ].filter(([, v]) => v);
    fill(header,
      h("div", { class: "title" }, h("h1", { text: sweep.id }), stateBadge(sweep.state), actions),
      sweep.message ? h("p", { class: "message", text: sweep.message }) : null,
      h("dl", { class: "facts" }, facts.map(([k, v]) => h("div", {}, h("dt", { text: k }), h("dd", { text: v })))),
      sweep.retrain_job_id ? h("p", {}, "Best trial retrained as ", h("a", { href: `/jobs/${encodeURIComponent(sweep.retrain_job_id)}`, class: "job-link", text: sweep.retrain_job_id })) : null);
    header.setAttribute("data-state", sweep.state);
  }

  function renderTable() {
    if (!sweep) return;
    const keys = paramKeys();
    const list = trials();
    const bestNumber = sweep.best ? sweep.best.number : null;
    if (!list.length) { fill(tableBox, h("p", { class: "muted", text: "No trials yet: the first ones are being asked for." })); return; }
    const shown = list.filter((t) => !selected || selected.has(String(t.number)));
    fill(tableBox,
      h("h2", { text: selected ? `Trials (${shown.length} of ${list.length} in the brushed ranges)` : `Trials (${list.length})` }),
      h("table", { class: "trials-table" },
        h("thead", {}, h("tr", {},
          h("th", { scope: "col", class: "num", text: "#" }), h("th", { scope: "col", text: "state" }), h("th", { scope: "col", class: "num", text: "epochs" }),
          keys.map((k) => h("th", { scope: "col", class: "num", text: k })), h("th", { scope: "col", class: "num", text: sweep.fitness || "value" }))),
        h("tbody", {}, shown.map((t) => {
          const state = t.told || t.state || "asked";
          const epochs = t.told === "pruned" ? `pruned at ${t.reported ?? t.epoch ?? "?"}` : (t.epoch ?? t.reported ?? "");
          return h("tr", { "data-trial": t.number, "data-state": state, class: t.number === bestNumber ? "best" : undefined },
            h("td", { class: "num" }, h("a", { href: `/jobs/${encodeURIComponent(t.job_id)}`, text: String(t.number), title: t.job_id })),
            h("td", {}, stateBadge(state), t.number === bestNumber ? h("span", { class: "sub", text: " best" }) : null,
              t.message && state === "failed" ? h("div", { class: "sub", text: t.message }) : null),
            h("td", { class: "num epoch", text: String(epochs) }),
            keys.map((k) => h("td", { class: "num", text: display((t.params || {})[k]) })),
            h("td", { class: "num", text: display(t.value) }));
        }))));
  }

  function renderCharts() {
    const list = trials();
    const best = bestSoFar(list, direction());
    bestChart.set(list.map((t, i) => ({ epoch: t.number, values: {
      ...(typeof t.value === "number" && t.told === "succeeded" ? { trial: t.value } : {}),
      ...(best[i] !== null ? { "best so far": best[i] } : {}),
    } })), ["trial", "best so far"]);

    const keys = paramKeys();
    const values = list.map((t) => (typeof t.value === "number" ? t.value : null)).filter((v) => v !== null);
    const lo = Math.min(...values), hi = Math.max(...values);
    const colour = (v) => (typeof v === "number" && hi > lo ? ramp((v - lo) / (hi - lo)) : typeof v === "number" ? ramp(1) : "#8a94a0");
    parallel.set([...keys.map((k) => ({ key: k, label: k })), { key: "__value", label: sweep.fitness || "value" }],
      list.map((t) => ({
        id: String(t.number), title: `trial ${t.number} (${t.told || t.state || "asked"})`,
        values: { ...(t.params || {}), __value: typeof t.value === "number" ? t.value : null },
        colour: colour(t.value), dashed: t.told && t.told !== "succeeded",
      })));

    // Fitness against each numeric parameter: one small scatter each.
    fill(scatterBox);
    for (const key of keys) {
      const points = list.filter((t) => typeof (t.params || {})[key] === "number" && typeof t.value === "number").map((t) => [t.params[key], t.value, t.number]);
      if (points.length < 2) continue;
      scatterBox.append(scatter(key, sweep.fitness || "value", points, colour));
    }
  }

  function render() {
    renderHeader();
    renderTable();
    renderCharts();
  }

  async function load() {
    try {
      sweep = await get(`/api/sweeps/${encodeURIComponent(id)}`);
      if (closed) return;
      fill(status);
      status.classList.remove("error");
      render();
    } catch (error) {
      if (!closed) showError(status, error);
    }
  }

  /** Re-reads the sweep at most every 300 ms while events arrive. */
  function reload() {
    if (reloadTimer || closed) return;
    reloadTimer = setTimeout(() => { reloadTimer = null; load(); }, 300);
  }

  (async () => {
    try {
      const after = await head();
      await load();
      if (closed || !sweep) return;
      // One stream (a browser has few connections to a host): the sweep's own
      // events and its trials', which are jobs of the sweep's experiment.
      const concerns = (event) => event.entity !== "sweep" || event.id === id;
      const handlers = {};
      for (const name of ["sweep.state", "sweep.trial", "job.state", "job.epoch"]) handlers[name] = (event) => { if (concerns(event)) reload(); };
      stopFollowing = follow({ experiment: sweep.experiment, type: "state,trial,epoch" }, after, handlers, load);
    } catch (error) {
      if (!closed) showError(status, error);
    }
  })();

  return () => {
    closed = true;
    if (stopFollowing) stopFollowing();
    clearTimeout(reloadTimer);
    bestChart.destroy();
    parallel.destroy();
  };
}

/** A small SVG scatter of value against one parameter. */
function scatter(key, valueLabel, points, colour) {
  const SVG = "http://www.w3.org/2000/svg";
  const make = (tag, attrs, text) => {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = text;
    return node;
  };
  const width = 300, height = 180, m = { l: 44, r: 10, t: 10, b: 28 };
  const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
  const log = Math.min(...xs) > 0 && Math.max(...xs) / Math.min(...xs) > 100;
  const fx = log ? Math.log10 : (x) => x;
  let x0 = Math.min(...xs.map(fx)), x1 = Math.max(...xs.map(fx)), y0 = Math.min(...ys), y1 = Math.max(...ys);
  if (x0 === x1) { x0 -= 1; x1 += 1; }
  if (y0 === y1) { y0 -= 1; y1 += 1; }
  const X = (x) => m.l + ((fx(x) - x0) / (x1 - x0)) * (width - m.l - m.r);
  const Y = (y) => height - m.b - ((y - y0) / (y1 - y0)) * (height - m.t - m.b);
  const svg = make("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": `${valueLabel} against ${key}` });
  svg.append(make("line", { x1: m.l, x2: width - m.r, y1: height - m.b, y2: height - m.b, class: "axis-line" }));
  svg.append(make("line", { x1: m.l, x2: m.l, y1: m.t, y2: height - m.b, class: "axis-line" }));
  svg.append(make("text", { x: width / 2, y: height - 6, "text-anchor": "middle", class: "tick" }, `${key}${log ? " (log)" : ""}`));
  svg.append(make("text", { x: 4, y: m.t + 8, class: "tick" }, number(y1, 3)));
  svg.append(make("text", { x: 4, y: height - m.b, class: "tick" }, number(y0, 3)));
  for (const [x, y, n] of points) {
    const dot = make("circle", { cx: X(x).toFixed(1), cy: Y(y).toFixed(1), r: 4, fill: colour(y), "data-trial": n });
    dot.append(make("title", {}, `trial ${n}: ${key} ${number(x)}, ${valueLabel} ${number(y)}`));
    svg.append(dot);
  }
  const figure = document.createElement("figure");
  figure.className = "chart scatter";
  const caption = document.createElement("figcaption");
  caption.textContent = `${valueLabel} against ${key}`;
  figure.append(caption, svg);
  return figure;
}
