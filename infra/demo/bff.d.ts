// Types of bff.js, the browser client of the Backend-for-Frontend.

/** The session's expiries, in seconds since the epoch. */
export interface SessionInfo {
  /** Absolute end: login time plus BFF_SESSION_MAX_SECS. */
  expires_at: number;
  /** End by inactivity: slides forward with use, up to `expires_at`. */
  idle_expires_at: number;
}

/** `GET /auth/me`: the ID-token claims at the top level, and the session's expiries. */
export interface Me {
  sub: string;
  name?: string;
  given_name?: string;
  family_name?: string;
  preferred_username?: string;
  email?: string;
  email_verified?: boolean;
  /** A URL (`https:` or `data:`) of the user's picture. */
  picture?: string;
  session: SessionInfo;
  /** Any other claim the provider put in the ID token. */
  [claim: string]: unknown;
}

export interface ConfigureOptions {
  /**
   * The BFF's origin (optionally with a path) when the front end is served from another
   * origin, e.g. `https://app.example.com`. That front end's origin must be listed in the
   * BFF's `BFF_ALLOWED_ORIGINS`. Empty (the default): the page's own origin.
   */
  baseUrl?: string;
}

/** Points the client at a BFF on another origin. */
export function configure(options?: ConfigureOptions): void;

/** An error answer of the BFF: `{"error": code, "error_description": description}`. */
export class BffError extends Error {
  constructor(status: number, code: string, description?: string);
  readonly name: 'BffError' | 'UnauthorizedError';
  /** The HTTP status (400, 401, 403, 502, 503, 504, …). */
  readonly status: number;
  /** The `error` code, e.g. `login_required`; `http_<status>` when the body had none. */
  readonly code: string;
  /** The `error_description`, or `''`. */
  readonly description: string;
}

/**
 * The BFF's own 401 (`code` `login_required` or `session_expired`): nobody is logged in or
 * the session ended. Call `login()` to start again. An API's 401 is never one.
 */
export class UnauthorizedError extends BffError {
  constructor(code?: string, description?: string);
  readonly name: 'UnauthorizedError';
  readonly status: 401;
}

/** What a login may ask of the provider; the BFF validates each and refuses any other. */
export interface LoginOptions {
  prompt?: 'none' | 'login' | 'consent' | 'select_account' | 'create' | string;
  login_hint?: string;
  /** Seconds: the ID token's `auth_time` must be at most this old. */
  max_age?: number;
  /** Space-separated; the ID token's `acr` must be one of them. */
  acr_values?: string;
  ui_locales?: string;
  /** Auth0 Organizations: an organization id or name. */
  organization?: string;
}

/**
 * The URL that starts a login and comes back to `returnTo`: a path on the BFF's origin
 * (`/orders?x=1`) or an absolute URL of an allowed origin. Default: the current page.
 */
export function loginUrl(returnTo?: string, options?: LoginOptions): string;

/**
 * Starts a login by navigating to the provider; comes back to `returnTo` (default: the
 * current page). With `acr_values` (and `prompt: 'login'`) it is a step-up: the current
 * session stays until the new one exists.
 */
export function login(returnTo?: string, options?: LoginOptions): void;

/**
 * A silent login (`prompt=none`). Navigates away and returns `null`; or, when the current
 * page is the answer of a silent login the provider could not complete, returns its code
 * (`login_required`, `consent_required`, `interaction_required`) and removes it from the
 * address bar.
 */
export function trySilentLogin(returnTo?: string): 'login_required' | 'consent_required' | 'interaction_required' | null;

/** The logged-in user, or `null` when nobody is (401). Throws `BffError` on other failures. */
export function me(): Promise<Me | null>;

/**
 * Calls the API through the BFF: `path` is below `/api/` (`'/orders'` requests
 * `/api/orders`). Adds `credentials: 'include'` and `X-CSRF: 1`. Resolves to the
 * response whatever its status, the API's own 401 included, except the BFF's own 401
 * (the session ended), which rejects with `UnauthorizedError`.
 */
export function fetchApi(path: string, init?: RequestInit): Promise<Response>;

/**
 * Ends the session (`POST /auth/logout` with `X-CSRF: 1`), then navigates to the
 * `logout_url` the BFF answers (the provider's logout page). Throws `BffError` on failure.
 */
export function logout(): Promise<void>;
