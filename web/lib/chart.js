// A line chart of per-epoch values (uPlot, vendored): one series per key,
// colours fixed by the key's name, redrawn as points arrive. The element
// carries data-points (how many epochs it draws) for tests and scripts.

import { h } from "./dom.js";

const palette = ["#4e79a7", "#f28e2b", "#e15759", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#ff9da7", "#9c755f", "#86bcb6"];

export function colourOf(key) {
  let hash = 0;
  for (const ch of key) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
  return palette[hash % palette.length];
}

function themeColours() {
  const style = getComputedStyle(document.documentElement);
  return { text: style.getPropertyValue("--muted").trim() || "#666", grid: style.getPropertyValue("--grid").trim() || "#ddd" };
}

export class LineChart {
  /** options: {x: the x axis's label (epoch), points: series drawn as points only, colour(key): a series' colour} */
  constructor(parent, title, options = {}) {
    this.title = title;
    this.xLabel = options.x || "epoch";
    this.pointsOnly = new Set(options.points || []);
    this.colour = options.colour || colourOf;
    this.element = h("figure", { class: "chart", "data-points": "0", "aria-label": title });
    this.caption = h("figcaption", { text: title });
    this.plotArea = h("div", { class: "plot" });
    this.element.append(this.caption, this.plotArea);
    parent.append(this.element);
    this.keys = [];
    this.plot = null;
    this.resize = new ResizeObserver(() => this.plot && this.plot.setSize(this.size()));
    this.resize.observe(this.plotArea);
  }

  size() {
    const width = Math.max(240, this.plotArea.clientWidth || 600);
    return { width, height: Math.round(Math.min(320, Math.max(200, width * 0.45))) };
  }

  /** rows: [{epoch, values: {key: number}}] sorted by epoch (the x value); keys: the series to draw. */
  set(rows, keys) {
    this.element.setAttribute("data-points", String(rows.length));
    if (typeof window.uPlot !== "function" || keys.length === 0) return;
    const data = [rows.map((r) => r.epoch), ...keys.map((k) => rows.map((r) => (k in r.values ? r.values[k] : null)))];
    if (!this.plot || keys.join("\n") !== this.keys.join("\n")) {
      this.keys = keys.slice();
      if (this.plot) this.plot.destroy();
      const colours = themeColours();
      const axis = { stroke: colours.text, grid: { stroke: colours.grid, width: 1 }, ticks: { stroke: colours.grid, width: 1 } };
      this.plot = new window.uPlot({
        ...this.size(),
        scales: { x: { time: false } },
        // Epochs and trial numbers are whole: no tick between two of them.
        axes: [{ ...axis, label: this.xLabel, incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000] }, { ...axis }],
        series: [{ label: this.xLabel }, ...keys.map((k) => (this.pointsOnly.has(k)
          ? { label: k, stroke: this.colour(k), width: 0, points: { size: 7, fill: this.colour(k) }, paths: () => null }
          : { label: k, stroke: this.colour(k), width: 2, points: { size: 5 }, spanGaps: true }))],
        legend: { live: false },
      }, data, this.plotArea);
    } else {
      this.plot.setData(data);
    }
  }

  destroy() {
    this.resize.disconnect();
    if (this.plot) this.plot.destroy();
  }
}
