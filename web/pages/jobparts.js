// Parts of the job page below its curves: the plots Ultralytics drew
// (inline), every artifact with a download link, the lineage (dataset
// version, commit, engine versions, device), the test split per class, and
// the clone-and-edit dialog. Everything from the run is set as text; the
// images come from the server's own artifact route.

import { get, post } from "../lib/api.js";
import { h, fill } from "../lib/dom.js";
import { number, time } from "../lib/format.js";

const artifactURL = (id, name) => `/api/jobs/${encodeURIComponent(id)}/artifact?name=${encodeURIComponent(name)}`;

/** The artifact's name within the job (its key without `ID/`). */
function nameOf(job, artifact) {
  return artifact.key.startsWith(job.id + "/") ? artifact.key.slice(job.id.length + 1) : artifact.key;
}

function size(bytes) {
  if (!Number.isFinite(bytes)) return "";
  const units = ["B", "kB", "MB", "GB"];
  let value = bytes, unit = 0;
  while (value >= 1000 && unit < units.length - 1) { value /= 1000; unit += 1; }
  return `${unit ? value.toFixed(1) : value} ${units[unit]}`;
}

// Ultralytics' plots, most telling first; others follow by name.
const plotOrder = ["results.png", "confusion_matrix_normalized.png", "confusion_matrix.png", "BoxPR_curve.png", "PR_curve.png",
  "BoxF1_curve.png", "F1_curve.png", "BoxP_curve.png", "P_curve.png", "BoxR_curve.png", "R_curve.png", "labels.jpg"];

export function renderPlots(section, job) {
  const plots = (job.artifacts || []).filter((a) => /\.(png|jpe?g)$/i.test(a.key))
    .map((a) => ({ name: nameOf(job, a), artifact: a }))
    .filter(({ name }) => !/^(train|val)_batch/.test(name.split("/").pop()))
    .sort((a, b) => {
      const rank = (name) => { const i = plotOrder.indexOf(name.split("/").pop()); return i < 0 ? plotOrder.length : i; };
      return rank(a.name) - rank(b.name) || a.name.localeCompare(b.name);
    });
  section.hidden = !plots.length;
  if (!plots.length) return fill(section);
  fill(section, h("h2", { text: "Plots" }), h("div", { class: "plots" }, plots.map(({ name }) =>
    h("figure", { class: "plot-figure" },
      h("a", { href: artifactURL(job.id, name), target: "_blank", rel: "noopener" },
        h("img", { src: artifactURL(job.id, name), alt: name, loading: "lazy" })),
      h("figcaption", { text: name })))));
}

export function renderArtifacts(section, job) {
  const artifacts = job.artifacts || [];
  section.hidden = !artifacts.length;
  if (!artifacts.length) return fill(section);
  fill(section, h("h2", { text: "Artifacts" }), h("div", { class: "scroll" }, h("table", { class: "artifacts" },
    h("thead", {}, h("tr", {}, h("th", { scope: "col", text: "File" }), h("th", { scope: "col", text: "Kind" }), h("th", { scope: "col", class: "num", text: "Size" }))),
    h("tbody", {}, artifacts.map((artifact) => {
      const name = nameOf(job, artifact);
      return h("tr", {},
        h("td", {}, h("a", { href: artifactURL(job.id, name), download: name.split("/").pop(), text: name })),
        h("td", { text: artifact.kind }), h("td", { class: "num", text: size(artifact.size) }));
    })))));
}

/** Test-split metrics: overall, then one row per class (`test/mAP50/CLASS`). */
export function renderTest(section, job) {
  const metrics = job.test_metrics || {};
  const overall = [], perClass = new Map(), columns = new Set();
  for (const [key, value] of Object.entries(metrics)) {
    const parts = key.split("/");
    if (parts.length === 2) overall.push([parts[1], value]);
    else if (parts.length >= 3) {
      const cls = parts.slice(2).join("/");
      columns.add(parts[1]);
      if (!perClass.has(cls)) perClass.set(cls, {});
      perClass.get(cls)[parts[1]] = value;
    }
  }
  section.hidden = !overall.length && !perClass.size;
  if (section.hidden) return fill(section);
  const cols = ["precision", "recall", "f1", "mAP50", "mAP50-95"].filter((c) => columns.has(c));
  const split = Object.keys(metrics)[0].split("/")[0];
  fill(section, h("h2", { text: `Evaluation on the ${split} split` }),
    overall.length ? h("dl", { class: "facts" }, overall.sort().map(([k, v]) => h("div", {}, h("dt", { text: k }), h("dd", { text: number(v) })))) : null,
    perClass.size ? h("div", { class: "scroll" }, h("table", { class: "per-class" },
      h("thead", {}, h("tr", {}, h("th", { scope: "col", text: "Class" }), cols.map((c) => h("th", { scope: "col", class: "num", text: c })))),
      h("tbody", {}, [...perClass.entries()].sort((a, b) => a[0].localeCompare(b[0])).map(([cls, values]) =>
        h("tr", {}, h("th", { scope: "row", text: cls }), cols.map((c) => h("td", { class: "num", text: number(values[c]) }))))))) : null);
}

/** What made the run: GET /api/lineage/ID, drawn as facts. */
export async function renderLineage(section, id) {
  let lineage;
  try { lineage = await get(`/api/lineage/${encodeURIComponent(id)}`); } catch { section.hidden = true; return; }
  const dataset = lineage.dataset || {}, code = lineage.code || {};
  const version = dataset.version ? `${dataset.version.name} v${dataset.version.number}` : "";
  const facts = [
    ["Dataset", version || dataset.data], ["Dataset hash (DVC)", dataset.hash],
    ["Commit", code.commit ? `${code.commit.slice(0, 12)}${code.dirty ? " (uncommitted changes)" : ""}` : ""],
    ["Seed", lineage.seed], ["Deterministic", lineage.deterministic === undefined ? "" : lineage.deterministic ? "yes" : "no"],
    ["Device", lineage.device], ["Host", lineage.host], ["Worker", lineage.worker],
    ["Fine-tuned from", lineage.parent ? `${lineage.parent.name} v${lineage.parent.version}` : ""],
    ["Rerun of", lineage.rerun_of],
  ].filter(([, v]) => v !== undefined && v !== null && v !== "");
  const engine = Object.entries(lineage.engine || {}).sort();
  fill(section, h("h2", { text: "Lineage" }),
    h("dl", { class: "facts" }, facts.map(([k, v]) => h("div", {}, h("dt", { text: k }), h("dd", { text: String(v) })))),
    engine.length ? h("p", { class: "sub", text: "Engine: " + engine.map(([k, v]) => `${k} ${v}`).join(" · ") }) : null,
    (lineage.attempts || []).length > 1 ? h("ol", { class: "attempts" }, lineage.attempts.map((a) =>
      h("li", { text: [time(a.started), a.end, a.message].filter(Boolean).join(" · ") }))) : null,
    h("p", {}, h("a", { href: `/api/lineage/${encodeURIComponent(id)}/bundle`, download: `${id}-lineage.tar`, text: "Download the lineage bundle" })));
  section.hidden = false;
}

/** Values the API masked (secrets) are taken out: a clone never submits `***`. */
function unmasked(value, dropped) {
  if (Array.isArray(value)) return value.map((v) => unmasked(v, dropped));
  if (value && typeof value === "object") {
    const out = {};
    for (const [key, v] of Object.entries(value)) {
      if (v === "***") { dropped.push(key); continue; }
      out[key] = unmasked(v, dropped);
    }
    return out;
  }
  return value;
}

/** Clone and edit: the job's config (JSON, which the API reads as YAML)
 *  in an editor; Submit queues the edited copy and opens its page. */
export function cloneDialog(job, navigate) {
  const dropped = [];
  const config = unmasked(job.config || {}, dropped);
  delete config.task_id;  // the copy gets a new id
  const editor = h("textarea", { id: "clone-config", class: "config-editor", rows: "18", spellcheck: "false", "aria-label": "Config of the new job" });
  editor.value = JSON.stringify(config, null, 2);
  const problem = h("p", { class: "status error", role: "alert" });
  const submit = h("button", { type: "submit", "data-action": "submit-clone", text: "Submit" });
  const cancel = h("button", { type: "button", text: "Cancel" });
  const dialog = h("dialog", { class: "promote clone", "aria-label": `Clone ${job.id}` },
    h("form", { method: "dialog" },
      h("h2", { text: `Clone ${job.id}` }),
      h("p", { class: "sub", text: "Edit the config, then submit it as a new job." }),
      dropped.length ? h("p", { class: "warn", text: `Secret values are not copied (${dropped.join(", ")}); add them again or set them on the server.` }) : null,
      editor, problem, h("div", { class: "dialog-actions" }, cancel, submit)));
  cancel.addEventListener("click", () => dialog.close());
  dialog.addEventListener("close", () => dialog.remove());
  dialog.querySelector("form").addEventListener("submit", async (event) => {
    event.preventDefault();
    let body;
    try { body = JSON.parse(editor.value); } catch (error) {
      fill(problem, `config: not JSON (${error.message}); fix it and submit again`);
      return;
    }
    submit.disabled = true;
    try {
      const created = await post("/api/jobs", body);
      dialog.close();
      navigate(`/jobs/${encodeURIComponent(created.id)}`);
    } catch (error) {
      fill(problem, error.message);
      submit.disabled = false;
    }
  });
  document.body.append(dialog);
  dialog.showModal();
  editor.focus();
  return dialog;
}
