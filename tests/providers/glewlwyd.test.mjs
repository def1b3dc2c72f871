// Glewlwyd 2.7 (Debian's package, configured from tests/providers/glewlwyd/) as the
// provider of the BFF: the flow of flow.mjs, back-channel logout included.
//
//   bash tests/providers/run.sh        (installs what is missing, builds, runs these)

import { startGlewlwyd } from './glewlwyd.mjs';
import { providerFlow } from './flow.mjs';

providerFlow('glewlwyd', {
  start: startGlewlwyd,
  user: { name: 'Alice Liddell', email: 'alice@example.test' },

  // With a session at Glewlwyd already, the page offers "Continue" instead of the form.
  async signIn(page, password) {
    const user = page.getByPlaceholder('Your username');
    await user.or(page.getByRole('button', { name: 'Continue' })).first().waitFor();
    if (!await user.isVisible()) return;
    await user.fill('alice');
    await page.getByPlaceholder('Your password').fill(password);
    await page.getByRole('button', { name: 'OK' }).click();
  },

  // The grant page (first login) lists the scopes the BFF asks for, unchecked but
  // openid: the user ticks them, grants, then continues.
  async consent(page) {
    const grant = page.getByRole('button', { name: 'Grant access' });
    const next = page.getByRole('button', { name: 'Continue' });
    await grant.or(next).first().waitFor();
    if (await grant.isVisible()) {
      for (const scope of ['Profile', 'E-mail address', 'Offline access']) await page.getByLabel(scope).check();
      await grant.click();
    }
    await next.click();
  },

  async confirmLogout(page) {
    await page.getByRole('button', { name: 'Logout' }).click();
  },

  // The user ends the session on Glewlwyd's own page: its back-channel logout reaches
  // the BFF.
  async logoutAtProvider(page, idp) {
    console.log('COOKIES', JSON.stringify(await page.context().cookies(idp.url)));
    const sid = (await page.context().cookies(idp.url)).find((c) => c.name === 'GLEWLWYD2_OIDC_SID')?.value;
    await page.goto(`${idp.url}/login.html?sid=${sid}&plugin=oidc&prompt=end_session`);
    await page.getByRole('button', { name: 'Logout' }).click();
    await page.waitForTimeout(2000);
    console.log('AFTER', page.url(), await page.locator('body').innerText());
  },
});
