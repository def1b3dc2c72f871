// An API's 401 is not an ended session: bff.js sends the user to log in only on the
// BFF's own 401 (`login_required`, `session_expired`), never on a 401 the API answered
// and the BFF passed on, so a page written like the README's example cannot loop
// through the login. The API behind /api/* here refuses every call, as an API does
// that does not accept the user's token.
//
//   bash tests/browser/run.sh        (installs what is missing, builds, runs these)

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import * as http from 'node:http';

import { startStack } from './stack.mjs';
import { clickAndLoad, completeLogin, inContext, launchChromium } from './browser.mjs';

let api;
let stack;
let browser;
const LIMIT = { timeout: 60_000 };
// How long a page that was about to navigate to the login is given to do it.
const SETTLE_MS = 1500;

/** An API that answers every call 401, the way a resource server refuses a token. */
async function startRefusingApi() {
  const server = http.createServer((req, res) => {
    req.resume();
    const body = JSON.stringify({ error: 'invalid_token', error_description: 'the API refused the token' });
    res.writeHead(401, {
      'content-type': 'application/json',
      'www-authenticate': 'Bearer error="invalid_token"',
      'content-length': Buffer.byteLength(body),
    });
    res.end(body);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return server;
}

before(async () => {
  api = await startRefusingApi();
  const upstreamUrl = `http://127.0.0.1:${api.address().port}/`;
  const started = [
    startStack({ upstreamUrl }).then((s) => { stack = s; }),
    launchChromium().then((b) => { browser = b; }),
  ];
  const results = await Promise.allSettled(started);
  const failed = results.find((r) => r.status === 'rejected');
  if (failed) throw failed.reason;
}, LIMIT);

after(async () => {
  api?.closeAllConnections();
  await Promise.allSettled([browser?.close(), stack?.stop(), api && new Promise((r) => api.close(r))]);
});

const run = (t, body) => inContext(browser, t, stack.baseUrl, body);

/** Logs in from the demo page and waits until it shows the user. */
async function logIn(page) {
  await page.goto(`${stack.baseUrl}/`);
  await page.locator('#logged-out').waitFor();
  await clickAndLoad(page, page.getByRole('button', { name: 'Log in', exact: true }));
  await completeLogin(page, stack.baseUrl);
  await page.locator('#logged-in').waitFor();
}

/**
 * The README's example, run in the page: an API call, and `login()` on
 * `UnauthorizedError`. Resolves to what the call came to; a login it starts navigates.
 */
function readmeExample(page) {
  return page.evaluate(async () => {
    const { fetchApi, login, UnauthorizedError } = await import('/bff.js');
    try {
      const res = await fetchApi('/orders');
      return { status: res.status, body: await res.json() };
    } catch (err) {
      if (err instanceof UnauthorizedError) {
        login();
        return { loginStarted: err.code };
      }
      throw err;
    }
  });
}

describe('bff.js tells an ended session from an API that answered 401', () => {
  test("the API's 401 reaches the page as a response and does not start a login", LIMIT, (t) => run(t, async (context, problems) => {
    const page = await context.newPage();
    await logIn(page);
    const logins = [];
    page.on('request', (req) => { if (req.url().startsWith(`${stack.baseUrl}/auth/login`)) logins.push(req.url()); });

    const outcome = await readmeExample(page);
    assert.deepEqual(outcome, {
      status: 401,
      body: { error: 'invalid_token', error_description: 'the API refused the token' },
    }, "the API's own answer, body intact");
    await page.waitForTimeout(SETTLE_MS);
    assert.deepEqual(logins, [], 'no login started');
    assert.equal(page.url(), `${stack.baseUrl}/`);

    // The demo page says what the API answered, and the user stays logged in.
    await page.getByRole('button', { name: 'Call the API' }).click();
    await page.locator('#api-result').waitFor();
    assert.match(await page.locator('#api-status').textContent(), /^HTTP 401\b/);
    assert.equal(await page.locator('#logged-in').isVisible(), true);
    assert.equal(await page.getByRole('alert').isVisible(), false, 'no "Session ended"');
    assert.deepEqual(logins, []);
    assert.deepEqual(problems, []);
  }));

  test('the BFF saying the session ended starts a login', LIMIT, (t) => run(t, async (context) => {
    const page = await context.newPage();
    await logIn(page);

    // The session ends behind the page's back (here: its cookie goes away).
    await context.clearCookies({ domain: new URL(stack.baseUrl).hostname });
    const [login, outcome] = await Promise.all([
      page.waitForRequest((req) => req.url().startsWith(`${stack.baseUrl}/auth/login`)),
      // The navigation may end the page's script before it answers.
      readmeExample(page).catch(() => ({ loginStarted: 'navigated away' })),
    ]);
    assert.ok(outcome.loginStarted, `the example started a login: ${JSON.stringify(outcome)}`);
    assert.equal(new URL(login.url()).searchParams.get('returnTo'), '/');
    // The provider still knows the user: the login comes straight back, logged in.
    await completeLogin(page, stack.baseUrl);
    await page.locator('#logged-in').waitFor();
  }));
});
