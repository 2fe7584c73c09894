// Dataset: its versions, newest first, each with its DVC hash (the version's
// id), where it came from, counts per split and per class, the jobs that
// trained on it, and its validation report (problems by file) on demand.

import { get } from "../lib/api.js";
import { h, fill } from "../lib/dom.js";
import { time, number } from "../lib/format.js";
import { showError, stateBadge } from "./common.js";

const splitOrder = ["train", "val", "test"];

function sizeOf(bytes) {
  if (!Number.isFinite(bytes)) return "";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = bytes, unit = 0;
  while (value >= 1000 && unit < units.length - 1) { value /= 1000; unit += 1; }
  return `${unit ? value.toFixed(1) : value} ${units[unit]}`;
}

export function mount(root, { params }) {
  const name = params.name;
  let closed = false;
  const status = h("p", { class: "status", role: "status", text: "Loading…" });
  const body = h("div");
  fill(root, h("p", { class: "crumbs" }, h("a", { href: "/datasets", text: "Datasets" }), " / ", h("span", { text: name })),
    h("div", { class: "toolbar" }, h("h1", { text: name })), status, body);

  function version(v) {
    const rank = (s) => (splitOrder.includes(s) ? splitOrder.indexOf(s) : splitOrder.length);
    const splits = Object.keys(v.splits || {}).sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
    const classes = v.classes || [];
    const report = h("details", { class: "report" }, h("summary", { text: `Validation report (${v.errors || 0} errors, ${v.warnings || 0} warnings)` }));
    let loaded = false;
    report.addEventListener("toggle", () => {
      if (!report.open || loaded) return;
      loaded = true;
      const box = h("div", { class: "scroll" }, h("p", { class: "muted", text: "Loading…" }));
      report.append(box);
      get(`/api/datasets/${encodeURIComponent(name)}/versions/${v.number}/report`).then((r) => {
        if (closed) return;
        const problems = r.problems || [];
        fill(box, problems.length ? h("table", { class: "problems" },
          h("thead", {}, h("tr", {}, ["severity", "kind", "where", "what"].map((c) => h("th", { scope: "col", text: c })))),
          h("tbody", {}, problems.slice(0, 1000).map((p) => h("tr", { "data-kind": p.kind },
            h("td", { class: p.severity === "error" ? "error" : "", text: p.severity }), h("td", { text: p.kind }),
            h("td", { class: "job-link", text: p.line ? `${p.file}:${p.line}` : p.file }), h("td", { text: p.message })))))
          : h("p", { class: "muted", text: `No problems in ${number(r.files)} files.` }),
          problems.length > 1000 ? h("p", { class: "muted", text: `${problems.length - 1000} more: yard datasets show ${name}@${v.number}` }) : null);
      }).catch((error) => { const p = h("p", { class: "status" }); showError(p, error); fill(box, p); });
    });
    return h("section", { class: "dataset-version", "data-version": v.number, "aria-label": `version ${v.number}` },
      h("h2", {}, `v${v.number} `, h("span", { class: "sub", text: time(v.created_at) })),
      h("dl", { class: "facts" },
        h("div", {}, h("dt", { text: "DVC hash (id)" }), h("dd", { class: "job-link hash", text: v.id })),
        h("div", {}, h("dt", { text: "Source" }), h("dd", { text: v.source || "" })),
        h("div", {}, h("dt", { text: "Format" }), h("dd", { text: [v.format, v.task].filter(Boolean).join(" · ") })),
        h("div", {}, h("dt", { text: "Files" }), h("dd", { text: `${number(v.files)} (${sizeOf(v.bytes)})` }))),
      (v.notes || []).length ? h("ul", { class: "notes" }, v.notes.map((n) => h("li", { text: n }))) : null,
      h("div", { class: "scroll" }, h("table", { class: "splits" },
        h("thead", {}, h("tr", {}, h("th", { scope: "col", text: "" }), splits.map((s) => h("th", { scope: "col", class: "num", text: s })))),
        h("tbody", {},
          ["images", "labelled", "instances"].map((key) => h("tr", { "data-row": key }, h("th", { scope: "row", text: key }),
            splits.map((s) => h("td", { class: "num", text: number((v.splits[s] || {})[key]) })))),
          classes.map((c, i) => h("tr", { "data-class": c }, h("th", { scope: "row", class: "class-name", text: c }),
            splits.map((s) => h("td", { class: "num", text: number(((v.splits[s] || {}).class_counts || [])[i] ?? 0) }))))))),
      (v.jobs || []).length
        ? h("div", {}, h("h3", { text: "Trained on it" }), h("ul", { class: "jobs-list" }, v.jobs.map((j) => h("li", {},
          h("a", { href: `/jobs/${encodeURIComponent(j.id)}`, class: "job-link", text: j.id }), " ", stateBadge(j.state),
          j.fitness !== null && j.fitness !== undefined ? h("span", { class: "sub", text: ` fitness ${number(j.fitness)}` }) : null))))
        : h("p", { class: "muted", text: `No job has trained on it yet: train: {data: dataset:${name}@${v.number}} in a config.` }),
      report);
  }

  get(`/api/datasets/${encodeURIComponent(name)}`).then((data) => {
    if (closed) return;
    fill(status);
    fill(body, (data.versions || []).map(version));
  }).catch((error) => showError(status, error));
  return () => { closed = true; };
}
