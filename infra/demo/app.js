// The demo front end: who is logged in, the session's expiry, a call to the API, a call to
// each of the APIs behind the BFF (which token each received), logout.
// Everything it knows comes from bff.js; data reaches the page only through textContent.

import { me, login, logout, fetchApi, UnauthorizedError } from './bff.js';

const $ = (id) => document.getElementById(id);

// Readable words for the provider's `?error=` codes (RFC 6749 §4.1.2.1, OIDC Core §3.1.2.6).
const PROVIDER_ERRORS = {
  access_denied: 'The sign-in was cancelled or refused.',
  login_required: 'The provider needs you to sign in.',
  consent_required: 'The provider needs your consent.',
  interaction_required: 'The provider needs you to interact with it.',
  invalid_request: 'The sign-in request was not valid.',
  invalid_scope: 'The application asked for a scope the provider does not offer.',
  unauthorized_client: 'The application may not sign in this way.',
  server_error: 'The identity provider had an internal error.',
  temporarily_unavailable: 'The identity provider is temporarily unavailable.',
};

let session = null; // { expires_at, idle_expires_at } of the user shown
let ticker = 0;
let lastExpiryCheck = 0;
let alertKind = '';
let loginAgain = false; // a session ended or a sign-in failed: the button says "Log in again"

// Set when "Log out" leaves for the provider's logout page, read once when the provider
// sends the browser back. The BFF session ended before the provider asked anything, so
// the page says so whatever the answer there was ("No, stay signed in" included).
const LOGGED_OUT_KEY = 'bff-demo-logged-out';
let justLoggedOut = false;
try {
  justLoggedOut = sessionStorage.getItem(LOGGED_OUT_KEY) === '1';
  sessionStorage.removeItem(LOGGED_OUT_KEY);
} catch {
  // Storage refused (a privacy setting): the page just does not say it.
}

function show(state) {
  for (const id of ['loading', 'logged-out', 'logged-in']) $(id).hidden = id !== state;
}

function alertBox(title, text = '', kind = '') {
  alertKind = kind;
  $('alert').classList.toggle('info', kind === 'logged-out');
  $('alert-title').textContent = title;
  $('alert-text').textContent = text;
  $('alert-text').hidden = !text;
  $('alert').hidden = false;
}

function clearAlert(kind) {
  if (alertKind === kind) $('alert').hidden = true;
}

// --- Session expiry ---------------------------------------------------------------

function remaining(seconds) {
  if (seconds <= 0) return 'now';
  const d = Math.floor(seconds / 86400);
  const h = Math.floor((seconds % 86400) / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  const clock = [h, m, s].map((n) => String(n).padStart(2, '0')).join(':');
  return d > 0 ? `${d} d ${clock}` : clock;
}

const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

function paint(prefix, epochSeconds, now) {
  const known = Number.isFinite(epochSeconds);
  const left = known ? Math.max(0, Math.round(epochSeconds - now)) : NaN;
  $(`${prefix}-left`).textContent = known ? remaining(left) : 'unknown';
  $(`${prefix}-at`).textContent = known ? `at ${dateFormat.format(new Date(epochSeconds * 1000))}` : '';
  $(`${prefix}-box`).classList.toggle('soon', known && left < 300);
  return left;
}

function tick() {
  if (!session) return;
  const now = Date.now() / 1000;
  const idle = paint('idle', session.idle_expires_at, now);
  const max = paint('max', session.expires_at, now);
  // Expired on this clock: ask the BFF, which decides (at most every 30 s, clocks differ).
  if ((idle === 0 || max === 0) && Date.now() - lastExpiryCheck > 30_000) {
    lastExpiryCheck = Date.now();
    refresh();
  }
}

function startTicking() {
  clearInterval(ticker);
  tick();
  ticker = setInterval(tick, 1000);
}

// --- States ---------------------------------------------------------------------

function initials(user) {
  const words = String(user.name || user.preferred_username || user.email || user.sub || '?')
    .split(/[\s@._-]+/u).filter(Boolean);
  return words.slice(0, 2).map((w) => [...w][0]).join('').toUpperCase() || '?';
}

function showUser(user) {
  $('name').textContent = user.name || user.preferred_username || user.sub;
  $('email').textContent = user.email || '';
  $('sub').textContent = user.sub;
  $('initials').textContent = initials(user);
  const picture = typeof user.picture === 'string' && /^(https:|data:image\/)/i.test(user.picture) ? user.picture : '';
  $('picture').hidden = !picture;
  $('initials').hidden = Boolean(picture);
  if (picture && $('picture').getAttribute('src') !== picture) $('picture').src = picture;
  session = user.session ?? null;
  clearAlert('session');
  clearAlert('logged-out');
  show('logged-in');
  startTicking();
}

function showLoggedOut() {
  session = null;
  clearInterval(ticker);
  $('login').textContent = loginAgain ? 'Log in again' : 'Log in';
  show('logged-out');
  if (justLoggedOut) {
    justLoggedOut = false;
    alertBox('Logged out', 'You have been logged out of this app. If you chose to stay signed in at the '
      + 'identity provider, logging in again may not ask for your password.', 'logged-out');
  }
}

function sessionEnded(err) {
  loginAgain = true;
  showLoggedOut();
  const why = err?.code === 'session_expired' ? 'Your session has expired.' : 'You are no longer logged in.';
  alertBox('Session ended', `${why} Log in again to continue where you were.`, 'session');
  $('login').focus();
}

let refreshing = null;
async function refresh() {
  refreshing ??= (async () => {
    try {
      const user = await me();
      if (user) showUser(user);
      else if (session) sessionEnded();
      else showLoggedOut();
    } catch (err) {
      if (!session) showLoggedOut();
      alertBox('Could not reach the BFF', err.message);
    } finally {
      refreshing = null;
    }
  })();
  return refreshing;
}

// --- Actions --------------------------------------------------------------------

async function callApi() {
  const button = $('call-api');
  button.disabled = true;
  const started = performance.now();
  try {
    const response = await fetchApi('/hello');
    const text = await response.text();
    let body = text;
    try {
      body = JSON.stringify(JSON.parse(text), null, 2);
    } catch {
      // Not JSON: show it as it came.
    }
    const ms = Math.round(performance.now() - started);
    $('api-status').textContent = `${['HTTP', response.status, response.statusText].filter(Boolean).join(' ')} · ${ms} ms`;
    $('api-status').className = `status ${response.ok ? 'ok' : 'bad'}`;
    $('api-body').textContent = body || '(empty body)';
    $('api-result').hidden = false;
    // The call slid the idle expiry forward: show the new one.
    await refresh();
  } catch (err) {
    if (err instanceof UnauthorizedError) {
      sessionEnded(err);
    } else {
      $('api-status').textContent = 'The request failed';
      $('api-status').className = 'status bad';
      $('api-body').textContent = err.message;
      $('api-result').hidden = false;
    }
  } finally {
    button.disabled = false;
  }
}

// The APIs behind the BFF (infra/dev.sh's BFF_APIS): the row of the page showing each.
const APIS = [
  { row: 'apis-orders', path: '/orders/recent' },
  { row: 'apis-public', path: '/public/status' },
  { row: 'apis-default', path: '/hello' },
];

/**
 * What an API's answer says about the token it received: its audience and scope, or
 * that there was none. The APIs describe the token; they never send it back.
 */
function tokenReceived(body) {
  if (body?.token === 'none') {
    // A public API must not receive an Authorization header at all.
    return body.authorization_header
      ? { audience: 'an Authorization header arrived', scope: '–', bad: true }
      : { audience: 'no token', scope: '–' };
  }
  return {
    audience: body?.audience ?? 'no audience (the login\'s token)',
    scope: body?.scope || '(none)',
  };
}

async function callApis() {
  const button = $('call-apis');
  button.disabled = true;
  for (const { row } of APIS) {
    for (const cell of $(row).querySelectorAll('td')) cell.textContent = '…';
  }
  $('apis-result').hidden = false;
  try {
    const answers = await Promise.allSettled(APIS.map(async ({ row, path }) => {
      const response = await fetchApi(path);
      let body = null;
      try {
        body = await response.json();
      } catch {
        // Not JSON: the status says enough.
      }
      const cells = $(row).querySelectorAll('td');
      cells[0].textContent = ['HTTP', response.status, response.statusText].filter(Boolean).join(' ');
      cells[0].className = `status ${response.ok ? 'ok' : 'bad'}`;
      const token = response.ok ? tokenReceived(body) : { audience: body?.error ?? '–', scope: '–' };
      cells[1].textContent = token.audience;
      cells[1].className = `audience${token.bad ? ' bad' : ''}`;
      cells[2].textContent = token.scope;
    }));
    const ended = answers.find((a) => a.status === 'rejected' && a.reason instanceof UnauthorizedError);
    if (ended) {
      sessionEnded(ended.reason);
      return;
    }
    for (const [i, answer] of answers.entries()) {
      if (answer.status !== 'rejected') continue;
      const cells = $(APIS[i].row).querySelectorAll('td');
      cells[0].textContent = `The request failed: ${answer.reason.message}`;
      cells[0].className = 'status bad';
      cells[1].textContent = '–';
      cells[2].textContent = '–';
    }
    await refresh();
  } finally {
    button.disabled = false;
  }
}

async function doLogout() {
  $('logout').disabled = true;
  try {
    sessionStorage.setItem(LOGGED_OUT_KEY, '1');
  } catch {
    // See LOGGED_OUT_KEY.
  }
  try {
    await logout();
  } catch (err) {
    try {
      sessionStorage.removeItem(LOGGED_OUT_KEY);
    } catch {
      // See LOGGED_OUT_KEY.
    }
    alertBox('Logout failed', err.message);
    $('logout').disabled = false;
  }
}

/** Shows `?error=…` from the provider, then takes it out of the address bar. */
function showProviderError() {
  const url = new URL(window.location.href);
  const error = url.searchParams.get('error');
  if (!error) return;
  const description = url.searchParams.get('error_description');
  const explanation = PROVIDER_ERRORS[error] ?? 'The identity provider refused the sign-in.';
  loginAgain = true;
  alertBox('Sign-in failed', `${explanation} (${error}${description ? `: ${description}` : ''})`);
  for (const name of ['error', 'error_description', 'error_uri', 'state', 'iss']) url.searchParams.delete(name);
  window.history.replaceState(null, '', url);
}

$('login').addEventListener('click', () => login());
$('call-api').addEventListener('click', callApi);
$('call-apis').addEventListener('click', callApis);
$('logout').addEventListener('click', doLogout);
// Back on this tab after a while (or after logging out in another one): check again.
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible') refresh();
});

showProviderError();
refresh();
