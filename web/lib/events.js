// Following the server's event log (GET /api/events, Server-Sent Events)
// from a sequence number. The browser reconnects by itself and resumes
// with Last-Event-ID; a `truncated` event (the cursor fell behind
// retention) is passed on so the page can re-read its state.

import { get } from "./api.js";

/** The newest sequence number: read it before reading state, follow after it. */
export async function head() {
  const { seq } = await get("/api/events/head");
  return seq;
}

/**
 * How long a hidden tab keeps its streams. A browser opens at most 6
 * connections to a host over HTTP/1.1 and every stream holds one: with
 * seven dashboard tabs open the seventh's requests would wait. A tab in the
 * background gives its streams back after this and follows again from the
 * last event it had (the log replays the rest) when it is shown.
 */
export const hiddenGrace = 5000;

/**
 * follow({entity: "job", id, type: "state,epoch"}, after, {"job.state": fn, ...}, onTruncated)
 * returns a function that stops following.
 */
export function follow(filter, after, handlers, onTruncated) {
  let last = after, source = null, timer = 0, stopped = false;
  const open = () => {
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(filter)) if (value) query.set(key, value);
    query.set("after", String(last));
    source = new EventSource(`/api/events?${query}`);
    for (const [name, handler] of Object.entries(handlers)) {
      source.addEventListener(name, (message) => {
        const seq = Number(message.lastEventId);
        if (Number.isFinite(seq) && seq > last) last = seq;
        let event;
        try { event = JSON.parse(message.data); } catch { return; }
        handler(event);
      });
    }
    source.addEventListener("truncated", () => onTruncated && onTruncated());
  };
  const shut = () => { if (source) { source.close(); source = null; } };
  const visibility = () => {
    clearTimeout(timer);
    if (document.hidden) timer = setTimeout(shut, hiddenGrace);
    else if (!source && !stopped) open();
  };
  const stop = () => {
    stopped = true;
    clearTimeout(timer);
    shut();
    document.removeEventListener("visibilitychange", visibility);
    window.removeEventListener("pagehide", stop);
  };
  // A page kept in the back-forward cache would hold its stream open too
  // (requests then waited about a minute). app.js re-reads a page shown again.
  window.addEventListener("pagehide", stop, { once: true });
  document.addEventListener("visibilitychange", visibility);
  if (!document.hidden) open();  // else when it is shown
  return stop;
}
