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

  // The user ends the session on Glewlwyd's own end-session page (where another
  // application's logout would send the browser; the session id is Glewlwyd's session
  // cookie): Glewlwyd tells every client of that session through its back-channel logout
  // URI, the BFF among them.
  async logoutAtProvider(page, idp, clientId) {
    const sid = (await page.context().cookies(idp.url)).find((c) => c.name === 'GLEWLWYD2_OIDC_SID')?.value;
    if (!sid) throw new Error('no GLEWLWYD2_OIDC_SID cookie after the login');
    await page.goto(`${idp.url}/login.html?sid=${encodeURIComponent(sid)}&plugin=oidc&client_id=${clientId}&prompt=end_session`);
    await page.getByText('End session').waitFor();
    const ended = page.waitForResponse((r) => r.request().method() === 'DELETE' && r.url().includes('/api/oidc/session/'));
    await page.getByRole('button', { name: 'Logout' }).click();
    if ((await ended).status() !== 200) throw new Error(`Glewlwyd's session deletion answered ${(await ended).status()}`);
  },
});
