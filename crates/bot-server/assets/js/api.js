// The HTTP API: JSON in and out, the session cookie, and the CSRF header on
// every state-changing request. Every failure becomes an ApiError carrying
// the server's `error` message and the HTTP status.

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
  }
}

let csrf = null;
let onUnauthorized = null;

/** The CSRF token from /api/login or /api/session (null after logout). */
export function setCsrf(token) {
  csrf = token || null;
}

/** Called when a request other than login/session gets 401 (session gone). */
export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

/**
 * One request. `body` is sent as JSON for POST/PUT/DELETE (`{}` when absent).
 * Resolves to the parsed JSON (null for 204), rejects with ApiError.
 */
export async function api(method, path, body) {
  const opts = {
    method,
    credentials: 'same-origin',
    headers: { Accept: 'application/json' },
    cache: 'no-store',
  };
  if (method !== 'GET' && method !== 'HEAD') {
    opts.headers['Content-Type'] = 'application/json';
    if (csrf) opts.headers['X-CSRF-Token'] = csrf;
    opts.body = JSON.stringify(body === undefined ? {} : body);
  }
  let res;
  try {
    res = await fetch(path, opts);
  } catch (e) {
    throw new ApiError(0, `cannot reach the server (${method} ${path}): ${e.message}`);
  }
  if (res.status === 204) return null;
  const text = await res.text();
  let data = null;
  let parsed = false;
  if (text) {
    try {
      data = JSON.parse(text);
      parsed = true;
    } catch {
      parsed = false;
    }
  }
  if (!res.ok) {
    let msg;
    if (parsed && data && typeof data.error === 'string') msg = data.error;
    else msg = `${res.status} ${res.statusText || 'error'}${text ? ': ' + text.slice(0, 300) : ''}`;
    if (res.status === 401 && onUnauthorized && path !== '/api/login' && path !== '/api/session') {
      onUnauthorized(msg);
    }
    throw new ApiError(res.status, msg);
  }
  if (text && !parsed) throw new ApiError(res.status, `${method} ${path}: the server sent invalid JSON`);
  return data;
}

export const get = (path) => api('GET', path);
export const post = (path, body) => api('POST', path, body);
export const put = (path, body) => api('PUT', path, body);
export const del = (path, body) => api('DELETE', path, body);

/** `path?k=v&…` leaving out null, undefined and '' values. */
export function withQuery(path, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === null || v === undefined || v === '') continue;
    q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}
