// A job's log, following live (GET /api/jobs/ID/logs?follow=true, read as
// a stream) with pause: while paused, lines wait and the view holds still;
// and search: only the lines holding the text are shown (case folded), new
// ones too as they come. The view keeps the last `keep` lines; every line
// is text.

import { h, fill } from "../lib/dom.js";

export class LogTail {
  constructor(parent, id, keep = 1000) {
    this.id = id;
    this.keep = keep;
    this.paused = false;
    this.waiting = [];
    this.stream = "";  // following, ended, disconnected
    this.controller = null;
    this.pause = h("button", { type: "button", class: "small", "aria-pressed": "false", text: "Pause" });
    this.pause.addEventListener("click", () => this.toggle());
    this.state = h("span", { class: "muted", role: "status" });
    this.query = "";
    this.search = h("input", { type: "search", id: "log-search", class: "log-search", placeholder: "Search the log", "aria-label": "Search the log",
      autocomplete: "off", spellcheck: "false" });
    this.search.addEventListener("input", () => this.filter(this.search.value));
    this.matches = h("span", { class: "muted", "aria-live": "polite" });
    this.view = h("pre", { class: "log", tabindex: "0", "aria-label": "Log", "aria-live": "off" });
    fill(parent, h("div", { class: "toolbar" }, h("h2", { text: "Log" }), this.search, this.matches, this.pause, this.state), this.view);
  }

  /** Shows only the lines that hold `text` (all of them when it is empty). */
  filter(text) {
    this.query = text.trim().toLowerCase();
    let shown = 0;
    for (const line of this.view.children) {
      const match = !this.query || line.textContent.toLowerCase().includes(this.query);
      line.hidden = !match;
      if (match) shown += 1;
    }
    this.matches.textContent = this.query ? `${shown} matching` : "";
    if (!this.query) this.view.scrollTop = this.view.scrollHeight;
  }

  /** Where the stream is, and while paused how many lines wait. */
  setStream(stream) {
    this.stream = stream;
    this.state.textContent = this.paused ? `${stream}, paused (${this.waiting.length} new)` : stream;
  }

  url(follow) {
    return `/api/jobs/${encodeURIComponent(this.id)}/logs${follow ? "?follow=true" : ""}`;
  }

  async lastLines(count) {
    const response = await fetch(this.url(false), { credentials: "same-origin" });
    if (!response.ok) return [];
    return (await response.text()).split("\n").filter((l) => l.length).slice(-count);
  }

  async start() {
    this.controller = new AbortController();
    this.setStream("following");
    try {
      const response = await fetch(this.url(true), { credentials: "same-origin", signal: this.controller.signal });
      if (!response.ok || !response.body) { this.setStream(`log unavailable (${response.status})`); return; }
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let partial = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        const lines = (partial + value).split("\n");
        partial = lines.pop();
        this.add(lines);
      }
      if (partial) this.add([partial]);
      this.setStream("ended");
    } catch (error) {
      if (error.name !== "AbortError") this.setStream("disconnected");
    }
  }

  add(lines) {
    if (this.paused) {
      this.waiting.push(...lines);
      if (this.waiting.length > this.keep) this.waiting.splice(0, this.waiting.length - this.keep);
      this.setStream(this.stream);
      return;
    }
    for (const line of lines) {
      this.view.append(h("div", { class: "line", text: line, hidden: this.query && !line.toLowerCase().includes(this.query) }));
    }
    while (this.view.childElementCount > this.keep) this.view.firstElementChild.remove();
    if (this.query) this.filter(this.search.value);
    this.view.scrollTop = this.view.scrollHeight;
  }

  toggle() {
    this.paused = !this.paused;
    this.pause.textContent = this.paused ? "Follow" : "Pause";
    this.pause.setAttribute("aria-pressed", String(this.paused));
    if (!this.paused) {
      const lines = this.waiting;
      this.waiting = [];
      this.add(lines);
    }
    this.setStream(this.stream);
  }

  stop() {
    if (this.controller) this.controller.abort();
  }
}
