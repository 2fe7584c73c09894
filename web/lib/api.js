// The one way pages talk to the server: same-origin requests that carry
// the session cookie, the CSRF token on every change, and errors as one
// line from the API's {"error", "message", "field"}.

let csrf = null;

export class ApiError extends Error {
  constructor(status, message, field) {
    super(message);
    this.status = status;
    this.field = field;
  }
}

/** GET /api/session: {auth_required, signed_in, csrf}; keeps the CSRF token. */
export async function session() {
  const state = await request("/api/session");
  csrf = state.csrf || null;
  return state;
}

export async function signIn(token) {
  const state = await request("/api/session", { method: "POST", body: { token } });
  csrf = state.csrf || null;
  return state;
}

export async function signOut() {
  await request("/api/session", { method: "DELETE" });
  csrf = null;
}

export function get(path) {
  return request(path);
}

export function post(path, body) {
  return request(path, { method: "POST", body });
}

/** POSTs a file's bytes as they are (an image to predict on), with its type. */
export function postBytes(path, blob) {
  return request(path, { method: "POST", raw: blob });
}

async function request(path, { method = "GET", body, raw, signal } = {}) {
  const headers = { Accept: "application/json" };
  if (method !== "GET" && csrf) headers["X-CSRF-Token"] = csrf;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (raw !== undefined) headers["Content-Type"] = raw.type || "application/octet-stream";
  let response;
  try {
    response = await fetch(path, {
      method, headers, signal, credentials: "same-origin",
      body: raw !== undefined ? raw : body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, "the server did not answer; is yard up still running?");
  }
  if (response.status === 204) return null;
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!response.ok) {
    if (response.status === 401 && path !== "/api/session") {
      window.dispatchEvent(new CustomEvent("yard:signed-out"));
    }
    throw new ApiError(response.status, (data && data.message) || `${response.status} ${response.statusText}`, data && data.field);
  }
  return data;
}
