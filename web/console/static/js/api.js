// The public HTTP API, as the console uses it: bearer token, problem details,
// ETags, idempotency keys. Nothing here decides anything the API decides.

const REQUEST_TIMEOUT_MS = 20_000;  // the service answers within 5 s even in an outage

let token = null;
let onUnauthorized = () => {};

export function setToken(value) { token = value; }
export function whenUnauthorized(callback) { onUnauthorized = callback; }

/** A problem response (RFC 9457), or a network failure put in the same shape. */
export class ProblemError extends Error {
  constructor(problem, response) {
    super(`${problem.title}: ${problem.detail}`);
    this.problem = problem;
    this.status = problem.status;
    this.code = problem.code;
    this.response = response;
  }
}

/** A random id for an Idempotency-Key (crypto.randomUUID needs a secure context). */
export function newKey() {
  if (globalThis.crypto && crypto.randomUUID) {
    try { return crypto.randomUUID(); } catch { /* not a secure context */ }
  }
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

async function problemOf(response) {
  let body = null;
  try { body = await response.json(); } catch { /* not JSON */ }
  if (!body || typeof body !== "object") {
    body = { title: response.statusText || `HTTP ${response.status}`,
             detail: `The server answered ${response.status} without details.` };
  }
  return { status: response.status, title: body.title || `HTTP ${response.status}`,
           detail: body.detail || "", code: body.code || "", ...body };
}

/**
 * One API call. Resolves to {body, headers, status}; rejects with a ProblemError
 * for every problem response (and for a network failure).
 */
export async function call(method, path, { body, ifMatch, idempotencyKey, signal, query } = {}) {
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (ifMatch !== undefined && ifMatch !== null) headers["If-Match"] = `"${ifMatch}"`;
  if (idempotencyKey) headers["Idempotency-Key"] = idempotencyKey;
  let url = path;
  if (query) {
    const params = new URLSearchParams();
    for (const [name, value] of Object.entries(query)) {
      if (value !== undefined && value !== null && value !== "") params.append(name, value);
    }
    const text = params.toString();
    if (text) url += `?${text}`;
  }
  let response;
  try {
    response = await fetch(url, {
      method, headers, signal: signal ?? AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      cache: "no-store",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    if (error.name === "TimeoutError") {
      throw new ProblemError({ status: 0, code: "timeout", title: "No answer",
        detail: `The service did not answer within ${REQUEST_TIMEOUT_MS / 1000} s. `
          + "Check the page, then try again." });
    }
    throw new ProblemError({ status: 0, code: "network_error", title: "Network error",
      detail: "The service could not be reached. Check your connection and try again." });
  }
  if (!response.ok) {
    const problem = await problemOf(response);
    if (response.status === 401 && token) onUnauthorized(problem);
    throw new ProblemError(problem, response);
  }
  const text = response.status === 204 ? "" : await response.text();
  return { status: response.status, headers: response.headers,
           body: text ? JSON.parse(text) : null };
}

export const api = {
  listJobs: (query, signal) => call("GET", "/api/jobs", { query, signal }),
  getJob: (id, version) => call("GET", `/api/jobs/${encodeURIComponent(id)}`,
    { query: version ? { version } : undefined }),
  history: (id) => call("GET", `/api/jobs/${encodeURIComponent(id)}/history`),
  createJob: (body, key) => call("POST", "/api/jobs", { body, idempotencyKey: key }),
  assign: (id, body, version, key) => call("POST", `/api/jobs/${encodeURIComponent(id)}/assignments`,
    { body, ifMatch: version, idempotencyKey: key }),
  confirm: (id, assignmentId, version, key) => call("POST",
    `/api/jobs/${encodeURIComponent(id)}/assignments/${encodeURIComponent(assignmentId)}/confirm`,
    { ifMatch: version, idempotencyKey: key }),
  unassign: (id, assignmentId, version, key) => call("POST",
    `/api/jobs/${encodeURIComponent(id)}/assignments/${encodeURIComponent(assignmentId)}/cancel`,
    { ifMatch: version, idempotencyKey: key }),
  start: (id, version, key) => call("POST", `/api/jobs/${encodeURIComponent(id)}/start`,
    { ifMatch: version, idempotencyKey: key }),
  complete: (id, version, key) => call("POST", `/api/jobs/${encodeURIComponent(id)}/complete`,
    { ifMatch: version, idempotencyKey: key }),
  cancel: (id, body, version, key) => call("POST", `/api/jobs/${encodeURIComponent(id)}/cancel`,
    { body, ifMatch: version, idempotencyKey: key }),
  assignments: (query) => call("GET", "/api/assignments", { query }),
};
