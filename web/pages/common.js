// Small pieces several pages share.

import { h, fill } from "../lib/dom.js";

export function stateBadge(state) {
  return h("span", { class: `badge state-${String(state).replace(/[^a-z]/g, "")}`, text: state });
}

export function showError(element, error) {
  element.classList.add("error");
  fill(element, error && error.message ? error.message : String(error));
}
