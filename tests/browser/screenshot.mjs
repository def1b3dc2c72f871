// Writes docs/demo.png, the README's picture of the demo page: logged in as alice,
// after one call to the API and one to each of the APIs behind the BFF. Needs what the browser tests need (see run.sh):
//
//   node tests/browser/screenshot.mjs [output.png]

import * as path from 'node:path';
import { mkdirSync } from 'node:fs';

import { ROOT, startStack } from './stack.mjs';
import { clickAndLoad, completeLogin, launchChromium } from './browser.mjs';

const out = path.resolve(process.argv[2] ?? path.join(ROOT, 'docs', 'demo.png'));

const stack = await startStack();
let browser;
try {
  browser = await launchChromium();
  const context = await browser.newContext({
    viewport: { width: 960, height: 720 },
    deviceScaleFactor: 1,
    colorScheme: 'light',
  });
  const page = await context.newPage();
  await page.goto(stack.baseUrl);
  await clickAndLoad(page, page.getByRole('button', { name: 'Log in', exact: true }));
  await completeLogin(page, stack.baseUrl, 'alice');
  await page.locator('#logged-in').waitFor();
  await page.getByRole('button', { name: 'Call the API' }).click();
  await page.locator('#api-result').waitFor();
  await page.getByRole('button', { name: 'Call each API' }).click();
  await page.waitForFunction(() => [...document.querySelectorAll('#apis-result td.status')]
    .every((td) => /^HTTP \d/.test(td.textContent)));
  // A moment for the countdown to tick, so the picture shows it running.
  await page.waitForTimeout(1500);
  mkdirSync(path.dirname(out), { recursive: true });
  await page.screenshot({ path: out, fullPage: true });
  process.stdout.write(`wrote ${path.relative(process.cwd(), out)}\n`);
} finally {
  await browser?.close();
  await stack.stop();
}
