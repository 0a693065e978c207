// The JSON API as the console uses it: the key lives in sessionStorage only (never a URL, localStorage or a cookie)
// and goes in the Authorization header of every call.

const KEY_NAME = "relay.console.apiKey";

export function getKey() {
  return sessionStorage.getItem(KEY_NAME);
}

export function setKey(key) {
  sessionStorage.setItem(KEY_NAME, key);
}

export function clearKey() {
  sessionStorage.removeItem(KEY_NAME);
}

/** A refused call: the HTTP status and the API's error body (`{error, message, problems}`) when it had one. */
export class ApiError extends Error {
  constructor(status, code, message, problems, retryAfter = null) {
    super(message || `HTTP ${status}`);
    this.status = status;
    this.code = code || "";
    this.problems = Array.isArray(problems) ? problems : [];
    // Seconds from a 429/503's Retry-After (null without one, or for an HTTP date): when to try the same call again.
    this.retryAfter = retryAfter;
  }

  /** The error as plain text for an operator: the API's own words, verbatim. */
  describe() {
    if (this.status === 403) {
      return `This key may not do that (403 ${this.code || "forbidden"}: ${this.message}).`;
    }
    const lines = [`${this.status ? `HTTP ${this.status} ` : ""}${this.code ? `${this.code}: ` : ""}${this.message}`];
    for (const problem of this.problems) {
      lines.push(`  ${String(problem.pointer ?? "")}: ${String(problem.message ?? "")}`);
    }
    return lines.join("\n");
  }
}

/** Raised after a 401: the key was dropped and the app goes back to the sign-in form. */
export class SignedOut extends ApiError {}

let onUnauthorized = () => {};

export function whenUnauthorized(handler) {
  onUnauthorized = handler;
}

async function errorOf(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  const error = body && typeof body === "object" ? body : {};
  // Today's shape is flat ({error: code, message, problems}); a nested {error: {code, message, problems}} is read too.
  const nested = error.error && typeof error.error === "object" ? error.error : null;
  const source = nested || error;
  const code = nested ? nested.code : error.error;
  const retryAfter = Number.parseFloat(response.headers.get("Retry-After") ?? "");
  return new ApiError(
    response.status,
    typeof code === "string" ? code : "",
    typeof source.message === "string" ? source.message : response.statusText,
    source.problems,
    Number.isFinite(retryAfter) && retryAfter >= 0 ? retryAfter : null,
  );
}

/** `fetch` with the key; answers the Response when it is 2xx, else throws `ApiError` (`SignedOut` for a 401). */
export async function call(path, { method = "GET", body, signal } = {}) {
  const key = getKey();
  if (!key) {
    onUnauthorized("Sign in with an API key.");
    throw new SignedOut(401, "unauthorized", "not signed in");
  }
  const headers = { Authorization: `Bearer ${key}`, Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
      cache: "no-store",
      credentials: "omit",
      referrerPolicy: "no-referrer",
    });
  } catch (error) {
    if (error && error.name === "AbortError") throw error;
    throw new ApiError(0, "network_error", "The server did not answer (network error).");
  }
  if (response.ok) return response;
  const error = await errorOf(response);
  if (response.status === 401) {
    clearKey();
    onUnauthorized(`The server refused this API key (401 ${error.code || "unauthorized"}). Sign in again.`);
    throw new SignedOut(401, error.code, error.message);
  }
  throw error;
}

export async function getJson(path, options) {
  const response = await call(path, options);
  return response.json();
}

export async function postJson(path, body, options = {}) {
  const response = await call(path, { ...options, method: "POST", body });
  return response.json();
}

export function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(name, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}
