// Glewlwyd 2.7 (Debian's package) as the OpenID provider of a test, on a free loopback
// port, configured from the files in tests/providers/glewlwyd/:
//
// - glewlwyd.conf: the server (SQLite database, the package's web application, plain
//   http on 127.0.0.1);
// - oidc-plugin.json: the OpenID Connect plugin instance (RS256 with a key made for this
//   run, PKCE required, 20 s access tokens, refresh tokens, back-channel logout; and
//   front-channel logout allowed, without which the package's end-session page fails
//   and ends nothing);
// - scopes.json, user.json, client.json: the scopes, the user alice, and the BFF's
//   confidential client with its redirect, post-logout and back-channel logout URIs.
//
// The database starts from the package's own schema (with its admin/password user);
// the rest goes in through the administration API, as an operator's script would.

import { execFileSync, spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { copyFileSync, cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

import { freePort, logTo, ROOT, stopChild, untilAnswering } from '../browser/stack.mjs';

export const LOG_DIR = path.join(ROOT, 'target', 'provider-tests');

const HERE = path.join(ROOT, 'tests/providers/glewlwyd');
const SCHEMA = '/usr/share/dbconfig-common/data/glewlwyd/install/sqlite3';
const WEBAPP = '/usr/share/glewlwyd/webapp';
// The package's web application reads config.json next to it; Debian's is a directory
// holding the file (a symbolic link to /etc/glewlwyd/config-2.7.json/).
const WEBAPP_CONFIG = '/etc/glewlwyd/config-2.7.json/config.json';

/** A repository file with its @NAME@ placeholders replaced (values JSON-escaped for .json). */
function template(file, values) {
  const json = file.endsWith('.json');
  return readFileSync(path.join(HERE, file), 'utf8').replace(/@([A-Z_]+)@/g, (_, name) => {
    if (!(name in values)) throw new Error(`${file}: no value for @${name}@`);
    return json ? JSON.stringify(values[name]).slice(1, -1) : values[name];
  });
}

/**
 * Starts Glewlwyd for the BFF at `bffUrl` with the client `clientId`/`clientSecret` and
 * the user alice with `password`. Resolves to `{ issuer, url, stop() }`.
 */
export async function startGlewlwyd({ bffUrl, clientId, clientSecret, password }) {
  const dir = mkdtempSync(path.join(tmpdir(), 'glewlwyd-'));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const issuer = `${url}/api/oidc`;

  // A copy (2 MB): Glewlwyd serves no file whose real path leaves its static directory.
  cpSync(WEBAPP, path.join(dir, 'webapp'), {
    recursive: true, dereference: true, filter: (src) => src !== path.join(WEBAPP, 'config.json'),
  });
  copyFileSync(WEBAPP_CONFIG, path.join(dir, 'webapp', 'config.json'));
  const db = path.join(dir, 'glewlwyd.sqlite');
  execFileSync('sqlite3', [db], { input: readFileSync(SCHEMA) });
  writeFileSync(path.join(dir, 'glewlwyd.conf'), template('glewlwyd.conf', {
    PORT: String(port), URL: url, WEBAPP: path.join(dir, 'webapp'), DB: db,
  }));

  // Glewlwyd has no stop-on-stdin-close: a shell watchdog stops it when the test ends.
  const child = spawn('/bin/sh', [
    '-c', 'exec 3<&0; "$0" --config-file="$1" </dev/null & child=$!; (cat <&3 >/dev/null; kill -TERM $child 2>/dev/null) & exec 3<&-; wait $child',
    'glewlwyd', path.join(dir, 'glewlwyd.conf'),
  ], { stdio: ['pipe', 'pipe', 'pipe'] });
  logTo(child, 'glewlwyd.log', LOG_DIR);
  const stop = async () => {
    await stopChild(child);
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    await untilAnswering(`${url}/api/`, child, 'glewlwyd');
    const admin = await adminSession(url);
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    await admin('POST', '/api/mod/plugin/', JSON.parse(template('oidc-plugin.json', {
      ISSUER: issuer,
      PRIVATE_KEY: privateKey.export({ type: 'pkcs8', format: 'pem' }),
      PUBLIC_KEY: publicKey.export({ type: 'spki', format: 'pem' }),
    })));
    for (const scope of JSON.parse(template('scopes.json', {}))) await admin('POST', '/api/scope/', scope);
    // The package's client backend knows no post_logout_redirect_uris, which the plugin
    // reads as a list: without it in the backend's data format the property is refused
    // as a list, or kept as a string the plugin ignores, and logout never returns.
    const backend = await admin('GET', '/api/mod/client/database');
    backend.parameters['data-format'].post_logout_redirect_uris = { multiple: true, read: true, write: true };
    await admin('PUT', '/api/mod/client/database', backend);
    await admin('PUT', '/api/mod/client/database/reset');
    await admin('POST', '/api/user/', JSON.parse(template('user.json', { PASSWORD: password })));
    await admin('POST', '/api/client/', JSON.parse(template('client.json', {
      CLIENT_ID: clientId, CLIENT_SECRET: clientSecret, BFF: bffUrl,
    })));
    await untilAnswering(`${issuer}/.well-known/openid-configuration`, child, 'glewlwyd');
    return { issuer, url, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Signs in to the administration API as the package's admin user; returns a request function. */
async function adminSession(url) {
  const login = await fetch(`${url}/api/auth/`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: 'admin', password: 'password' }),
  });
  if (login.status !== 200) throw new Error(`glewlwyd admin login: ${login.status}`);
  const cookie = login.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ');
  return async (method, route, body) => {
    const res = await fetch(`${url}${route}`, {
      method,
      headers: { 'content-type': 'application/json', cookie },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    if (res.status !== 200) throw new Error(`glewlwyd ${method} ${route}: ${res.status} ${text}`);
    return text ? JSON.parse(text) : null;
  };
}
