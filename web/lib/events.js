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
 * follow({entity: "job", id, type: "state,epoch"}, after, {"job.state": fn, ...}, onTruncated)
 * returns a function that stops following.
 */
export function follow(filter, after, handlers, onTruncated) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(filter)) if (value) query.set(key, value);
  query.set("after", String(after));
  const source = new EventSource(`/api/events?${query}`);
  // A page kept in the back-forward cache would hold its stream open: a
  // browser has 6 connections to a host, and held streams starve the rest
  // (requests then waited about a minute). app.js re-reads a page shown again.
  const close = () => source.close();
  window.addEventListener("pagehide", close, { once: true });
  for (const [name, handler] of Object.entries(handlers)) {
    source.addEventListener(name, (message) => {
      let event;
      try { event = JSON.parse(message.data); } catch { return; }
      handler(event);
    });
  }
  source.addEventListener("truncated", () => onTruncated && onTruncated());
  return () => { source.close(); window.removeEventListener("pagehide", close); };
}
