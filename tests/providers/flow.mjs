// The flow every third-party provider goes through, in headless Chromium (tests/browser's
// launcher) against bff-local on DynamoDB Local:
//
// 1. login through the provider's own pages, consent included when it asks;
// 2. /auth/me with the user's name and e-mail (both providers send them only from
//    userinfo);
// 3. an API call through /api/* to a test upstream that checks the token by calling the
//    provider's userinfo endpoint with it (so an opaque token is checked too);
// 4. a refresh: the providers issue 20 s access tokens, the next call after half that
//    reaches the upstream with another token the provider accepts;
// 5. logout: POST /auth/logout, the provider's end-session page, and the redirect back to
//    the app (for a provider with logoutStaysAtProvider, its own page), with the session
//    gone;
// 6. when the provider has back-channel logout: a new login, then the user logs out at
//    the provider itself (not through the app), and the BFF session ends;
// 7. when the provider has none but the BFF checks the provider session
//    (BFF_PROVIDER_SESSION_CHECK_SECS in its bffEnv): a new login, then the user logs out
//    at the provider itself, and the BFF session ends within the check interval.
//
// A provider module gives: start({ bffUrl, clientId, clientSecret, password }) → { issuer,
// stop() }, signIn(page, password) on its login page, consent(page) when it asks,
// confirmLogout(page) on its end-session page, logoutAtProvider(page, idp, clientId)
// for step 6 and logoutAtPortal(page, idp) for step 7.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import * as http from 'node:http';
import * as path from 'node:path';

import { freePort, ROOT, startBffLocal, startDynamoDbLocal, stopChild } from '../browser/stack.mjs';
import { launchChromium } from '../browser/browser.mjs';

export const LOG_DIR = path.join(ROOT, 'target', 'provider-tests');
/** The access-token lifetime the provider configurations set (seconds). */
export const ACCESS_TOKEN_SECS = 20;

/**
 * The upstream API: answers 200 with the `sub` the provider's userinfo endpoint gives for
 * the bearer token and a fingerprint of the token (a hash prefix, never the token), or 401
 * when there is no token or the provider refuses it.
 */
async function startUpstream(userinfoEndpoint) {
  const server = http.createServer(async (req, res) => {
    const auth = req.headers.authorization ?? '';
    const token = /^Bearer (.+)$/i.exec(auth)?.[1];
    const answer = (status, body) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (!token) return answer(401, { error: 'no_token' });
    try {
      const info = await fetch(userinfoEndpoint, { headers: { authorization: `Bearer ${token}` } });
      if (info.status !== 200) return answer(401, { error: 'token_refused', provider_status: info.status });
      const claims = await info.json();
      return answer(200, {
        sub: claims.sub,
        token: createHash('sha256').update(token).digest('hex').slice(0, 16),
        path: req.url,
      });
    } catch (err) {
      return answer(502, { error: String(err) });
    }
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return server;
}

/** Calls `path` on the BFF from the page (same origin, the browser's own cookies). */
async function call(page, route, init = {}) {
  return page.evaluate(async ([r, i]) => {
    const res = await fetch(r, { ...i, headers: { 'X-CSRF': '1', ...(i.headers ?? {}) } });
    const text = await res.text();
    let body;
    try { body = JSON.parse(text); } catch { body = text; }
    return { status: res.status, body };
  }, [route, init]);
}

/** Polls `check` until it returns true, or fails after `ms`. */
async function eventually(check, ms, what) {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms / 1000} s`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Registers the flow's tests for `provider` (see the header). */
export function providerFlow(name, provider) {
  const LIMIT = { timeout: 90_000 };
  const password = randomBytes(12).toString('base64url');
  const clientId = 'bff-provider-tests';
  const clientSecret = randomBytes(24).toString('base64url');
  let bffUrl;
  let idp;
  let dynamo;
  let bff;
  let upstream;
  let browser;
  let context;
  let page;
  let me;
  let first;

  before(async () => {
    const bffPort = await freePort();
    bffUrl = `http://localhost:${bffPort}`;
    const started = await Promise.allSettled([
      provider.start({ bffUrl, clientId, clientSecret, password }).then((p) => { idp = p; }),
      startDynamoDbLocal({ log: `${name}-dynamodb.log`, logDir: LOG_DIR }).then((d) => { dynamo = d; }),
      launchChromium().then((b) => { browser = b; }),
    ]);
    const failed = started.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
    const discovery = await (await fetch(`${idp.issuer}/.well-known/openid-configuration`)).json();
    upstream = await startUpstream(discovery.userinfo_endpoint);
    const bffOptions = {
      port: bffPort,
      log: `${name}-bff-local.log`,
      logDir: LOG_DIR,
      env: {
        BFF_ISSUER: idp.issuer,
        BFF_CLIENT_ID: clientId,
        BFF_CLIENT_SECRET: clientSecret,
        BFF_PUBLIC_URL: bffUrl,
        BFF_UPSTREAM_URL: `http://127.0.0.1:${upstream.address().port}/v1`,
        BFF_STATIC_DIR: path.join(ROOT, 'infra/demo'),
        BFF_STORE: 'dynamodb',
        AWS_ENDPOINT_URL_DYNAMODB: dynamo.endpoint,
        AWS_REGION: 'us-east-1',
        AWS_ACCESS_KEY_ID: 'dummy',
        AWS_SECRET_ACCESS_KEY: 'dummy',
        ...(provider.bffEnv ?? {}),
      },
    };
    // On a busy machine DynamoDB Local's first CreateTable may outlast the BFF's 4 s
    // store timeout (bff-local then exits): a second start finds the table.
    for (let attempt = 1; !bff; attempt += 1) {
      bff = await startBffLocal(bffOptions).catch((err) => { if (attempt >= 3) throw err; });
    }
    context = await browser.newContext({ viewport: { width: 1000, height: 900 } });
    context.setDefaultTimeout(20_000);
    page = await context.newPage();
  }, { timeout: 120_000 });

  after(async () => {
    await context?.close().catch(() => {});
    upstream?.closeAllConnections();
    await Promise.allSettled([
      browser?.close(),
      bff && stopChild(bff),
      dynamo && stopChild(dynamo.child),
      idp?.stop(),
      upstream && new Promise((r) => upstream.close(r)),
    ]);
  });

  // The tests share one page, one after the other: a screenshot of it when one fails.
  const run = async (t, body) => {
    try {
      await body();
    } catch (err) {
      const file = path.join(LOG_DIR, `${name}-${t.name.toLowerCase().replace(/[^a-z0-9]+/g, '-').slice(0, 60)}.png`);
      await page?.screenshot({ path: file, fullPage: true, timeout: 5000 }).then(() => {
        t.diagnostic(`screenshot: ${path.relative(ROOT, file)} (at ${page.url()})`);
      }, () => {});
      throw err;
    }
  };
  const back = (url) => url.href.startsWith(`${bffUrl}/`) && !url.pathname.startsWith('/auth/');

  async function login() {
    await page.goto(`${bffUrl}/auth/login?returnTo=%2F`);
    await page.waitForLoadState('load');
    if (!back(new URL(page.url()))) await provider.signIn(page, password);
    if (!back(new URL(page.url()))) await provider.consent(page);
    await page.waitForURL(back, { waitUntil: 'load' });
  }

  describe(`${name}: login, userinfo, API, refresh, logout`, () => {
    test('login through the provider\'s pages (with consent) creates a session', LIMIT, (t) => run(t, async () => {
      await login();
      const res = await call(page, '/auth/me');
      assert.equal(res.status, 200, JSON.stringify(res.body));
      me = res.body;
      assert.ok(me.sub, 'a subject');
    }));

    test('/auth/me has the name and e-mail (from userinfo)', LIMIT, (t) => run(t, async () => {
      assert.equal(me?.name, provider.user.name, JSON.stringify(me));
      assert.equal(me?.email, provider.user.email, JSON.stringify(me));
    }));

    test('an API call carries a token the provider accepts, for the same user', LIMIT, (t) => run(t, async () => {
      const res = await call(page, '/api/orders?x=1');
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal(res.body.sub, me.sub);
      assert.equal(res.body.path, '/v1/orders?x=1');
      first = res.body.token;
    }));

    test('after half the access token\'s lifetime the token is refreshed, and the new one works', LIMIT, (t) => run(t, async () => {
      assert.ok(first, 'the first API call passed');
      await new Promise((r) => setTimeout(r, (ACCESS_TOKEN_SECS / 2 + 1) * 1000));
      const res = await call(page, '/api/orders');
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal(res.body.sub, me.sub);
      assert.notEqual(res.body.token, first, 'a new access token');
      const again = await call(page, '/auth/me');
      assert.equal(again.status, 200, 'the session survives the refresh');
    }));

    test('logout goes through the provider\'s end-session page and back to the app', LIMIT, (t) => run(t, async () => {
      const res = await call(page, '/auth/logout', { method: 'POST' });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      const logoutUrl = new URL(res.body.logout_url);
      assert.equal(logoutUrl.origin, new URL(idp.issuer).origin, 'the provider\'s end-session URL');
      // Glewlwyd returns the browser to post_logout_redirect_uri only with a state.
      assert.ok(logoutUrl.searchParams.get('state'), `a state on ${logoutUrl.origin}${logoutUrl.pathname}`);
      await page.goto(logoutUrl.href);
      await page.waitForLoadState('load');
      if (provider.logoutStaysAtProvider) {
        await page.waitForURL((u) => u.origin === new URL(idp.issuer).origin && !u.pathname.endsWith('/logout'),
          { waitUntil: 'load' });
        await page.goto(`${bffUrl}/`);
      } else {
        if (!back(new URL(page.url()))) await provider.confirmLogout(page);
        await page.waitForURL(back, { waitUntil: 'load' });
      }
      assert.equal((await call(page, '/auth/me')).status, 401);
    }));
  });

  if (provider.logoutAtProvider) {
    describe(`${name}: back-channel logout`, () => {
      test('a logout at the provider itself ends the BFF session', LIMIT, (t) => run(t, async () => {
        await login();
        assert.equal((await call(page, '/auth/me')).status, 200);
        await provider.logoutAtProvider(page, idp, clientId);
        await page.goto(`${bffUrl}/`);
        await eventually(async () => (await call(page, '/auth/me')).status === 401, 10_000,
          'the session ends after the provider\'s back-channel logout');
        assert.equal((await call(page, '/api/orders')).status, 401);
      }));
    });
  }

  const checkSecs = Number(provider.bffEnv?.BFF_PROVIDER_SESSION_CHECK_SECS ?? 0);
  if (provider.logoutAtPortal && checkSecs > 0) {
    describe(`${name}: provider session check`, () => {
      test(`a logout at the provider itself ends the BFF session within ${checkSecs} s`, LIMIT, (t) => run(t, async () => {
        // The session's access token is issued after this moment, so it is not due for
        // refresh by its own expiry before half its lifetime from here: a session ended
        // earlier was ended by the check.
        const started = Date.now();
        await login();
        assert.equal((await call(page, '/auth/me')).status, 200);
        await provider.logoutAtPortal(page, idp);
        await page.goto(`${bffUrl}/`);
        const tokenDue = started + (ACCESS_TOKEN_SECS / 2) * 1000 - 500;
        await eventually(async () => (await call(page, '/auth/me')).status === 401, tokenDue - Date.now(),
          'the session ends at the first /auth/me after the check interval, before the token is due');
        assert.equal((await call(page, '/api/orders')).status, 401);
      }));
    });
  }
}
