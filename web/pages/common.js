// Small pieces several pages share.

import { h, fill } from "../lib/dom.js";

export function stateBadge(state) {
  return h("span", { class: `badge state-${String(state).replace(/[^a-z]/g, "")}`, text: state });
}

/** A one-line message with `commands` in backticks: the commands as
 *  <code>, everything as text (never markup). */
export function messageNodes(message) {
  return String(message).split("`").map((part, i) => (i % 2 ? h("code", { text: part }) : part));
}

export function showError(element, error) {
  element.classList.add("error");
  fill(element, messageNodes(error && error.message ? error.message : String(error)));
}
