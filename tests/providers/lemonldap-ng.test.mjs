// LemonLDAP::NG 2.16 (Debian's packages behind nginx, configured from
// tests/providers/lemonldap-ng/) as the provider of the BFF: the flow of flow.mjs.
// LemonLDAP::NG 2.16 has no back-channel logout: the BFF checks the provider session
// every 2 s instead (BFF_PROVIDER_SESSION_CHECK_SECS), and a logout at the portal ends the
// BFF session, since the refresh token of a login without prompt=consent is bound to the
// portal session.
//
//   bash tests/providers/run.sh        (installs what is missing, builds, runs these)

import { startLemonLdap } from './lemonldap-ng.mjs';
import { providerFlow } from './flow.mjs';

providerFlow('lemonldap-ng', {
  start: startLemonLdap,
  user: { name: 'Doctor Who', email: 'dwho@badwolf.org' },

  // The Demo authentication: the password is the user name.
  async signIn(page) {
    const user = page.locator('input[name="user"]');
    await user.waitFor();
    await user.fill('dwho');
    await page.locator('input[name="password"]').fill('dwho');
    await Promise.all([page.waitForEvent('load'), page.locator('button[type="submit"]').first().click()]);
  },

  // LemonLDAP::NG asks once per relying party and scope set ("Accept" / "Refuse").
  async consent(page) {
    const accept = page.getByRole('button', { name: 'Accept' });
    await accept.waitFor();
    await Promise.all([page.waitForEvent('load'), accept.click()]);
  },

  // 2.16 ends its session on the RP-initiated logout (without the confirmation page:
  // oidcRPMetaDataOptionsLogoutBypassConfirm) but then sends the browser to its own
  // /oauth2 page, not to post_logout_redirect_uri: its issuer code has already set the
  // portal's own return URL, which the logout prefers.
  logoutStaysAtProvider: true,

  bffEnv: { BFF_PROVIDER_SESSION_CHECK_SECS: '2' },

  // The portal's own logout, not the app's.
  async logoutAtPortal(page, idp) {
    await page.goto(`${idp.url}/?logout=1`);
    await page.waitForLoadState('load');
  },
});
