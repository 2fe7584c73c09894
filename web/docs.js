// /api/docs: renders this server's /api/openapi.json: operations grouped by
// tag (else by the path's first part after /api), their parameters, request
// bodies and responses, then the schemas. Everything from the document is
// set as text (h() never parses markup).
import { h, fill } from "/ui/lib/dom.js";

const METHODS = ["get", "post", "put", "patch", "delete"];
const main = document.getElementById("main");

/** "#/components/schemas/Job" -> "Job" */
function refName(ref) { return String(ref).split("/").pop(); }

function anchor(kind, name) { return `${kind}-${String(name).replace(/[^A-Za-z0-9_-]/g, "_")}`; }

/** A schema's type as a short line: Job, array of Job, string (one of a, b), object. */
function typeOf(schema) {
  if (!schema || typeof schema !== "object") return [h("span", { class: "type", text: "any" })];
  if (schema.$ref) {
    const name = refName(schema.$ref);
    return [h("a", { class: "type", href: "#" + anchor("schema", name), text: name })];
  }
  for (const key of ["allOf", "oneOf", "anyOf"]) {
    if (Array.isArray(schema[key])) {
      const parts = [];
      schema[key].forEach((part, i) => { if (i) parts.push(key === "allOf" ? " + " : " | "); parts.push(...typeOf(part)); });
      return parts;
    }
  }
  const types = Array.isArray(schema.type) ? schema.type.join(" or ") : (schema.type || "any");
  if (schema.type === "array") return [h("span", { class: "type", text: "array of " }), ...typeOf(schema.items)];
  let text = types + (schema.format ? ` (${schema.format})` : "");
  if (Array.isArray(schema.enum)) text += `: one of ${schema.enum.map(String).join(", ")}`;
  const limits = [];
  if (schema.minimum !== undefined) limits.push(`≥ ${schema.minimum}`);
  if (schema.exclusiveMinimum !== undefined) limits.push(`> ${schema.exclusiveMinimum}`);
  if (schema.maximum !== undefined) limits.push(`≤ ${schema.maximum}`);
  if (schema.default !== undefined) limits.push(`default ${JSON.stringify(schema.default)}`);
  if (limits.length) text += ` (${limits.join(", ")})`;
  return [h("span", { class: "type", text })];
}

/** A property table for an object schema, or its type line. */
function schemaView(schema) {
  if (!schema || typeof schema !== "object") return h("p", { class: "muted", text: "no schema" });
  if (schema.type === "object" && schema.properties && typeof schema.properties === "object") {
    const required = new Set(Array.isArray(schema.required) ? schema.required : []);
    return h("table", {},
      h("thead", {}, h("tr", {}, h("th", { text: "field" }), h("th", { text: "type" }), h("th", { text: "about" }))),
      h("tbody", {}, Object.entries(schema.properties).map(([name, property]) =>
        h("tr", {}, h("td", {}, h("code", { text: name }), required.has(name) ? h("span", { class: "muted", text: " required" }) : null),
          h("td", {}, typeOf(property)), h("td", { text: (property && property.description) || "" })))));
  }
  if (schema.allOf && Array.isArray(schema.allOf)) {
    return h("div", {}, schema.allOf.map((part) => part.$ref ? h("p", {}, "all of ", typeOf(part)) : schemaView(part)));
  }
  return h("p", {}, typeOf(schema));
}

function contentView(content) {
  if (!content || typeof content !== "object" || !Object.keys(content).length) return [h("span", { class: "muted", text: "no body" })];
  return Object.entries(content).map(([media, value]) =>
    h("div", {}, h("code", { text: media }), " ", ...(value && value.schema ? typeOf(value.schema) : [])));
}

function resolveResponse(doc, response) {
  if (response && response.$ref) {
    const name = refName(response.$ref);
    return (doc.components && doc.components.responses && doc.components.responses[name]) || {};
  }
  return response || {};
}

function operationView(doc, path, method, op) {
  const open = Array.isArray(op.security) && op.security.length === 0;
  const parameters = Array.isArray(op.parameters) ? op.parameters : [];
  const body = [];
  if (op.description) body.push(h("p", { text: op.description }));
  if (parameters.length) {
    body.push(h("h3", { text: "Parameters" }), h("table", {},
      h("thead", {}, h("tr", {}, h("th", { text: "name" }), h("th", { text: "in" }), h("th", { text: "type" }), h("th", { text: "about" }))),
      h("tbody", {}, parameters.map((p) => h("tr", {},
        h("td", {}, h("code", { text: p.name }), p.required ? h("span", { class: "muted", text: " required" }) : null),
        h("td", { text: p.in || "" }), h("td", {}, typeOf(p.schema)), h("td", { text: p.description || "" }))))));
  }
  if (op.requestBody) {
    body.push(h("h3", { text: "Request body" + (op.requestBody.required ? " (required)" : "") }));
    if (op.requestBody.description) body.push(h("p", { text: op.requestBody.description }));
    body.push(...contentView(op.requestBody.content));
  }
  const responses = op.responses && typeof op.responses === "object" ? op.responses : {};
  body.push(h("h3", { text: "Responses" }), h("table", {},
    h("thead", {}, h("tr", {}, h("th", { text: "status" }), h("th", { text: "about" }), h("th", { text: "body" }))),
    h("tbody", {}, Object.keys(responses).sort().map((status) => {
      const response = resolveResponse(doc, responses[status]);
      return h("tr", {}, h("td", {}, h("code", { text: status })), h("td", { text: response.description || "" }), h("td", {}, contentView(response.content)));
    }))));
  return h("details", { class: "op", id: anchor("op", op.operationId || `${method}-${path}`), "data-path": path, "data-method": method },
    h("summary", {}, h("span", { class: `method ${method}`, text: method.toUpperCase() }), h("span", { class: "path", text: path }),
      open ? h("span", { class: "open-badge", text: "no token" }) : null,
      h("span", { class: "summary", text: op.summary || "" })),
    h("div", { class: "body" }, op.operationId ? h("p", { class: "muted" }, "operationId ", h("code", { text: op.operationId })) : null, body));
}

function groupOf(path, op) {
  if (Array.isArray(op.tags) && op.tags.length) return String(op.tags[0]);
  const parts = path.split("/").filter(Boolean);
  return parts[0] === "api" ? (parts[1] || "api") : (parts[0] || "other");
}

function render(doc) {
  const groups = new Map();
  for (const [path, item] of Object.entries(doc.paths || {}).sort(([a], [b]) => a.localeCompare(b))) {
    for (const method of METHODS) {
      const op = item && item[method];
      if (!op || typeof op !== "object") continue;
      const group = groupOf(path, op);
      if (!groups.has(group)) groups.set(group, []);
      groups.get(group).push(operationView(doc, path, method, op));
    }
  }
  const schemas = (doc.components && doc.components.schemas) || {};
  const info = doc.info || {};
  const names = [...groups.keys()].sort();
  document.title = `${info.title || "API"} API`;
  fill(main,
    h("h1", { text: `${info.title || "API"} API` }),
    h("p", { class: "intro" }, info.description ? info.description + " " : "", h("span", { class: "muted", text: `OpenAPI ${doc.openapi || "?"}, version ${info.version || "?"}.` })),
    h("nav", { "aria-label": "API sections" }, h("ul", { class: "toc" },
      names.map((name) => h("li", {}, h("a", { href: "#" + anchor("group", name), text: name }))),
      h("li", {}, h("a", { href: "#schemas", text: "schemas" })))),
    names.map((name) => h("section", { class: "group", id: anchor("group", name) }, h("h2", { text: name }), groups.get(name))),
    h("section", { class: "group", id: "schemas" }, h("h2", { text: "schemas" }),
      Object.keys(schemas).sort().map((name) => h("details", { class: "op", id: anchor("schema", name) },
        h("summary", {}, h("span", { class: "path", text: name }), h("span", { class: "summary", text: schemas[name].description || "" })),
        h("div", { class: "body" }, schemaView(schemas[name]))))));
  // A link to an operation or a schema opens it.
  const target = location.hash && document.getElementById(location.hash.slice(1));
  if (target && target.tagName === "DETAILS") target.open = true;
  main.dataset.ready = "true";
}

window.addEventListener("hashchange", () => {
  const target = location.hash && document.getElementById(location.hash.slice(1));
  if (target && target.tagName === "DETAILS") target.open = true;
});

async function load() {
  let response;
  try {
    response = await fetch("/api/openapi.json", { credentials: "same-origin", headers: { Accept: "application/json" } });
  } catch (error) {
    fill(main, h("p", { class: "error", text: `Cannot reach the server: ${error}` }));
    return;
  }
  if (response.status === 401) {
    fill(main, h("p", {}, "Sign in to read the API: ", h("a", { href: "/sign-in?next=/api/docs", text: "sign in" }), "."));
    return;
  }
  if (!response.ok) {
    fill(main, h("p", { class: "error", text: `GET /api/openapi.json answered ${response.status}` }));
    return;
  }
  render(await response.json());
}

load();
