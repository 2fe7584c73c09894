// The sections that are a table (sweeps, models, datasets): the rows of
// their list endpoint, chosen columns as text, each row linking to its page.

import { get } from "../lib/api.js";
import { h, fill } from "../lib/dom.js";
import { time, number } from "../lib/format.js";
import { showError } from "./common.js";

export const sections = {
  sweeps: { title: "Sweeps", path: "/api/sweeps", list: "sweeps", link: { column: "id", to: "/sweeps/" }, columns: ["id", "study", "experiment", "state", "trials", "n_trials", "fitness", "created_at"], empty: "No sweeps yet: yard sweep SWEEP.yaml starts one." },
  models: { title: "Models", path: "/api/models", list: "models", link: { column: "name", to: "/models/" }, columns: ["name", "latest", "aliases", "versions"], empty: "No models yet: yard models register JOB NAME, or register_model in a job's config." },
  datasets: { title: "Datasets", path: "/api/datasets", list: "datasets", link: { column: "name", to: "/datasets/" }, columns: ["name", "id", "version", "images", "created_at"], empty: "No datasets yet: yard datasets add NAME FOLDER adds one." },
};

function cell(key, value) {
  if (value === undefined || value === null) return "";
  if (typeof value === "string" && /^[0-9a-f]{24,}(\.dir)?$/.test(value)) return `${value.slice(0, 12)}…`;  // a hash
  if (/(_at|time)$/.test(key)) return time(typeof value === "number" ? new Date(value * 1000).toISOString() : value);
  if (typeof value === "number") return number(value);
  if (Array.isArray(value)) return value.some((v) => v && typeof v === "object") ? String(value.length) : value.join(", ");
  if (typeof value === "object") return Object.entries(value).map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`).join(", ");
  return String(value);
}

export function mount(root, { section }) {
  const spec = sections[section];
  const status = h("p", { class: "status", role: "status", text: "Loading…" });
  const body = h("div", { class: "scroll" });
  fill(root, h("div", { class: "toolbar" }, h("h1", { text: spec.title })), status, body);
  let closed = false;
  get(spec.path).then((data) => {
    if (closed) return;
    const rows = (data && Array.isArray(data[spec.list]) ? data[spec.list] : []);
    const present = spec.columns.filter((c) => rows.some((r) => r && r[c] !== undefined));
    const columns = present.length ? present : Object.keys(rows[0] || {}).slice(0, 6);
    fill(status, rows.length ? "" : spec.empty);
    if (!rows.length) return;
    fill(body, h("table", {},
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col", text: c.replace(/_/g, " ") })))),
      h("tbody", {}, rows.map((r) => h("tr", {}, columns.map((c) => {
        const text = cell(c, r[c]);
        const title = typeof r[c] === "string" && r[c].length > 12 ? r[c] : undefined;
        // The row's own page, by its id or name (as a path segment, encoded).
        if (spec.link && c === spec.link.column && typeof r[c] === "string") {
          return h("td", {}, h("a", { href: spec.link.to + encodeURIComponent(r[c]), class: "row-link", text, title }));
        }
        return h("td", { text, title });
      }))))));
  }).catch((error) => showError(status, error));
  return () => { closed = true; };
}
