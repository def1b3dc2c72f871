// bff.js: the browser side of the Backend-for-Frontend, as one dependency-free ES module.
//
//   import { me, login, logout, fetchApi, UnauthorizedError } from '/bff.js';
//
//   const user = await me();                 // the ID-token claims, or null when logged out
//   if (!user) login();                      // navigates to /auth/login?returnTo=<this page>
//   if (!user) trySilentLogin();             // prompt=none: back logged in, or back with
//                                            // ?error=login_required (returned by the next call)
//   login(undefined, { acr_values: 'urn:example:loa:2', prompt: 'login' });  // step-up
//   const res = await fetchApi('/orders');   // GET /api/orders with the session cookie and X-CSRF
//                                            // (throws UnauthorizedError when the session ended;
//                                            // the API's own 401 comes back as a Response)
//   await logout();                          // ends the session, navigates to the provider's logout
//
// The browser never sees a token: every call carries only the HttpOnly session cookie
// (`credentials: 'include'`), and the calls that change state carry `X-CSRF: 1`, which
// the BFF requires on `/api/*` and `POST /auth/logout`. This module is the reference for
// how a front end calls the BFF; its types are in bff.d.ts.

let base = '';

/**
 * Points the client at a BFF on another origin (`https://app.example.com`), for a front
 * end served from elsewhere. That front end's origin must be in the BFF's
 * BFF_ALLOWED_ORIGINS. Without a call, the BFF is on the page's own origin.
 */
export function configure({ baseUrl = '' } = {}) {
  if (baseUrl === '' || baseUrl === null) {
    base = '';
    return;
  }
  const url = new URL(baseUrl, window.location.href);
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new TypeError(`baseUrl must be an http(s) URL, got ${JSON.stringify(String(baseUrl))}`);
  }
  base = `${url.origin}${url.pathname}`.replace(/\/+$/, '');
}

/** Any error answer of the BFF: `status`, and the JSON error's `code` and `description`. */
export class BffError extends Error {
  constructor(status, code, description) {
    super(description ? `${code}: ${description}` : `${code} (HTTP ${status})`);
    this.name = 'BffError';
    this.status = status;
    this.code = code;
    this.description = description ?? '';
  }
}

/**
 * The BFF's own 401: no session, or it ended (`code` is `login_required` or
 * `session_expired`). The fix is always the same: `login()` again. An API's 401, which
 * the BFF passes on as it is, is never one: the user is logged in and the API refused.
 */
export class UnauthorizedError extends BffError {
  constructor(code = 'login_required', description = '') {
    super(401, code, description);
    this.name = 'UnauthorizedError';
  }
}

const onSameOrigin = () => base === '' || new URL(base).origin === window.location.origin;

/** The page to come back to after logging in: this page, relative when it can be. */
function currentPage() {
  const { pathname, search, hash, href } = window.location;
  return onSameOrigin() ? `${pathname}${search}${hash}` : href;
}

/** Login options the BFF passes to the provider; it refuses any other with 400. */
const LOGIN_OPTIONS = ['prompt', 'login_hint', 'max_age', 'acr_values', 'ui_locales', 'organization'];

/**
 * The URL that starts a login and comes back to `returnTo` (default: this page), with
 * `options` (`{ prompt, login_hint, max_age, acr_values, ui_locales, organization }`).
 */
export function loginUrl(returnTo = currentPage(), options = {}) {
  const params = new URLSearchParams({ returnTo });
  for (const [name, value] of Object.entries(options ?? {})) {
    if (!LOGIN_OPTIONS.includes(name)) throw new TypeError(`unknown login option ${JSON.stringify(name)}`);
    if (value !== undefined && value !== null) params.append(name, String(value));
  }
  return `${base}/auth/login?${params}`;
}

/**
 * Starts a login: navigates to the provider, which comes back to `returnTo` (default: this
 * page). With `{ acr_values, prompt: 'login' }` it is a step-up: the current session stays
 * until the new one exists.
 */
export function login(returnTo, options) {
  window.location.assign(loginUrl(returnTo, options));
}

/** The provider errors a silent login comes back with. */
const SILENT_LOGIN_ERRORS = new Set(['login_required', 'consent_required', 'interaction_required']);

/**
 * A silent login (`prompt=none`): when the provider still has a session, the browser comes
 * back to `returnTo` logged in, without a page; when it has none (or needs the user), it
 * comes back with `?error=login_required` (`consent_required`, `interaction_required`)
 * and no session. When this page is that answer, returns the code (and removes it from the
 * address bar) instead of trying again, so a page calling it on load never loops;
 * otherwise navigates away and returns null.
 */
export function trySilentLogin(returnTo) {
  const url = new URL(window.location.href);
  const error = url.searchParams.get('error');
  if (SILENT_LOGIN_ERRORS.has(error)) {
    url.searchParams.delete('error');
    window.history.replaceState(window.history.state, '', url);
    return error;
  }
  login(returnTo, { prompt: 'none' });
  return null;
}

/**
 * Reads and drops a body this module does not hand on. An unread body keeps its request
 * open: the connection stays busy, and a page waiting for an idle network never gets one.
 */
async function discard(response) {
  try {
    await response.arrayBuffer();
  } catch {
    // Already read, or the connection failed: nothing is left open either way.
  }
}

async function errorOf(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // Not JSON (a proxy's or a load balancer's page): the status says enough.
  }
  const code = typeof body?.error === 'string' ? body.error : `http_${response.status}`;
  const description = typeof body?.error_description === 'string' ? body.error_description : '';
  return response.status === 401
    ? new UnauthorizedError(code, description)
    : new BffError(response.status, code, description);
}

/** The `error` codes of the BFF's own 401 answers: there is no session, or it ended. */
const SESSION_ENDED = new Set(['login_required', 'session_expired']);

/**
 * The `UnauthorizedError` for a 401 of the BFF itself, or `null` for any other answer.
 * An upstream API's 401 reaches the browser as the API sent it, so the status alone
 * cannot tell the two apart: the BFF's own carries its JSON error with one of the
 * SESSION_ENDED codes. The body is read from a copy, so an answer that is not the
 * BFF's stays whole for the caller.
 */
async function sessionEnded(response) {
  if (response.status !== 401) return null;
  if (!/^application\/json\b/i.test(response.headers.get('content-type') ?? '')) return null;
  let body = null;
  try {
    body = await response.clone().json();
  } catch {
    return null;
  }
  if (!SESSION_ENDED.has(body?.error)) return null;
  await discard(response);
  const description = typeof body.error_description === 'string' ? body.error_description : '';
  return new UnauthorizedError(body.error, description);
}

/**
 * Who is logged in: the ID-token claims (`sub`, `name`, `email`, `picture`, …) and
 * `session: { expires_at, idle_expires_at }` (epoch seconds), or `null` when nobody is.
 * Any other failure throws a `BffError`.
 */
export async function me() {
  const response = await fetch(`${base}/auth/me`, {
    credentials: 'include',
    headers: { Accept: 'application/json' },
    cache: 'no-store',
  });
  if (response.status === 401) {
    await discard(response);
    return null;
  }
  if (!response.ok) throw await errorOf(response);
  return response.json();
}

/**
 * Calls your API through the BFF: `fetchApi('/orders?open=1', init)` requests
 * `/api/orders?open=1` with the session cookie and `X-CSRF: 1`; the BFF forwards it to
 * the upstream with the user's access token. Answers the `Response` as it is (check
 * `response.ok` yourself), the API's own 401 included, except the BFF's own 401 (no
 * session, or it ended), which throws `UnauthorizedError`. Only that one calls for a
 * new login: logging in again because the API refused would loop.
 */
export async function fetchApi(path, init = {}) {
  const rest = String(path);
  // A full URL here is a mistake: the call would go to /api/https://… on the BFF.
  if (/^[a-z][a-z0-9+.-]*:\/\/|^[/\\]{2}/i.test(rest)) {
    throw new TypeError(`fetchApi takes a path below /api/, not a URL: ${JSON.stringify(rest)}`);
  }
  const headers = new Headers(init.headers);
  headers.set('X-CSRF', '1');
  const response = await fetch(`${base}/api/${rest.replace(/^\/+/, '')}`, {
    ...init,
    headers,
    credentials: 'include',
  });
  const ended = await sessionEnded(response);
  if (ended) throw ended;
  return response;
}

/**
 * Logs out: ends the session at the BFF (store and cookie), then navigates to the
 * provider's logout page (or the BFF's own page when the provider has none).
 */
export async function logout() {
  const response = await fetch(`${base}/auth/logout`, {
    method: 'POST',
    credentials: 'include',
    headers: { 'X-CSRF': '1', Accept: 'application/json' },
  });
  if (!response.ok) throw await errorOf(response);
  const { logout_url: logoutUrl } = await response.json();
  window.location.assign(typeof logoutUrl === 'string' && logoutUrl ? logoutUrl : `${base}/`);
}
