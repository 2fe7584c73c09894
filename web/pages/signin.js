// Sign-in: the server's token (YARD_TOKEN) or a user's own (yard tokens
// create) is traded for a session cookie
// that scripts cannot read; the token is not kept anywhere in the browser.

import { signIn } from "../lib/api.js";
import { h, fill } from "../lib/dom.js";
import { messageNodes } from "./common.js";

/** `next` only when it is a path of this server (no //host, no scheme). */
export function safeNext(value) {
  return value && value.startsWith("/") && !value.startsWith("//") && !value.startsWith("/\\") ? value : "/jobs";
}

export function mount(root, { query, navigate, onSignedIn }) {
  const input = h("input", { type: "password", id: "token", name: "token", autocomplete: "current-password", required: true, "aria-describedby": "token-help" });
  const error = h("p", { class: "error", role: "alert", hidden: true });
  const form = h("form", { class: "sign-in", method: "post", action: "/api/session" },
    h("h1", { text: "Sign in" }),
    h("label", { for: "token", text: "Token" }), input,
    h("p", { id: "token-help", class: "muted" }, messageNodes("The `YARD_TOKEN` this server was started with, or your own token from `yard tokens create`.")),
    error, h("button", { type: "submit", text: "Sign in" }));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    try {
      const state = await signIn(input.value);
      input.value = "";
      onSignedIn(state);
      navigate(safeNext(query.get("next")));
    } catch (e) {
      error.hidden = false;
      fill(error, messageNodes(e.message));
      input.focus();
    }
  });
  fill(root, form);
  input.focus();
  return () => {};
}
