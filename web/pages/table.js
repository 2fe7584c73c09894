// The sections that are a table for now (sweeps, models, datasets,
// workers): the rows of their list endpoint, chosen columns as text.

import { get } from "../lib/api.js";
import { h, fill } from "../lib/dom.js";
import { time, number } from "../lib/format.js";
import { showError } from "./common.js";

export const sections = {
  sweeps: { title: "Sweeps", path: "/api/sweeps", list: "sweeps", columns: ["id", "name", "state", "trials", "best_fitness", "created_at"], empty: "No sweeps yet: `yard sweep sweep.yaml` starts one." },
  models: { title: "Models", path: "/api/models", list: "models", columns: ["name", "version", "aliases", "fitness", "job_id", "created_at"], empty: "No model versions yet: a succeeded job registers one." },
  datasets: { title: "Datasets", path: "/api/datasets", list: "datasets", columns: ["name", "id", "version", "images", "created_at"], empty: "No datasets yet: `yard datasets add NAME FOLDER`." },
  workers: { title: "Workers", path: "/api/workers", list: "workers", columns: ["id", "host", "device", "job", "state", "last_seen", "started_at"], empty: "No workers announced." },
};

function cell(key, value) {
  if (value === undefined || value === null) return "";
  if (/(_at|_seen|time)$/.test(key)) return time(value);
  if (typeof value === "number") return number(value);
  if (typeof value === "object") return Array.isArray(value) ? value.map((v) => (typeof v === "object" ? JSON.stringify(v) : String(v))).join(", ") : JSON.stringify(value);
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
      h("tbody", {}, rows.map((r) => h("tr", {}, columns.map((c) => h("td", { text: cell(c, r[c]) })))))));
  }).catch((error) => showError(status, error));
  return () => { closed = true; };
}
