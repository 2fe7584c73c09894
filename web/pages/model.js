// Model: its versions (newest first) with their aliases inline, metrics,
// health check and exports; promote (the hot swap) through a dialog that
// first shows the candidate against the version holding the alias (metric
// deltas, dataset version, config diff), and roll an alias back; the alias
// moves below. Follows the log: a version added or an alias moved re-reads it.

import { get, post } from "../lib/api.js";
import { diff, show } from "../lib/diff.js";
import { follow, head } from "../lib/events.js";
import { h, fill } from "../lib/dom.js";
import { time, number } from "../lib/format.js";
import { showError } from "./common.js";

/** A job's dataset version (NAME@ID), else the data.yaml it named. */
const dataOf = (job) => (job && (job.dataset || (job.config && job.config.train && job.config.train.data))) || "—";


export function mount(root, { params }) {
  const name = params.name;
  let data = null;
  let closed = false;
  let stopFollowing = null;

  const status = h("p", { class: "status", role: "status" });
  const header = h("section", { class: "job-header model-header", "aria-label": "Model" });
  const versionsBox = h("section", { class: "scroll", "aria-label": "Versions" });
  const historyBox = h("section", { class: "scroll", "aria-label": "Alias moves" });
  const dialog = h("dialog", { class: "promote", "aria-label": "Promote a version" });
  fill(root, h("p", { class: "crumbs" }, h("a", { href: "/models", text: "Models" }), " / ", h("span", { text: name })),
    status, header, versionsBox, historyBox, dialog);

  function renderHeader() {
    const aliases = Object.entries(data.model.aliases || {}).sort(([a], [b]) => a.localeCompare(b));
    fill(header,
      h("div", { class: "title" }, h("h1", { text: data.model.name }),
        h("a", { href: `/playground?model=${encodeURIComponent(data.model.name)}`, class: "try", text: "Try it in the playground" })),
      h("dl", { class: "facts" },
        h("div", {}, h("dt", { text: "Versions" }), h("dd", { text: String(data.model.versions.length) })),
        h("div", {}, h("dt", { text: "Latest" }), h("dd", { text: data.model.latest }))),
      aliases.length ? h("ul", { class: "aliases", "aria-label": "Aliases" }, aliases.map(([alias, version]) => h("li", { "data-alias": alias },
        h("span", { class: "chip", text: `${alias} → v${version}` }),
        h("button", { type: "button", class: "small", "data-action": "rollback", text: "Roll back",
          title: `point ${alias} back at the version it held before`,
          onclick: (event) => act(event, `/api/models/${encodeURIComponent(name)}/aliases/${encodeURIComponent(alias)}/rollback`) })))) : null);
  }

  async function act(event, path, body) {
    event.currentTarget.disabled = true;
    try { await post(path, body); await load(); } catch (error) { showError(status, error); event.target.disabled = false; }
  }

  function renderVersions() {
    const metricKeys = [...new Set(data.model.versions.flatMap((v) => Object.keys(v.metrics || {})))].filter((k) => /mAP|fitness|precision|recall/i.test(k)).slice(0, 4);
    fill(versionsBox, h("h2", { text: "Versions" }), h("table", { class: "versions" },
      h("thead", {}, h("tr", {},
        h("th", { scope: "col", text: "version" }), h("th", { scope: "col", text: "aliases" }), h("th", { scope: "col", text: "job" }),
        metricKeys.map((k) => h("th", { scope: "col", class: "num wide", text: k })),
        h("th", { scope: "col", class: "wide", text: "health" }), h("th", { scope: "col", class: "wide", text: "exports" }),
        h("th", { scope: "col", class: "wide", text: "created" }), h("th", { scope: "col", text: "" }))),
      h("tbody", {}, data.model.versions.map((v) => h("tr", { "data-version": v.version },
        h("td", { text: `v${v.version}`, title: v.sha256 ? `sha256 ${v.sha256}` : undefined }),
        h("td", {}, (v.aliases || []).map((a) => h("span", { class: "chip", text: a }))),
        h("td", {}, h("a", { href: `/jobs/${encodeURIComponent(v.job_id)}`, class: "job-link", text: v.job_id })),
        metricKeys.map((k) => h("td", { class: "num wide", text: number((v.metrics || {})[k]) })),
        h("td", { class: "wide", text: v.health ? (v.health.ok ? "ok" : `failed: ${v.health.reason || "?"}`) : "" }),
        h("td", { class: "wide", text: Object.keys(v.exports || {}).join(", ") }),
        h("td", { class: "wide nowrap", text: time(v.created_at) }),
        h("td", { class: "actions" }, h("button", { type: "button", class: "small", "data-action": "promote", text: "Promote…",
          onclick: () => openPromote(v) })))))));
  }

  function renderHistory() {
    const moves = data.history || [];
    fill(historyBox, h("h2", { text: "Alias moves" }), moves.length ? h("table", { class: "history" },
      h("thead", {}, h("tr", {}, ["time", "alias", "from", "to", "reason"].map((c) => h("th", { scope: "col", text: c })))),
      h("tbody", {}, moves.map((m) => h("tr", {},
        h("td", { text: time(m.time) }), h("td", { text: m.alias }), h("td", { text: m.previous ? `v${m.previous}` : "—" }),
        h("td", { text: m.version ? `v${m.version}` : "(removed)" }), h("td", { text: m.reason })))))
      : h("p", { class: "muted", text: "No alias has been set." }));
  }

  /** The dialog: the candidate against the alias's holder, then the move. */
  function openPromote(candidate) {
    const aliasInput = h("input", { name: "alias", value: "production", list: "known-aliases", required: true, maxlength: 64, "aria-label": "Alias" });
    const known = h("datalist", { id: "known-aliases" }, Object.keys(data.model.aliases || {}).map((a) => h("option", { value: a })));
    const comparison = h("div", { class: "comparison", "aria-live": "polite" });
    const message = h("p", { class: "status", role: "status" });
    const hideSame = h("input", { type: "checkbox", checked: true, "aria-label": "Hide identical config values" });
    const confirm = h("button", { type: "submit", text: "Move alias" });
    let round = 0;

    async function compare() {
      const alias = aliasInput.value.trim();
      const mine = ++round;
      const holderNumber = (data.model.aliases || {})[alias];
      const holder = data.model.versions.find((v) => v.version === holderNumber);
      fill(comparison, h("p", { class: "muted", text: "Reading both runs…" }));
      const jobOf = (v) => (v ? get(`/api/jobs/${encodeURIComponent(v.job_id)}`).catch(() => null) : Promise.resolve(null));
      const [candidateJob, holderJob] = await Promise.all([jobOf(candidate), jobOf(holder)]);
      if (mine !== round || closed) return;
      const metrics = [...new Set([...Object.keys(candidate.metrics || {}), ...Object.keys((holder && holder.metrics) || {})])].sort();
      const rows = diff(holderJob && holderJob.config, candidateJob && candidateJob.config);
      const renderDiff = () => rows.filter((r) => !hideSame.checked || !r[3]).map(([key, a, b, same]) =>
        h("tr", { class: same ? "same" : "changed" }, h("th", { scope: "row", text: key }), h("td", { text: show(a) }), h("td", { text: show(b) })));
      const diffBody = h("tbody", {}, renderDiff());
      hideSame.onchange = () => fill(diffBody, renderDiff());
      fill(comparison,
        h("p", { text: holder ? `${alias} is on v${holder.version}; v${candidate.version} would take it.` : `No version holds ${alias} yet; v${candidate.version} would take it.` }),
        h("table", { class: "deltas" },
          h("thead", {}, h("tr", {}, h("th", { scope: "col", text: "metric" }), h("th", { scope: "col", class: "num", text: holder ? `v${holder.version}` : "—" }),
            h("th", { scope: "col", class: "num", text: `v${candidate.version}` }), h("th", { scope: "col", class: "num", text: "change" }))),
          h("tbody", {}, metrics.map((k) => {
            const a = holder && holder.metrics ? holder.metrics[k] : undefined, b = (candidate.metrics || {})[k];
            const delta = typeof a === "number" && typeof b === "number" ? b - a : null;
            const better = delta === null ? "" : /loss/i.test(k) ? (delta < 0 ? "better" : delta > 0 ? "worse" : "") : (delta > 0 ? "better" : delta < 0 ? "worse" : "");
            return h("tr", { "data-metric": k }, h("th", { scope: "row", text: k }), h("td", { class: "num", text: number(a) }), h("td", { class: "num", text: number(b) }),
              h("td", { class: `num ${better}`, text: delta === null ? "" : `${delta > 0 ? "+" : ""}${number(delta)}` }));
          }))),
        h("dl", { class: "facts" },
          h("div", {}, h("dt", { text: "Data now" }), h("dd", { text: dataOf(holderJob) })),
          h("div", {}, h("dt", { text: "Data after" }), h("dd", { text: dataOf(candidateJob) }))),
        h("details", { class: "config-diff", open: true }, h("summary", { text: "Config" }),
          h("label", { class: "sub" }, hideSame, " hide identical values"),
          h("div", { class: "scroll" }, h("table", { class: "diff" },
            h("thead", {}, h("tr", {}, h("th", { scope: "col", text: "key" }), h("th", { scope: "col", text: holder ? `v${holder.version}` : "—" }), h("th", { scope: "col", text: `v${candidate.version}` }))),
            diffBody))));
    }

    const form = h("form", { method: "dialog", onsubmit: async (event) => {
      event.preventDefault();
      confirm.disabled = true;
      try {
        await post(`/api/models/${encodeURIComponent(name)}/aliases`, { alias: aliasInput.value.trim(), version: candidate.version });
        dialog.close();
        await load();
      } catch (error) {
        showError(message, error);
        confirm.disabled = false;
      }
    } },
    h("h2", { text: `Promote v${candidate.version} of ${name}` }),
    h("label", {}, "Alias ", aliasInput), known, comparison, message,
    h("div", { class: "dialog-actions" }, h("button", { type: "button", text: "Cancel", onclick: () => dialog.close() }), confirm));
    aliasInput.addEventListener("change", compare);
    fill(dialog, form);
    dialog.showModal();
    compare();
  }

  async function load() {
    try {
      data = await get(`/api/models/${encodeURIComponent(name)}`);
      if (closed) return;
      fill(status);
      status.classList.remove("error");
      renderHeader();
      renderVersions();
      renderHistory();
    } catch (error) {
      if (!closed) showError(status, error);
    }
  }

  (async () => {
    try {
      const after = await head();
      await load();
      if (closed || !data) return;
      stopFollowing = follow({ entity: "model", id: name }, after, { "model.version": load, "model.alias": load }, load);
    } catch (error) {
      if (!closed) showError(status, error);
    }
  })();

  return () => {
    closed = true;
    if (stopFollowing) stopFollowing();
    if (dialog.open) dialog.close();
  };
}
