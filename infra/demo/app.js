'use strict';

const $ = (id) => document.getElementById(id);

function show(state) {
  $('loading').hidden = state !== 'loading';
  $('logged-out').hidden = state !== 'logged-out';
  $('logged-in').hidden = state !== 'logged-in';
}

function showError(text) {
  $('error').textContent = text;
  $('error').hidden = !text;
}

function when(epochSeconds) {
  return typeof epochSeconds === 'number' ? new Date(epochSeconds * 1000).toLocaleString() : 'unknown';
}

async function readJson(res) {
  try { return await res.json(); } catch { return null; }
}

async function loadUser() {
  show('loading');
  let res;
  try {
    res = await fetch('/auth/me', { credentials: 'include', headers: { Accept: 'application/json' } });
  } catch (err) {
    showError(`Could not reach the server: ${err.message}`);
    show('logged-out');
    return;
  }
  if (res.status === 401) { show('logged-out'); return; }
  const me = await readJson(res);
  if (!res.ok || !me) {
    showError(`Could not load the session (HTTP ${res.status})${me?.error_description ? `: ${me.error_description}` : ''}`);
    show('logged-out');
    return;
  }
  $('name').textContent = me.name || me.preferred_username || me.sub;
  $('email').textContent = me.email || '';
  const pic = typeof me.picture === 'string' && /^(https?:|data:image\/)/i.test(me.picture) ? me.picture : '';
  $('picture').hidden = !pic;
  if (pic) $('picture').src = pic;
  const s = me.session || {};
  $('expiry').textContent = `Session ends ${when(s.expires_at)} (or after inactivity, ${when(s.idle_expires_at)})`;
  show('logged-in');
}

async function callApi() {
  const out = $('api-result');
  $('call-api').disabled = true;
  try {
    const res = await fetch('/api/hello', { credentials: 'include', headers: { 'X-CSRF': '1' } });
    const body = await readJson(res);
    out.textContent = `HTTP ${res.status}\n${body ? JSON.stringify(body, null, 2) : '(no JSON body)'}`;
    if (res.status === 401) await loadUser();
  } catch (err) {
    out.textContent = `Request failed: ${err.message}`;
  } finally {
    out.hidden = false;
    $('call-api').disabled = false;
  }
}

async function logout() {
  $('logout').disabled = true;
  try {
    const res = await fetch('/auth/logout', { method: 'POST', credentials: 'include', headers: { 'X-CSRF': '1' } });
    const body = await readJson(res);
    if (res.ok && body && typeof body.logout_url === 'string') {
      window.location.href = body.logout_url;
      return;
    }
    showError(`Logout failed (HTTP ${res.status})${body?.error_description ? `: ${body.error_description}` : ''}`);
    await loadUser();
  } catch (err) {
    showError(`Logout failed: ${err.message}`);
  } finally {
    $('logout').disabled = false;
  }
}

function showQueryError() {
  const params = new URLSearchParams(window.location.search);
  const error = params.get('error');
  if (!error) return;
  const description = params.get('error_description');
  showError(`Sign-in failed: ${error}${description ? ` — ${description}` : ''}`);
  window.history.replaceState(null, '', window.location.pathname);
}

$('login').addEventListener('click', () => { window.location.href = '/auth/login?returnTo=/'; });
$('call-api').addEventListener('click', callApi);
$('logout').addEventListener('click', logout);
showQueryError();
loadUser();
