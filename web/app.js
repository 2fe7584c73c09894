// The dashboard's entry: routes a path to its page module (each exports
// mount(root, context) and returns its unmount), keeps the layout's
// navigation current, and sends a browser without a session to sign in.

import { session, signOut } from "./lib/api.js";
import * as jobs from "./pages/jobs.js";
import * as job from "./pages/job.js";
import * as compare from "./pages/compare.js";
import * as dataset from "./pages/dataset.js";
import * as model from "./pages/model.js";
import * as playground from "./pages/playground.js";
import * as signin from "./pages/signin.js";
import * as sweep from "./pages/sweep.js";
import * as table from "./pages/table.js";
import * as workers from "./pages/workers.js";

const routes = [
  { pattern: /^\/(jobs)?$/, page: jobs, section: "jobs" },
  { pattern: /^\/jobs\/(?<id>[^/]+)$/, page: job, section: "jobs" },
  { pattern: /^\/compare$/, page: compare, section: "jobs" },
  { pattern: /^\/playground$/, page: playground, section: "playground" },
  { pattern: /^\/(?<section>sweeps|models|datasets)$/, page: table },
  { pattern: /^\/workers$/, page: workers, section: "workers" },
  { pattern: /^\/sweeps\/(?<id>[^/]+)$/, page: sweep, section: "sweeps" },
  { pattern: /^\/models\/(?<name>[^/]+)$/, page: model, section: "models" },
  { pattern: /^\/datasets\/(?<name>[^/]+)$/, page: dataset, section: "datasets" },
  { pattern: /^\/sign-in$/, page: signin, section: "" },
];

const main = document.getElementById("main");
const signOutButton = document.getElementById("sign-out");
let unmount = null;
let auth = { auth_required: false, signed_in: true };

/** Pages of the server outside this one (a sign-in's `next` may be one). */
const otherPages = new Set(["/api/docs"]);

function navigate(path, replace = false) {
  if (otherPages.has(new URL(path, location.href).pathname)) { location.assign(path); return; }
  if (replace) history.replaceState(null, "", path); else history.pushState(null, "", path);
  route();
}

function route() {
  if (unmount) { unmount(); unmount = null; }
  const url = new URL(location.href);
  if (auth.auth_required && !auth.signed_in && url.pathname !== "/sign-in") {
    history.replaceState(null, "", `/sign-in?next=${encodeURIComponent(url.pathname + url.search)}`);
    return route();
  }
  for (const { pattern, page, section } of routes) {
    const match = url.pathname.match(pattern);
    if (!match) continue;
    const params = Object.fromEntries(Object.entries(match.groups || {}).map(([k, v]) => [k, decodeURIComponent(v)]));
    const current = section ?? params.section;
    for (const link of document.querySelectorAll("nav a")) {
      if (link.dataset.section === current) link.setAttribute("aria-current", "page"); else link.removeAttribute("aria-current");
    }
    document.body.classList.toggle("signing-in", page === signin);
    document.title = `${current ? current[0].toUpperCase() + current.slice(1) : "Sign in"} · Trainyard`;
    unmount = page.mount(main, { params, query: url.searchParams, navigate, section: params.section, onSignedIn });
    return;
  }
  main.textContent = "No such page.";
}

function onSignedIn(state) {
  auth = { ...auth, ...state, signed_in: true };
  signOutButton.hidden = !auth.auth_required;
  showRole(auth);
}

// A viewer's pages offer no changes: buttons with a data-action (stop,
// resume, promote, roll back) are hidden by the stylesheet, and a member's
// offer no alias moves (an admin's); the server refuses them anyway.
function showRole(state) {
  document.body.dataset.role = state.role || "";
}

// Links inside the app change the page without a reload.
document.addEventListener("click", (event) => {
  const link = event.target.closest("a[href]");
  if (!link || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const url = new URL(link.href);
  if (url.origin !== location.origin || url.pathname.startsWith("/api/") || url.pathname.startsWith("/ui/")) return;
  event.preventDefault();
  navigate(url.pathname + url.search);
  main.focus({ preventScroll: true });
});
window.addEventListener("popstate", route);
// Back from the back-forward cache: the page's streams were closed when it was hidden; mount it again.
window.addEventListener("pageshow", (event) => { if (event.persisted) route(); });
window.addEventListener("yard:signed-out", () => {
  if (!auth.auth_required || location.pathname === "/sign-in") return;
  auth = { ...auth, signed_in: false };
  signOutButton.hidden = true;
  route();
});
signOutButton.addEventListener("click", async () => {
  try { await signOut(); } catch { /* signed out already */ }
  auth = { ...auth, signed_in: false };
  signOutButton.hidden = true;
  navigate("/sign-in");
});

session().then((state) => {
  auth = state;
  showRole(state);
  signOutButton.hidden = !(state.auth_required && state.signed_in);
  route();
}).catch((error) => { main.textContent = error.message; });
