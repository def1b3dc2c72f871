// Debian's Chromium, headless, driven by playwright-core; and the steps every test
// shares: logging in through the provider's own pages, screenshots on failure.

import { mkdirSync } from 'node:fs';
import * as path from 'node:path';
import { createRequire } from 'node:module';

import { ROOT } from './stack.mjs';

// playwright-core is installed with the local stack's packages, in infra/node_modules.
const require = createRequire(path.join(ROOT, 'infra', 'package.json'));
const { chromium } = require('playwright-core');

export const SCREENSHOT_DIR = path.join(ROOT, 'target', 'browser-screenshots');

export function launchChromium() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_BIN || '/usr/bin/chromium',
    headless: true,
    // Without the background-networking flags Chromium keeps trying to reach the internet.
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
}

/**
 * Runs `body(context)` in a fresh browser context (its own cookie jar). When it fails,
 * saves a screenshot of every page still open to target/browser-screenshots/ and reports
 * them, with the page errors and CSP violations seen on the BFF's origin, as the test's
 * diagnostics. Tests that expect a clean page assert `problems` is empty.
 */
export async function inContext(browser, t, baseUrl, body) {
  const context = await browser.newContext({ viewport: { width: 1000, height: 900 } });
  context.setDefaultTimeout(15_000);
  const problems = [];
  context.on('page', (page) => watch(page, baseUrl, problems));
  try {
    await body(context, problems);
  } catch (err) {
    const saved = await screenshots(context, t.name);
    if (saved.length) t.diagnostic(`screenshots: ${saved.join(', ')}`);
    if (problems.length) t.diagnostic(`page problems: ${problems.join('; ')}`);
    throw err;
  } finally {
    await context.close();
  }
}

function watch(page, baseUrl, problems) {
  const mine = () => page.url().startsWith(baseUrl);
  page.on('pageerror', (err) => {
    if (mine()) problems.push(`${page.url()}: uncaught ${err.message}`);
  });
  page.on('console', (msg) => {
    if (mine() && msg.type() === 'error' && /Content Security Policy/i.test(msg.text())) {
      problems.push(`${page.url()}: ${msg.text()}`);
    }
  });
}

async function screenshots(context, testName) {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  const slug = testName.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 80);
  const saved = [];
  for (const [i, page] of context.pages().entries()) {
    const file = path.join(SCREENSHOT_DIR, `${slug}${context.pages().length > 1 ? `-tab${i + 1}` : ''}.png`);
    try {
      await page.screenshot({ path: file, fullPage: true, timeout: 5000 });
      saved.push(path.relative(ROOT, file));
    } catch {
      // A closed or crashed page has nothing to show.
    }
  }
  return saved;
}

/** Clicks `locator` and waits for the document it leads to (after any redirects). */
export async function clickAndLoad(page, locator) {
  await Promise.all([page.waitForEvent('load'), locator.click()]);
}

/** Signs in as `user` on the provider's login page (any password works). */
export async function signIn(page, user = 'alice') {
  await page.locator('input[name="login"]').fill(user);
  await page.locator('input[name="password"]').fill('correct horse battery staple');
  await clickAndLoad(page, page.getByRole('button', { name: 'Sign-in' }));
}

/**
 * Finishes a login begun on the provider's pages: signs in as `user` if the login form
 * shows, gives consent if asked, and waits until the browser is back on `baseUrl`.
 */
export async function completeLogin(page, baseUrl, user = 'alice') {
  const back = (url) => url.href.startsWith(`${baseUrl}/`) && !url.pathname.startsWith('/auth/');
  await page.waitForLoadState('load');
  if (await page.locator('input[name="login"]').isVisible()) await signIn(page, user);
  const consent = page.getByRole('button', { name: 'Continue' });
  if (!back(new URL(page.url())) && await consent.isVisible()) await clickAndLoad(page, consent);
  await page.waitForURL(back, { waitUntil: 'load' });
}

/** The app's home page, where the provider's logout sends the browser back: besides the
 * `state` it echoes (RP-Initiated Logout 1.0), nothing else is in its query. */
export function isBackHome(url, baseUrl) {
  const back = new URL(url);
  return `${back.origin}${back.pathname}` === `${baseUrl}/`
    && [...back.searchParams.keys()].every((k) => k === 'state');
}
