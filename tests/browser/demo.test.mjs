// The demo front end in a real browser (Debian's Chromium, headless), against the real
// provider pages and bff-local: login, profile, API call, the APIs behind the BFF and
// the token each received, reload, two tabs, logout, refused consent, a session that
// ends under the page.
//
//   bash tests/browser/run.sh        (installs what is missing, builds, runs these)

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { startStack } from './stack.mjs';
import { clickAndLoad, completeLogin, inContext, isBackHome, launchChromium, signIn } from './browser.mjs';

let stack;
let browser;
// One test takes a few seconds; a hung one fails instead of blocking the run.
const LIMIT = { timeout: 60_000 };

before(async () => {
  // Assigned one by one, so that `after` stops whichever started when the other failed.
  const started = [startStack().then((s) => { stack = s; }), launchChromium().then((b) => { browser = b; })];
  const results = await Promise.allSettled(started);
  const failed = results.find((r) => r.status === 'rejected');
  if (failed) throw failed.reason;
}, LIMIT);

after(async () => {
  await Promise.allSettled([browser?.close(), stack?.stop()]);
});

const run = (t, body) => inContext(browser, t, stack.baseUrl, body);

/** Opens the demo page at `path` and waits until it knows whether someone is logged in. */
async function openDemo(page, path = '/') {
  await page.goto(`${stack.baseUrl}${path}`);
  await page.locator('#logged-in, #logged-out').first().waitFor();
  await page.locator('#loading').waitFor({ state: 'hidden' });
}

async function expectLoggedIn(page, name = 'Alice Example', email = 'alice@example.com') {
  await page.locator('#logged-in').waitFor();
  assert.equal(await page.locator('#name').textContent(), name);
  assert.equal(await page.locator('#email').textContent(), email);
}

async function expectLoggedOut(page) {
  await page.locator('#logged-out').waitFor();
  assert.equal(await page.locator('#logged-in').isVisible(), false);
  assert.equal(await page.locator('#login').isVisible(), true);
}

/** From a logged-out demo page: "Log in", through the provider's pages, back logged in. */
async function logIn(page, user = 'alice') {
  await clickAndLoad(page, page.getByRole('button', { name: 'Log in', exact: true }));
  await completeLogin(page, stack.baseUrl, user);
}

async function callApi(page) {
  await page.getByRole('button', { name: 'Call the API' }).click();
  await page.locator('#api-result').waitFor();
  return {
    status: await page.locator('#api-status').textContent(),
    body: JSON.parse(await page.locator('#api-body').textContent()),
  };
}

describe('demo front end in Chromium', () => {
  test('logs in through the provider pages, shows the profile and the session, and calls the API', LIMIT, (t) => run(t, async (context, problems) => {
    const page = await context.newPage();
    await openDemo(page);
    await expectLoggedOut(page);

    await clickAndLoad(page, page.getByRole('button', { name: 'Log in', exact: true }));
    assert.match(page.url(), /\/interaction\//, 'the provider shows its login page');
    await signIn(page, 'alice');
    assert.equal(await page.getByRole('button', { name: 'Continue' }).isVisible(), true, 'then its consent page');
    await completeLogin(page, stack.baseUrl);
    assert.equal(page.url(), `${stack.baseUrl}/`);

    await expectLoggedIn(page);
    assert.equal(await page.locator('#sub').textContent(), 'alice');
    assert.match(await page.locator('#picture').getAttribute('src'), /^data:image\/svg\+xml;base64,/);
    assert.equal(await page.locator('#picture').evaluate((img) => img.complete && img.naturalWidth > 0), true);

    // Both expiries count down: about a day idle, about a week absolute (the defaults).
    assert.match(await page.locator('#idle-left').textContent(), /^(23:59:[0-5]\d|1 d 00:00:00)$/);
    assert.match(await page.locator('#max-left').textContent(), /^(6 d 23:5\d:\d\d|7 d 00:00:00)$/);
    const before = await page.locator('#max-left').textContent();
    await page.waitForFunction((text) => document.getElementById('max-left').textContent !== text, before, { timeout: 3000 });

    const { status, body } = await callApi(page);
    assert.match(status, /^HTTP 200\b/);
    assert.equal(body.message, 'Hello from the demo API');
    assert.equal(body.path, '/hello');
    assert.equal(body.sub, 'alice');

    // The session cookie is HttpOnly: the page cannot read it.
    const cookies = await context.cookies(stack.baseUrl);
    const session = cookies.find((c) => c.name === 'bff-session');
    assert.ok(session, 'bff-session cookie set');
    assert.equal(session.httpOnly, true);
    assert.equal(session.sameSite, 'Strict');
    assert.doesNotMatch(await page.evaluate(() => document.cookie), /bff-session/);

    await page.reload();
    await expectLoggedIn(page);
    assert.deepEqual(problems, []);
  }));

  test('calls each API behind the BFF and shows which token each received, never the token', LIMIT, (t) => run(t, async (context, problems) => {
    const page = await context.newPage();
    await openDemo(page);
    await logIn(page);
    await expectLoggedIn(page);

    // What each API answered the page (through the BFF), read as the browser got it.
    const called = [];
    page.on('request', (req) => called.push(new URL(req.url()).pathname));
    const paths = ['/api/orders/recent', '/api/public/status', '/api/hello'];
    const responses = Promise.all(paths.map((path) => page.waitForResponse((res) => new URL(res.url()).pathname === path)));
    await page.getByRole('button', { name: 'Call each API' }).click();
    const answers = Object.fromEntries(await Promise.all((await responses)
      .map(async (res) => [new URL(res.url()).pathname, { status: res.status(), text: await res.text() }])));
    await page.waitForFunction(() => [...document.querySelectorAll('#apis-result td.status')]
      .every((td) => /^HTTP \d/.test(td.textContent)));
    const row = async (id) => Object.fromEntries(await Promise.all(['status', 'audience', 'scope']
      .map(async (cell) => [cell, await page.locator(`#apis-${id} td.${cell}`).textContent()])));

    // The orders API accepted only a JWT issued for it: its audience and the login's api:read.
    assert.deepEqual(await row('orders'), { status: 'HTTP 200 OK', audience: 'https://orders.example', scope: 'api:read' });
    // The public API received no token, not even an Authorization header.
    assert.deepEqual(await row('public'), { status: 'HTTP 200 OK', audience: 'no token', scope: '–' });
    const publicAnswer = JSON.parse(answers['/api/public/status'].text);
    assert.equal(publicAnswer.token, 'none');
    assert.equal(publicAnswer.authorization_header, false);
    // The default API got the login's own token: not the orders one.
    const fallback = await row('default');
    assert.equal(fallback.status, 'HTTP 200 OK');
    assert.notEqual(fallback.audience, 'https://orders.example');
    assert.equal(JSON.parse(answers['/api/hello'].text).sub, 'alice');

    // No token anywhere the page can see: neither in the answers nor on the page.
    assert.deepEqual(called.filter((path) => path.startsWith('/api/')).sort(), [...paths].sort());
    for (const { text } of Object.values(answers)) assert.doesNotMatch(text, /eyJ[\w-]+\.[\w-]+\.|"access_token"/);
    assert.doesNotMatch(await page.content(), /eyJ[\w-]+\.[\w-]+\./);
    assert.deepEqual(problems, []);
  }));

  test('logs in from two tabs at once and logs out of both', LIMIT, (t) => run(t, async (context) => {
    const [one, two] = [await context.newPage(), await context.newPage()];
    await openDemo(one, '/?tab=one');
    await openDemo(two, '/?tab=two');

    // Both logins are pending at the provider before either finishes.
    await clickAndLoad(one, one.getByRole('button', { name: 'Log in', exact: true }));
    await clickAndLoad(two, two.getByRole('button', { name: 'Log in', exact: true }));
    assert.match(one.url(), /\/interaction\//);
    assert.match(two.url(), /\/interaction\//);
    assert.equal(new Set((await context.cookies(stack.baseUrl)).map((c) => c.name)).has('bff-session'), false);

    await completeLogin(one, stack.baseUrl);
    await completeLogin(two, stack.baseUrl);
    assert.equal(one.url(), `${stack.baseUrl}/?tab=one`, 'each tab comes back to its own page');
    assert.equal(two.url(), `${stack.baseUrl}/?tab=two`);
    await expectLoggedIn(one);
    await expectLoggedIn(two);
    // One browser, one session: the cookie jar holds the last login's, both tabs use it.
    await one.reload();
    await expectLoggedIn(one);
    assert.equal((await callApi(one)).body.sub, 'alice');
    assert.equal((await callApi(two)).body.sub, 'alice');

    // Log out in tab one: the provider asks whether to sign out there too.
    await clickAndLoad(one, one.getByRole('button', { name: 'Log out' }));
    assert.ok(one.url().startsWith(stack.issuer), `on the provider's logout page, not ${one.url()}`);
    await clickAndLoad(one, one.getByRole('button', { name: 'Yes, sign me out' }));
    assert.ok(isBackHome(one.url(), stack.baseUrl), `back on the app, not ${one.url()}`);
    await expectLoggedOut(one);

    await two.reload();
    await expectLoggedOut(two);
    await one.reload();
    await expectLoggedOut(one);
  }));

  test('an API call after the session ended offers to log in again, back to the same page', LIMIT, (t) => run(t, async (context) => {
    const page = await context.newPage();
    await openDemo(page, '/?view=orders');
    await logIn(page);
    assert.equal(page.url(), `${stack.baseUrl}/?view=orders`);
    await expectLoggedIn(page);

    // The session ends behind the page's back (here: its cookie goes away).
    await context.clearCookies();
    await page.getByRole('button', { name: 'Call the API' }).click();
    const alert = page.getByRole('alert');
    await alert.waitFor();
    assert.match(await alert.textContent(), /Session ended/);
    await expectLoggedOut(page);

    const [login] = await Promise.all([
      page.waitForRequest((req) => req.url().startsWith(`${stack.baseUrl}/auth/login`)),
      clickAndLoad(page, page.getByRole('button', { name: 'Log in again' })),
    ]);
    assert.equal(new URL(login.url()).searchParams.get('returnTo'), '/?view=orders');
    await completeLogin(page, stack.baseUrl);
    assert.equal(page.url(), `${stack.baseUrl}/?view=orders`);
    await expectLoggedIn(page);
    assert.equal(await page.getByRole('alert').isVisible(), false);
  }));

  test('cancelling at the consent page shows the access_denied error page', LIMIT, (t) => run(t, async (context) => {
    const page = await context.newPage();
    await openDemo(page);
    await clickAndLoad(page, page.getByRole('button', { name: 'Log in', exact: true }));
    await signIn(page, 'alice');
    assert.equal(await page.getByRole('button', { name: 'Continue' }).isVisible(), true);

    const [callback] = await Promise.all([
      page.waitForResponse((res) => res.url().startsWith(`${stack.baseUrl}/auth/callback`)),
      clickAndLoad(page, page.getByRole('link', { name: '[ Cancel ]' })),
    ]);
    assert.equal(callback.status(), 403);
    assert.match(await page.locator('body').textContent(), /access_denied/);
    assert.match(await page.locator('body').textContent(), /End-User aborted interaction/);

    // No session came of it.
    const cookies = await context.cookies(stack.baseUrl);
    assert.equal(cookies.some((c) => c.name === 'bff-session'), false);
    await clickAndLoad(page, page.getByRole('link', { name: 'Back to the application' }));
    await expectLoggedOut(page);
  }));

  test('cancelling at the login page shows the access_denied error page', LIMIT, (t) => run(t, async (context) => {
    const page = await context.newPage();
    await openDemo(page);
    await clickAndLoad(page, page.getByRole('button', { name: 'Log in', exact: true }));
    const [callback] = await Promise.all([
      page.waitForResponse((res) => res.url().startsWith(`${stack.baseUrl}/auth/callback`)),
      clickAndLoad(page, page.getByRole('link', { name: '[ Cancel ]' })),
    ]);
    assert.equal(callback.status(), 403);
    assert.match(await page.locator('body').textContent(), /access_denied/);
  }));

  test('shows a provider ?error= readably, as text, and takes it out of the address bar', LIMIT, (t) => run(t, async (context, problems) => {
    const page = await context.newPage();
    let dialogs = 0;
    page.on('dialog', (dialog) => { dialogs += 1; dialog.dismiss(); });
    const description = '<img src=x onerror=alert(1)> refused';
    await openDemo(page, `/?error=access_denied&error_description=${encodeURIComponent(description)}&keep=1`);

    const alert = page.getByRole('alert');
    await alert.waitFor();
    const text = await alert.textContent();
    assert.match(text, /Sign-in failed/);
    assert.match(text, /The sign-in was cancelled or refused\./);
    assert.ok(text.includes(`access_denied: ${description}`), text);
    assert.equal(await alert.locator('img').count(), 0, 'the description is text, not markup');
    assert.equal(await page.getByRole('button', { name: 'Log in again' }).count(), 1, 'one button to log in again');
    assert.equal(page.url(), `${stack.baseUrl}/?keep=1`);
    await expectLoggedOut(page);
    assert.equal(dialogs, 0);
    assert.deepEqual(problems, []);
  }));

  test('a front end on another origin logs in, calls the API and logs out with configure({ baseUrl })', LIMIT, (t) => run(t, async (context) => {
    const page = await context.newPage();
    const front = stack.otherOrigin;
    await page.goto(`${front}/?from=elsewhere`);
    await page.waitForFunction(() => window.bff);
    assert.equal(await page.evaluate(() => window.bff.me()), null);

    // login() comes back to this page: an absolute returnTo, allowed by BFF_ALLOWED_ORIGINS.
    const [login] = await Promise.all([
      page.waitForRequest((req) => req.url().startsWith(`${stack.baseUrl}/auth/login`)),
      page.waitForURL((url) => url.href.startsWith(`${stack.issuer}/interaction/`), { waitUntil: 'load' }),
      page.evaluate(() => { window.bff.login(); }),
    ]);
    assert.equal(new URL(login.url()).searchParams.get('returnTo'), `${front}/?from=elsewhere`);
    await completeLogin(page, front);
    assert.equal(page.url(), `${front}/?from=elsewhere`);
    await page.waitForFunction(() => window.bff);

    const user = await page.evaluate(() => window.bff.me());
    assert.equal(user.name, 'Alice Example');
    assert.equal(typeof user.session.expires_at, 'number');
    const api = await page.evaluate(async () => {
      const res = await window.bff.fetchApi('/hello?x=1', { method: 'POST', body: 'ping', headers: { 'Content-Type': 'text/plain' } });
      return { status: res.status, body: await res.json() };
    });
    assert.equal(api.status, 200);
    assert.equal(api.body.method, 'POST');
    assert.equal(api.body.query, 'x=1');
    assert.equal(api.body.body, 'ping');

    // logout() ends the session, then goes to the provider's logout page.
    await Promise.all([page.waitForURL((url) => url.href.startsWith(stack.issuer)), page.evaluate(() => { window.bff.logout(); })]);
    await page.goto(front);
    await page.waitForFunction(() => window.bff);
    assert.equal(await page.evaluate(() => window.bff.me()), null);
    const refused = await page.evaluate(async () => {
      try {
        await window.bff.fetchApi('/hello');
        return 'no error';
      } catch (err) {
        return { unauthorized: err instanceof window.bff.UnauthorizedError, status: err.status, code: err.code };
      }
    });
    assert.deepEqual(refused, { unauthorized: true, status: 401, code: 'login_required' });
  }));
  test('a second login in the same browser ends the first session, though the provider is on another site', LIMIT, (t) => run(t, async (context) => {
    // The provider (127.0.0.1) and the BFF (localhost) are different sites to the browser:
    // the callback is a cross-site navigation that carries no SameSite=Strict cookie.
    assert.notEqual(new URL(stack.issuer).hostname, new URL(stack.baseUrl).hostname);
    const page = await context.newPage();
    await openDemo(page);
    await logIn(page);
    await expectLoggedIn(page);
    const sessionCookie = async () => (await context.cookies(stack.baseUrl)).find((c) => c.name === 'bff-session')?.value;
    const first = await sessionCookie();
    assert.ok(first, 'a session cookie after the first login');

    // Without the provider's own session its login page shows, so the callback is a
    // navigation the provider's page starts: cross-site, as when a user signs in again.
    await context.clearCookies({ domain: new URL(stack.issuer).hostname });
    await page.goto(`${stack.baseUrl}/auth/login?returnTo=%2F`);
    assert.match(page.url(), /\/interaction\//, 'the provider shows its login page again');
    await completeLogin(page, stack.baseUrl);
    await expectLoggedIn(page);
    const second = await sessionCookie();
    assert.ok(second && second !== first, 'a new session id after the second login');

    const me = await fetch(`${stack.baseUrl}/auth/me`, { headers: { cookie: `bff-session=${first}` } });
    await me.body?.cancel();
    assert.equal(me.status, 401, 'the first session id no longer works');
  }));
});
