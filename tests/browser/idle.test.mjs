// The demo page leaves no request open: Playwright's `networkidle` (no connection for
// 500 ms) is reached logged out and logged in, so a page built on bff.js can be waited
// for that way. A response body bff.js neither returns nor reads keeps its request open.
// And after "Log out", whatever the user answers at the provider, the page says the app
// session ended.
//
//   bash tests/browser/run.sh        (installs what is missing, builds, runs these)

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { startStack } from './stack.mjs';
import { clickAndLoad, completeLogin, inContext, isBackHome, launchChromium } from './browser.mjs';

let stack;
let browser;
const LIMIT = { timeout: 60_000 };
// Well below the test's limit: a page that never goes idle fails here, with its name.
const IDLE = { waitUntil: 'networkidle', timeout: 10_000 };

before(async () => {
  const started = [startStack().then((s) => { stack = s; }), launchChromium().then((b) => { browser = b; })];
  const results = await Promise.allSettled(started);
  const failed = results.find((r) => r.status === 'rejected');
  if (failed) throw failed.reason;
}, LIMIT);

after(async () => {
  await Promise.allSettled([browser?.close(), stack?.stop()]);
});

const run = (t, body) => inContext(browser, t, stack.baseUrl, body);

describe('demo front end goes network-idle', () => {
  test('logged out, logged in, after an API call, and after a reload', LIMIT, (t) => run(t, async (context, problems) => {
    const page = await context.newPage();
    await page.goto(`${stack.baseUrl}/`, IDLE);
    await page.locator('#logged-out').waitFor();

    await clickAndLoad(page, page.getByRole('button', { name: 'Log in', exact: true }));
    await completeLogin(page, stack.baseUrl);
    await page.waitForLoadState('networkidle', { timeout: IDLE.timeout });
    await page.locator('#logged-in').waitFor();

    await page.reload(IDLE);
    await page.locator('#logged-in').waitFor();

    // The helpers on their own, each followed by an idle network.
    const results = await page.evaluate(async () => {
      const bff = await import('/bff.js');
      const user = await bff.me();
      const api = await bff.fetchApi('/hello');
      await api.text();
      return { user: user?.sub, api: api.status };
    });
    assert.deepEqual(results, { user: 'alice', api: 200 });
    await page.goto(`${stack.baseUrl}/?again=1`, IDLE);
    await page.locator('#logged-in').waitFor();
    assert.deepEqual(problems, []);
  }));

  test('me() logged out leaves no request open', LIMIT, (t) => run(t, async (context) => {
    const page = await context.newPage();
    await page.goto(`${stack.baseUrl}/`, IDLE);
    // Three 401s from /auth/me: each request must finish.
    const open = new Set();
    page.on('request', (req) => { if (req.url().endsWith('/auth/me')) open.add(req); });
    page.on('requestfinished', (req) => open.delete(req));
    page.on('requestfailed', (req) => open.delete(req));
    const users = await page.evaluate(async () => {
      const bff = await import('/bff.js');
      return Promise.all([bff.me(), bff.me(), bff.me()]);
    });
    assert.deepEqual(users, [null, null, null]);
    for (let i = 0; i < 50 && open.size > 0; i += 1) await page.waitForTimeout(100);
    assert.equal(open.size, 0, 'every /auth/me request finished');
  }));
});

describe('logging out of the demo', () => {
  for (const answer of ['No, stay signed in', 'Yes, sign me out']) {
    test(`says the app session ended when the provider is answered "${answer}"`, LIMIT, (t) => run(t, async (context) => {
      const page = await context.newPage();
      await page.goto(`${stack.baseUrl}/`);
      await clickAndLoad(page, page.getByRole('button', { name: 'Log in', exact: true }));
      await completeLogin(page, stack.baseUrl);
      await page.locator('#logged-in').waitFor();

      await clickAndLoad(page, page.getByRole('button', { name: 'Log out' }));
      assert.ok(page.url().startsWith(stack.issuer), `on the provider's logout page, not ${page.url()}`);
      await clickAndLoad(page, page.getByRole('button', { name: answer }));
      assert.ok(isBackHome(page.url(), stack.baseUrl), `back on the app, not ${page.url()}`);

      await page.locator('#logged-out').waitFor();
      const alert = page.getByRole('alert');
      await alert.waitFor();
      assert.match(await alert.textContent(), /You have been logged out of this app\./);
      assert.equal(await page.getByRole('button', { name: 'Log in', exact: true }).isVisible(), true);

      // Said once: a reload shows the plain logged-out page.
      await page.reload(IDLE);
      await page.locator('#logged-out').waitFor();
      assert.equal(await page.getByRole('alert').isVisible(), false);
    }));
  }
});
