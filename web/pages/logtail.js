// A job's log, following live (GET /api/jobs/ID/logs?follow=true, read as
// a stream) with pause: while paused, lines wait and the view holds still;
// and search: only the lines holding the text are shown (case folded), new
// ones too as they come. The view keeps the last `keep` lines; every line
// is text. Like the event streams, a tab hidden for a while gives its
// connection back and, shown again, reads the log again from the start,
// skipping the lines it already has.

import { h, fill } from "../lib/dom.js";
import { hiddenGrace } from "../lib/events.js";

export class LogTail {
  constructor(parent, id, keep = 1000) {
    this.id = id;
    this.keep = keep;
    this.paused = false;
    this.waiting = [];
    this.stream = "";  // following, ended, disconnected
    this.controller = null;
    this.received = 0;  // lines taken from the stream so far
    this.skip = 0;      // lines a restarted stream sends again
    this.resting = false;
    this.hideTimer = 0;
    this.onVisibility = () => {
      clearTimeout(this.hideTimer);
      if (document.hidden) {
        if (this.stream === "following") this.hideTimer = setTimeout(() => { this.resting = true; this.stop(false); this.setStream("resting (tab hidden)"); }, hiddenGrace);
      } else if (this.resting) {
        this.resting = false;
        this.start();
      }
    };
    document.addEventListener("visibilitychange", this.onVisibility);
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
    this.skip = this.received;
    this.controller = new AbortController();
    this.setStream("following");
    if (document.hidden) this.onVisibility();  // opened in a background tab
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
        this.take(lines);
      }
      if (partial) this.take([partial]);
      this.setStream("ended");
    } catch (error) {
      if (error.name !== "AbortError") this.setStream("disconnected");
    }
  }

  /** Lines from the stream: those a restart sends again are dropped. */
  take(lines) {
    if (this.skip > 0) {
      const dropped = Math.min(this.skip, lines.length);
      lines = lines.slice(dropped);
      this.skip -= dropped;
    }
    this.received += lines.length;
    if (lines.length) this.add(lines);
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

  /** Stops reading; `leaving` (the default): the page is gone, follow no more. */
  stop(leaving = true) {
    if (this.controller) this.controller.abort();
    if (leaving) {
      clearTimeout(this.hideTimer);
      document.removeEventListener("visibilitychange", this.onVisibility);
    }
  }
}
