// Jobs: the queue and history, newest first, paged on the server
// (?limit, ?before: the last page's `next`) and filtered there (?state,
// ?experiment, ?model, ?dataset), kept live by the event log: a new job
// appears and states, epochs and fitness change without a reload.

import { get, post } from "../lib/api.js";
import { follow, head } from "../lib/events.js";
import { h, fill } from "../lib/dom.js";
import { time, number, epochOf, progressOf, jobStates, activeStates, resumableStates } from "../lib/format.js";
import { showError, stateBadge } from "./common.js";

const pageSize = 50;

export function mount(root, { query, navigate }) {
  const state = query.get("state") || "";
  const limit = Math.min(1000, Math.max(pageSize, Number(query.get("limit")) || pageSize));
  // Text filters, as the URL holds them (shareable), applied by the server.
  const textFilters = ["experiment", "model", "dataset"];
  const wanted = Object.fromEntries(textFilters.map((key) => [key, (query.get(key) || "").trim()]));
  let next = null;  // the cursor of the page after the rows shown
  const rows = new Map();  // job id -> {job, tr}
  // Jobs ticked for Compare (2 to 10), while the page is open.
  const picked = new Set();
  let stop = null;
  let closed = false;

  const filter = h("select", { id: "state-filter", "aria-label": "Filter by state" },
    h("option", { value: "", text: "All states" }),
    jobStates.map((s) => h("option", { value: s, text: s, selected: s === state })));
  const inputs = Object.fromEntries(textFilters.map((key) => [key, h("input", {
    type: "search", id: `${key}-filter`, class: "text-filter", value: wanted[key], placeholder: key,
    "aria-label": `Filter by ${key}`, autocomplete: "off", spellcheck: "false",
  })]));
  function applyFilters() {
    const next = new URLSearchParams();
    if (filter.value) next.set("state", filter.value);
    for (const key of textFilters) if (inputs[key].value.trim()) next.set(key, inputs[key].value.trim());
    const target = "/jobs" + (next.toString() ? `?${next}` : "");
    if (target !== location.pathname + location.search) navigate(target);  // Enter then blur: once
  }
  filter.addEventListener("change", applyFilters);
  for (const input of Object.values(inputs)) {
    input.addEventListener("change", applyFilters);  // leaving the field after an edit
    input.addEventListener("keydown", (event) => { if (event.key === "Enter") applyFilters(); });
  }
  const compareButton = h("button", { type: "button", id: "compare", text: "Compare" });
  compareButton.addEventListener("click", () => navigate(`/compare?jobs=${[...picked].map(encodeURIComponent).join(",")}`));
  function updateCompare() {
    compareButton.textContent = `Compare (${picked.size})`;
    compareButton.disabled = picked.size < 2 || picked.size > 10;
    compareButton.title = picked.size > 10 ? "at most 10 runs" : picked.size < 2 ? "tick 2 to 10 jobs" : "";
  }
  updateCompare();
  const status = h("p", { class: "status", role: "status" });
  const body = h("tbody");
  const table = h("table", { class: "jobs" },
    h("thead", {}, h("tr", {},
      h("th", { scope: "col", class: "pick" }, h("span", { class: "skip", text: "Compare" })),
      h("th", { scope: "col", text: "Job" }), h("th", { scope: "col", text: "State" }),
      h("th", { scope: "col", text: "Epoch" }), h("th", { scope: "col", class: "wide", text: "Progress" }),
      h("th", { scope: "col", class: "num wide", text: "Fitness" }), h("th", { scope: "col", class: "wide", text: "Created" }),
      h("th", { scope: "col", text: "" }))),
    body);
  // The next page from the server's cursor, appended below (any number of pages).
  const more = h("button", { type: "button", class: "more", hidden: true, text: "Show more" });
  more.addEventListener("click", async () => {
    more.disabled = true;
    try {
      const page = await get(`/api/jobs?${listParams(next)}`);
      if (closed) return;
      for (const job of page.jobs) if (!rows.has(job.id)) body.append(row(job));
      next = page.next || null;
      more.hidden = !next;
    } catch (error) { showError(status, error); } finally { more.disabled = false; }
  });
  fill(root,
    h("div", { class: "toolbar" }, h("h1", { text: "Jobs" }), compareButton, h("label", { class: "filter" }, "State ", filter)),
    h("div", { class: "filters", role: "search" }, textFilters.map((key) => inputs[key])),
    status, h("div", { class: "scroll" }, table), more);

  function listParams(before) {
    const params = new URLSearchParams({ limit: String(limit) });
    if (state) params.set("state", state);
    for (const key of textFilters) if (wanted[key]) params.set(key, wanted[key]);
    if (before) params.set("before", before);
    return params;
  }

  /** Whether a job fetched because it was queued belongs on this filtered page. */
  function shown(job) {
    if (wanted.experiment && job.experiment !== wanted.experiment) return false;
    if (wanted.model && job.model !== wanted.model) return false;
    if (wanted.dataset && !(job.dataset === wanted.dataset || (job.dataset || "").startsWith(wanted.dataset + "@"))) return false;
    return true;
  }

  function row(job) {
    const tr = h("tr", { "data-job": job.id });
    rows.set(job.id, { job, tr });
    render(job.id);
    return tr;
  }

  function render(id) {
    const { job, tr } = rows.get(id);
    tr.setAttribute("data-state", job.state);
    const actions = h("td", { class: "actions" });
    if (activeStates.has(job.state) && job.state !== "stopping") actions.append(action("Stop", job, "stop"));
    if (resumableStates.has(job.state)) actions.append(action("Resume", job, "resume"));
    const progress = h("progress", { max: "1", value: String(progressOf(job)), "aria-label": `progress of ${job.id}` });
    const box = h("input", { type: "checkbox", "data-compare": job.id, checked: picked.has(job.id), "aria-label": `compare ${job.id}` });
    box.addEventListener("change", () => {
      if (box.checked) picked.add(job.id); else picked.delete(job.id);
      updateCompare();
    });
    fill(tr,
      h("td", { class: "pick" }, box),
      h("td", { class: "job" }, h("a", { href: `/jobs/${encodeURIComponent(job.id)}`, class: "job-link", text: job.id }),
        h("div", { class: "sub", text: [job.experiment, job.model, job.owner && `by ${job.owner}`,
          Number.isInteger(job.priority) && job.priority !== 5 && `priority ${job.priority}`].filter(Boolean).join(" · ") })),
      h("td", { class: "state" }, stateBadge(job.state)),
      h("td", { class: "epoch", text: epochOf(job) }),
      h("td", { class: "wide" }, progress),
      h("td", { class: "num wide", text: number(job.fitness) }),
      h("td", { class: "wide", text: time(job.created_at) }),
      actions);
  }

  function action(label, job, verb) {
    return h("button", {
      type: "button", class: "small", "data-action": verb, "aria-label": `${label} ${job.id}`, text: label,
      onclick: async (event) => {
        event.currentTarget.disabled = true;
        try {
          const updated = await post(`/api/jobs/${encodeURIComponent(job.id)}/${verb}`);
          if (updated && rows.has(job.id)) { rows.get(job.id).job = { ...rows.get(job.id).job, ...updated }; render(job.id); }
        } catch (error) { showError(status, error); }
      },
    });
  }

  // A job not on the page is fetched when it is queued (new, or resumed);
  // events for it that land while it is fetched wait and are applied after,
  // in order, so the row ends in the state the log ends in.
  const pending = new Map();  // job id -> events waiting for its row

  function onState(event) {
    if (pending.has(event.id)) return pending.get(event.id).push(event);
    const entry = rows.get(event.id);
    if (entry) {
      entry.job.state = event.data.state;
      if (event.data.message !== undefined) entry.job.message = event.data.message;
      return render(event.id);
    }
    if (event.data.state !== "queued" || (state && state !== "queued")) return;
    pending.set(event.id, []);
    get(`/api/jobs/${encodeURIComponent(event.id)}`).then((job) => {
      const waiting = pending.get(event.id) || [];
      pending.delete(event.id);
      if (closed || rows.has(job.id) || !shown(job)) return;
      body.prepend(row(job));
      for (const later of waiting) (later.type === "epoch" ? onEpoch : onState)(later);
    }).catch(() => pending.delete(event.id));
  }

  function onEpoch(event) {
    if (pending.has(event.id)) return pending.get(event.id).push(event);
    const entry = rows.get(event.id);
    if (!entry) return;
    if (Number.isFinite(event.data.epoch)) entry.job.epoch = event.data.epoch;
    if (Number.isFinite(event.data.epochs)) entry.job.epochs = event.data.epochs;
    if (Number.isFinite(event.data.fitness)) entry.job.fitness = event.data.fitness;
    render(event.id);
  }

  async function load() {
    rows.clear();
    pending.clear();
    const after = await head();
    const page = await get(`/api/jobs?${listParams(null)}`);
    const jobs = page.jobs;
    if (closed) return;
    fill(body, jobs.map(row));
    next = page.next || null;
    // When the first page is on screen (bench/dashboard.sh reads it).
    if (!performance.getEntriesByName("jobs-rendered").length) performance.mark("jobs-rendered");
    const filtered = state || textFilters.some((key) => wanted[key]);
    fill(status, jobs.length ? "" : filtered ? "No job matches these filters." : "No jobs yet: yard submit JOB.yaml submits one.");
    more.hidden = !next;
    if (stop) stop();
    stop = follow({ entity: "job", type: "state,epoch" }, after, { "job.state": onState, "job.epoch": onEpoch }, () => load().catch((e) => showError(status, e)));
  }

  load().catch((error) => showError(status, error));
  return () => { closed = true; if (stop) stop(); };
}
