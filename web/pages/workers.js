// The workers: one card each with its state (busy, idle, lost), host,
// device and tags, the job it runs, every GPU's use, memory and
// temperature as bars, how long ago it was last heard from (late past its
// lease), and what it still has to send. Read again every few seconds
// while the tab is shown (a heartbeat is not an event in the log).
// Everything from a worker is set as text.

import { get } from "../lib/api.js";
import { h, fill } from "../lib/dom.js";
import { time } from "../lib/format.js";
import { showError } from "./common.js";

export const refreshEvery = 5000;
const order = { busy: 0, idle: 1, lost: 2 };

/** "12 s ago", "3 min ago", "2 h ago". */
export function ago(iso, now = Date.now()) {
  const at = Date.parse(iso);
  if (!Number.isFinite(at)) return "";
  const seconds = Math.max(0, Math.round((now - at) / 1000));
  if (seconds < 90) return `${seconds} s ago`;
  if (seconds < 90 * 60) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 48 * 3600) return `${Math.round(seconds / 3600)} h ago`;
  return `${Math.round(seconds / 86400)} d ago`;
}

function meter(label, fraction, text, warn) {
  const value = Math.max(0, Math.min(1, Number.isFinite(fraction) ? fraction : 0));
  return h("div", { class: "meter-row" },
    h("span", { class: "meter-label", text: label }),
    h("span", { class: `meter${warn ? " warn" : ""}`, role: "meter", "aria-label": label, "aria-valuemin": "0", "aria-valuemax": "100",
      "aria-valuenow": String(Math.round(value * 100)) },
      h("span", { class: "meter-fill", "data-width": String(Math.round(value * 100)) })),
    h("span", { class: "meter-text", text }));
}

function gpu(g) {
  const used = (g.memory_used_mib ?? 0) / 1024, total = (g.memory_total_mib ?? 0) / 1024;
  const util = Number(g.utilization_percent);
  return h("div", { class: "gpu" },
    h("div", { class: "gpu-name", text: `GPU ${g.index ?? ""} · ${g.name ?? "unknown"}` + (g.temperature_c !== undefined ? ` · ${g.temperature_c}°C` : "") }),
    meter("use", util / 100, Number.isFinite(util) ? `${util}%` : "?"),
    meter("memory", total ? used / total : 0, `${used.toFixed(1)} / ${total.toFixed(0)} GiB`, total && used / total > 0.9));
}

/** One worker's card (exported for the browser test, which feeds it hostile text). */
export function card(worker, now = Date.now()) {
  const status = String(worker.status || "idle");
  const late = worker.expires_at && Date.parse(worker.expires_at) < now && status !== "lost";
  const facts = [worker.host, worker.device, worker.pid ? `pid ${worker.pid}` : null].filter(Boolean).join(" · ");
  const tags = Array.isArray(worker.tags) ? worker.tags : [];
  const backlog = worker.backlog || {};
  const waiting = [backlog.reports ? `${backlog.reports} reports` : null, backlog.spool_operations ? `${backlog.spool_operations} tracking calls` : null].filter(Boolean);
  const gpus = Array.isArray(worker.gpus) ? worker.gpus : [];
  return h("article", { class: `worker-card worker-${status}`, "data-worker": worker.id, "data-status": status },
    h("header", {},
      h("h2", { text: worker.id }),
      h("span", { class: `badge worker-state state-${status === "busy" ? "running" : status === "lost" ? "failed" : "stopped"}`, text: status })),
    h("p", { class: "muted", text: facts }),
    tags.length ? h("p", { class: "tags" }, tags.map((t) => h("span", { class: "tag", text: t }))) : null,
    h("p", {}, worker.job ? ["Running ", h("a", { href: `/jobs/${encodeURIComponent(worker.job)}`, class: "job-link", text: worker.job })]
      : status === "lost" ? "Lost: its job, if it had one, went back to the queue." : "Idle"),
    gpus.length ? h("div", { class: "gpus" }, gpus.map(gpu))
      : h("p", { class: "muted", text: worker.gpu_error ? `No GPU stats: ${worker.gpu_error}` : "No GPU" }),
    h("p", { class: `heard${late ? " late" : ""}`, title: time(worker.heartbeat_at) },
      `Last heard ${ago(worker.heartbeat_at, now)}` + (late ? " (past its lease)" : "") + (worker.started_at ? ` · up since ${time(worker.started_at)}` : "")),
    waiting.length ? h("p", { class: "muted", text: `Still to send: ${waiting.join(", ")}` }) : null);
}

/** Bars are sized by a class per 5% step: the page's CSP allows no inline style. */
function sizeMeters(root) {
  for (const fill of root.querySelectorAll(".meter-fill[data-width]")) {
    fill.classList.add(`w${Math.round(Number(fill.dataset.width) / 5) * 5}`);
  }
}

export function mount(root) {
  const status = h("p", { class: "status", role: "status", text: "Loading…" });
  const summary = h("p", { class: "muted", "aria-live": "polite" });
  const grid = h("div", { class: "worker-grid" });
  fill(root, h("div", { class: "toolbar" }, h("h1", { text: "Workers" }), summary), status, grid);
  let closed = false, timer = 0;
  async function load() {
    clearTimeout(timer);
    if (closed) return;
    try {
      const data = await get("/api/workers");
      if (closed) return;
      const workers = (Array.isArray(data && data.workers) ? data.workers : [])
        .sort((a, b) => (order[a.status] ?? 1) - (order[b.status] ?? 1) || String(a.id).localeCompare(String(b.id)));
      const counts = {};
      for (const w of workers) counts[w.status] = (counts[w.status] || 0) + 1;
      fill(summary, workers.length ? `${workers.length} worker${workers.length === 1 ? "" : "s"}: ` +
        ["busy", "idle", "lost"].filter((s) => counts[s]).map((s) => `${counts[s]} ${s}`).join(", ") : "");
      fill(status, workers.length ? "" : "No workers have announced themselves: yard up starts one, yard worker --redis adds more.");
      const now = Date.now();
      fill(grid, workers.map((w) => card(w, now)));
      sizeMeters(grid);
    } catch (error) {
      showError(status, error);
    }
    if (!closed && !document.hidden) timer = setTimeout(load, refreshEvery);
  }
  const visibility = () => { if (!document.hidden) load(); else clearTimeout(timer); };
  document.addEventListener("visibilitychange", visibility);
  load();
  return () => { closed = true; clearTimeout(timer); document.removeEventListener("visibilitychange", visibility); };
}
