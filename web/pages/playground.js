// Playground: drop or pick an image, choose a model and its version or
// alias, move the confidence and IoU sliders, and see the boxes with their
// labels and scores drawn over the image (POST /api/predict/NAME, the
// serving path the API's clients use). A second version can answer beside
// the first, on the same image. Labels are SVG text, never markup.

import { get, postBytes } from "../lib/api.js";
import { h, fill } from "../lib/dom.js";
import { number } from "../lib/format.js";
import { colourOf } from "../lib/chart.js";
import { showError } from "./common.js";

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = String(text);
  return node;
}

/** "v3" / "production" choices of a model: aliases first, then versions newest first. */
export function choices(model) {
  const aliases = Object.entries(model.aliases || {}).sort(([a], [b]) => a.localeCompare(b)).map(([alias, v]) => ({ value: `alias:${alias}`, label: `@${alias} (v${v})` }));
  const versions = (model.versions || []).map((v) => ({ value: `version:${v.version}`, label: `v${v.version}` }));
  return [...aliases, ...versions];
}

export function mount(root, { query }) {
  let models = [];
  let file = null;
  let imageURL = null;
  let round = 0;
  let timer = null;
  let closed = false;

  const status = h("p", { class: "status", role: "status" });
  const modelSelect = h("select", { id: "pg-model", "aria-label": "Model" });
  const versionSelect = h("select", { id: "pg-version", "aria-label": "Version or alias" });
  const besideSelect = h("select", { id: "pg-beside", "aria-label": "Beside it" });
  const conf = h("input", { type: "range", id: "pg-conf", min: "0.001", max: "1", step: "0.001", value: "0.25" });
  const iou = h("input", { type: "range", id: "pg-iou", min: "0.05", max: "1", step: "0.01", value: "0.7" });
  const confOut = h("output", { for: "pg-conf", text: "0.25" });
  const iouOut = h("output", { for: "pg-iou", text: "0.7" });
  const picker = h("input", { type: "file", id: "pg-file", accept: "image/*" });
  const drop = h("label", { class: "drop", for: "pg-file" }, h("strong", { text: "Drop an image here" }), " or ", h("span", { class: "link", text: "pick one" }));
  const panels = h("section", { class: "panels", "aria-label": "Predictions" });

  fill(root,
    h("div", { class: "toolbar" }, h("h1", { text: "Playground" })),
    status,
    h("form", { class: "controls", onsubmit: (e) => e.preventDefault() },
      h("label", {}, "Model ", modelSelect), h("label", {}, "Version ", versionSelect), h("label", {}, "Beside it ", besideSelect),
      h("label", {}, "Confidence ", conf, confOut), h("label", {}, "IoU ", iou, iouOut)),
    picker, drop, panels);

  function model() { return models.find((m) => m.name === modelSelect.value); }

  function fillVersions() {
    const m = model();
    const options = m ? choices(m) : [];
    fill(versionSelect, options.map((o) => h("option", { value: o.value, text: o.label })));
    fill(besideSelect, h("option", { value: "", text: "nothing" }), options.map((o) => h("option", { value: o.value, text: o.label })));
  }

  function schedule() {
    confOut.textContent = number(Number(conf.value), 3);
    iouOut.textContent = number(Number(iou.value), 3);
    clearTimeout(timer);
    timer = setTimeout(predictAll, 250);
  }

  function choose(chosen) {
    if (!chosen) return;
    if (!chosen.type.startsWith("image/")) { showError(status, new Error(`${chosen.name} is not an image`)); return; }
    file = chosen;
    if (imageURL) URL.revokeObjectURL(imageURL);
    imageURL = URL.createObjectURL(file);
    schedule();
  }

  async function predictAll() {
    if (!file || !model()) return;
    const mine = ++round;
    const wanted = [versionSelect.value, besideSelect.value].filter(Boolean);
    const unique = [...new Set(wanted)];
    fill(status, "Predicting…");
    status.classList.remove("error");
    const results = await Promise.all(unique.map((choice) => predict(choice).catch((error) => ({ error }))));
    if (mine !== round || closed) return;
    fill(status);
    fill(panels, results.map((result, i) => panel(unique[i], result)));
  }

  async function predict(choice) {
    const [kind, value] = choice.split(/:(.*)/s);
    const params = new URLSearchParams({ [kind]: value, conf: conf.value, iou: iou.value });
    return postBytes(`/api/predict/${encodeURIComponent(modelSelect.value)}?${params}`, file);
  }

  function panel(choice, result) {
    const label = choice.startsWith("alias:") ? `@${choice.slice(6)}` : `v${choice.slice(8)}`;
    if (result.error) {
      const p = h("p", { class: "status" });
      showError(p, result.error);
      return h("figure", { class: "prediction", "data-choice": choice }, h("figcaption", { text: label }), p);
    }
    const image = result.images[0] || { width: 1, height: 1, boxes: [] };
    const boxes = image.boxes || [];
    // Boxes in the image's own units (the SVG scales with the image, strokes stay 2 px);
    // labels as text placed in percent of the image, so they keep their size on screen.
    const overlay = svg("svg", { viewBox: `0 0 ${image.width} ${image.height}`, class: "boxes", "aria-hidden": "true", preserveAspectRatio: "none" });
    const labels = h("div", { class: "labels", "aria-hidden": "true" });
    for (const box of boxes) {
      const [x1, y1, x2, y2] = box.xyxy;
      const colour = colourOf(String(box.name));
      overlay.append(svg("rect", { x: x1, y: y1, width: Math.max(0, x2 - x1), height: Math.max(0, y2 - y1), fill: "none", stroke: colour,
        "stroke-width": 2, "vector-effect": "non-scaling-stroke", class: "box" }));
      const label = h("span", { class: "box-label", text: `${box.name} ${number(box.score, 2)}` });
      label.style.left = `${(100 * Math.max(0, x1)) / image.width}%`;
      label.style.top = `${(100 * Math.max(0, y1)) / image.height}%`;
      label.style.backgroundColor = colour;
      if (y1 / image.height < 0.08) label.classList.add("inside");  // no room above the box: inside its top
      labels.append(label);
    }
    const top = image.top ? h("ol", { class: "top" }, image.top.map((t) => h("li", { text: `${t.name} ${number(t.score, 3)}` }))) : null;
    return h("figure", { class: "prediction", "data-choice": choice, "data-boxes": String(boxes.length) },
      h("figcaption", {}, h("strong", { text: `${result.model} v${result.version}` }), ` ${label} · ${result.runtime || "torch"} · ${number(result.timing_ms && result.timing_ms.total, 3)} ms`),
      h("div", { class: "stage" }, h("img", { src: imageURL, alt: file.name }), overlay, labels),
      top,
      boxes.length ? h("table", { class: "detections" },
        h("thead", {}, h("tr", {}, ["class", "score", "box (x1, y1, x2, y2)"].map((c) => h("th", { scope: "col", text: c })))),
        h("tbody", {}, boxes.slice(0, 100).map((b) => h("tr", {}, h("td", { text: b.name }), h("td", { class: "num", text: number(b.score, 3) }),
          h("td", { class: "num", text: b.xyxy.map((v) => Math.round(v)).join(", ") })))))
        : (image.top ? null : h("p", { class: "muted", text: "Nothing found at this confidence." })));
  }

  modelSelect.addEventListener("change", () => { fillVersions(); schedule(); });
  versionSelect.addEventListener("change", schedule);
  besideSelect.addEventListener("change", schedule);
  conf.addEventListener("input", schedule);
  iou.addEventListener("input", schedule);
  picker.addEventListener("change", () => choose(picker.files[0]));
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); choose(e.dataTransfer.files[0]); });

  get("/api/models").then((data) => {
    if (closed) return;
    models = (data && data.models) || [];
    if (!models.length) { fill(status, "No models yet: register one (yard models register JOB NAME) to try it here."); return; }
    fill(modelSelect, models.map((m) => h("option", { value: m.name, text: m.name })));
    const wanted = query.get("model");
    if (wanted && models.some((m) => m.name === wanted)) modelSelect.value = wanted;
    fillVersions();
  }).catch((error) => showError(status, error));

  return () => { closed = true; clearTimeout(timer); if (imageURL) URL.revokeObjectURL(imageURL); };
}
