// Parallel coordinates in SVG: one vertical axis per dimension (numbers on
// a linear scale, or a log one when every value is positive and they span
// more than two decades; anything else as categories), one line per row.
// Dragging along an axis brushes a range; rows outside every brush are
// dimmed and onFilter gets the set of rows still selected (null: no brush).
// Values and labels are set as SVG text, never parsed as markup.

const SVG = "http://www.w3.org/2000/svg";

function el(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) if (value !== undefined && value !== null) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = String(text);
  return node;
}

/** A scale for one dimension's values: to(value) in [0, 1], label(value), ticks. */
export function scaleOf(values) {
  const present = values.filter((v) => v !== undefined && v !== null);
  const numbers = present.filter((v) => typeof v === "number" && Number.isFinite(v));
  if (present.length && numbers.length === present.length) {
    let lo = Math.min(...numbers), hi = Math.max(...numbers);
    const log = lo > 0 && hi / lo > 100;
    const f = log ? Math.log10 : (x) => x;
    // One value: drawn mid-axis, its one tick.
    const ticks = lo === hi ? [lo] : [lo, hi];
    if (lo === hi) { lo -= 1; hi += 1; }
    const a = f(lo), b = f(hi);
    return {
      kind: log ? "log" : "linear",
      to: (v) => (typeof v === "number" && Number.isFinite(v) ? (f(v) - a) / (b - a) : null),
      from: (t) => (log ? 10 ** (a + t * (b - a)) : a + t * (b - a)),
      ticks,
    };
  }
  const categories = [...new Set(present.map((v) => JSON.stringify(v)))].sort();
  const step = categories.length > 1 ? 1 / (categories.length - 1) : 0;
  return {
    kind: "category",
    to: (v) => (v === undefined || v === null ? null : categories.length === 1 ? 0.5 : categories.indexOf(JSON.stringify(v)) * step),
    ticks: categories.map((c) => JSON.parse(c)),
  };
}

function short(value) {
  if (typeof value === "number") return Number.isInteger(value) ? String(value) : value.toPrecision(3);
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return text.length > 14 ? text.slice(0, 13) + "…" : text;
}

export class ParallelCoordinates {
  /**
   * dimensions: [{key, label}]; rows: [{id, values: {key: value}, colour, dashed}].
   * onFilter(selectedIds | null) is called when a brush changes.
   */
  constructor(parent, { label = "Parallel coordinates", onFilter } = {}) {
    this.onFilter = onFilter;
    this.brushes = new Map();  // key -> [t0, t1] in scale units (0 bottom .. 1 top)
    this.figure = document.createElement("figure");
    this.figure.className = "chart parallel";
    this.figure.setAttribute("aria-label", label);
    const caption = document.createElement("figcaption");
    caption.textContent = label;
    this.clear = document.createElement("button");
    this.clear.type = "button";
    this.clear.className = "small";
    this.clear.textContent = "Clear brushes";
    this.clear.hidden = true;
    this.clear.addEventListener("click", () => { this.brushes.clear(); this.draw(); this.emit(); });
    caption.append(" ", this.clear);
    this.svg = el("svg", { role: "img", "aria-label": label });
    this.figure.append(caption, this.svg);
    parent.append(this.figure);
    this.dimensions = [];
    this.rows = [];
    this.resize = new ResizeObserver(() => this.draw());
    this.resize.observe(this.figure);
  }

  set(dimensions, rows) {
    this.dimensions = dimensions;
    this.rows = rows;
    for (const key of [...this.brushes.keys()]) if (!dimensions.some((d) => d.key === key)) this.brushes.delete(key);
    this.draw();
  }

  /** Ids of the rows inside every brush (all rows when there is none). */
  selected() {
    return new Set(this.rows.filter((row) => this.inside(row)).map((row) => row.id));
  }

  inside(row) {
    for (const [key, [t0, t1]] of this.brushes) {
      const t = this.scales[key] && this.scales[key].to(row.values[key]);
      if (t === null || t === undefined || t < t0 || t > t1) return false;
    }
    return true;
  }

  emit() {
    this.clear.hidden = this.brushes.size === 0;
    if (this.onFilter) this.onFilter(this.brushes.size ? this.selected() : null);
  }

  draw() {
    const svg = this.svg;
    while (svg.firstChild) svg.firstChild.remove();
    const width = Math.max(280, this.figure.clientWidth - 20);
    const height = 260, top = 24, bottom = 36;
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    svg.setAttribute("width", String(width));
    svg.setAttribute("height", String(height));
    this.figure.dataset.lines = String(this.rows.length);
    if (!this.dimensions.length) return;
    const margin = 40;
    const step = this.dimensions.length > 1 ? (width - 2 * margin) / (this.dimensions.length - 1) : 0;
    const xOf = (i) => (this.dimensions.length > 1 ? margin + i * step : width / 2);
    const yOf = (t) => top + (1 - t) * (height - top - bottom);
    this.scales = Object.fromEntries(this.dimensions.map((d) => [d.key, scaleOf(this.rows.map((r) => r.values[d.key]))]));

    const lines = el("g", { class: "lines" });
    for (const row of this.rows) {
      const points = [];
      this.dimensions.forEach((d, i) => {
        const t = this.scales[d.key].to(row.values[d.key]);
        if (t !== null) points.push(`${xOf(i).toFixed(1)},${yOf(t).toFixed(1)}`);
      });
      if (points.length < 2) continue;
      const line = el("polyline", { points: points.join(" "), fill: "none", stroke: row.colour || "currentColor",
        "stroke-width": 1.6, class: this.inside(row) ? "line" : "line dim", "data-row": row.id });
      if (row.dashed) line.setAttribute("stroke-dasharray", "4 3");
      line.append(el("title", {}, row.title || row.id));
      lines.append(line);
    }
    svg.append(lines);

    this.dimensions.forEach((d, i) => {
      const x = xOf(i), scale = this.scales[d.key];
      const axis = el("g", { class: "axis", "data-key": d.key });
      axis.append(el("line", { x1: x, x2: x, y1: yOf(0), y2: yOf(1), class: "axis-line" }));
      const anchor = i === 0 ? "start" : i === this.dimensions.length - 1 ? "end" : "middle";
      axis.append(el("text", { x, y: 14, "text-anchor": anchor, class: "axis-label" }, d.label || d.key));
      const ticks = scale.kind === "category" ? scale.ticks : scale.ticks;
      for (const tick of ticks.length > 8 ? [ticks[0], ticks[ticks.length - 1]] : ticks) {
        const t = scale.to(tick);
        if (t === null) continue;
        axis.append(el("text", { x: x + 4, y: yOf(t) + 4, class: "tick" }, short(tick)));
      }
      const brush = this.brushes.get(d.key);
      if (brush) axis.append(el("rect", { x: x - 7, width: 14, y: yOf(brush[1]), height: Math.max(2, yOf(brush[0]) - yOf(brush[1])), class: "brush" }));
      // The hit area: drag to brush, a click without a drag clears this axis's brush.
      const hit = el("rect", { x: x - 14, width: 28, y: yOf(1) - 6, height: yOf(0) - yOf(1) + 12, class: "hit", "data-key": d.key });
      hit.addEventListener("pointerdown", (event) => this.startBrush(event, d.key, yOf));
      axis.append(hit);
      svg.append(axis);
    });
  }

  startBrush(event, key, yOf) {
    event.preventDefault();
    const box = this.svg.getBoundingClientRect();
    const scaleY = (this.svg.viewBox.baseVal.height || box.height) / box.height;
    const toT = (clientY) => {
      const y = (clientY - box.top) * scaleY;
      return Math.min(1, Math.max(0, 1 - (y - yOf(1)) / (yOf(0) - yOf(1))));
    };
    const start = toT(event.clientY);
    let moved = false;
    const move = (e) => {
      const t = toT(e.clientY);
      if (Math.abs(t - start) < 0.01 && !moved) return;
      moved = true;
      this.brushes.set(key, [Math.min(start, t), Math.max(start, t)]);
      this.draw();
    };
    const up = (e) => {
      window.removeEventListener("pointermove", move);
      window.removeEventListener("pointerup", up);
      if (!moved) this.brushes.delete(key); else move(e);
      this.draw();
      this.emit();
    };
    window.addEventListener("pointermove", move);
    window.addEventListener("pointerup", up);
  }

  /** Sets a brush from a script or a test: the range [lo, hi] in the dimension's own values. */
  brush(key, lo, hi) {
    const scale = this.scales && this.scales[key];
    if (!scale) return;
    const a = scale.to(lo), b = scale.to(hi);
    if (a === null || b === null) return;
    this.brushes.set(key, [Math.min(a, b), Math.max(a, b)]);
    this.draw();
    this.emit();
  }

  destroy() {
    this.resize.disconnect();
  }
}
