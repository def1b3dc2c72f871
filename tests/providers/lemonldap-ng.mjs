// LemonLDAP::NG 2.16 (Debian's packages: the portal under llng-fastcgi-server, behind
// nginx) as the OpenID provider of a test, on a free loopback port, configured from the
// files in tests/providers/lemonldap-ng/:
//
// - lmConf.json: the configuration (File backend): the Demo authentication (users dwho,
//   rtyler, msmith; the password is the user name), the OpenID Connect issuer with an
//   RS256 key made for this run, and the BFF's relying party: RS256 ID tokens (a new
//   relying party's default is HS512), PKCE required, offline access and refresh tokens,
//   20 s access tokens, consent asked;
// - lemonldap-ng.ini: where that configuration lives;
// - nginx.conf: Debian's portal-nginx.conf on 127.0.0.1 and a socket of this run.

import { spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

import { freePort, logTo, ROOT, stopChild, untilAnswering } from '../browser/stack.mjs';

export const LOG_DIR = path.join(ROOT, 'target', 'provider-tests');
const HERE = path.join(ROOT, 'tests/providers/lemonldap-ng');
// The portal's processes run as www-data (llng-fastcgi-server refuses root).
const WWW_DATA = 33;

function template(file, values) {
  const json = file.endsWith('.json');
  return readFileSync(path.join(HERE, file), 'utf8').replace(/@([A-Z_]+)@/g, (_, name) => {
    if (!(name in values)) throw new Error(`${file}: no value for @${name}@`);
    return json ? JSON.stringify(values[name]).slice(1, -1) : values[name];
  });
}

/** Runs `argv` under a shell watchdog that stops it when the test process ends. */
function watched(argv, env) {
  return spawn('/bin/sh', [
    '-c', 'exec 3<&0; "$@" </dev/null & child=$!; (cat <&3 >/dev/null; kill -TERM $child 2>/dev/null) & exec 3<&-; wait $child',
    'sh', ...argv,
  ], { stdio: ['pipe', 'pipe', 'pipe'], env });
}

/**
 * Starts LemonLDAP::NG for the BFF at `bffUrl` with the relying party
 * `clientId`/`clientSecret`. Resolves to `{ issuer, url, stop() }`.
 */
export async function startLemonLdap({ bffUrl, clientId, clientSecret }) {
  const dir = mkdtempSync(path.join(tmpdir(), 'lemonldap-ng-'));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  for (const sub of ['conf', 'sessions/lock', 'psessions/lock', 'oidc/lock', 'cache', 'nginx-tmp']) {
    mkdirSync(path.join(dir, sub), { recursive: true });
  }
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  writeFileSync(path.join(dir, 'conf', 'lmConf-1.json'), template('lmConf.json', {
    PORTAL: `${url}/`,
    DIR: dir,
    PRIVATE_KEY: privateKey.export({ type: 'pkcs1', format: 'pem' }),
    PUBLIC_KEY: publicKey.export({ type: 'spki', format: 'pem' }),
    CLIENT_ID: clientId,
    CLIENT_SECRET: clientSecret,
    BFF: bffUrl,
  }));
  writeFileSync(path.join(dir, 'lemonldap-ng.ini'), template('lemonldap-ng.ini', { DIR: dir }));
  writeFileSync(path.join(dir, 'nginx.conf'), template('nginx.conf', { DIR: dir, PORT: String(port) }));
  for (const sub of ['', 'conf', 'sessions', 'sessions/lock', 'psessions', 'psessions/lock', 'oidc', 'oidc/lock', 'cache']) {
    chownSync(path.join(dir, sub), WWW_DATA, WWW_DATA);
  }

  const env = {
    PATH: process.env.PATH,
    LLNG_DEFAULTCONFFILE: path.join(dir, 'lemonldap-ng.ini'),
    LLNG_DEFAULTLOGGER: 'Lemonldap::NG::Common::Logger::Std',
  };
  const fastcgi = watched([
    '/usr/sbin/llng-fastcgi-server', '--foreground', '--user', 'www-data', '--group', 'www-data',
    '--socket', path.join(dir, 'llng-fastcgi.sock'), '--pid', path.join(dir, 'llng-fastcgi.pid'), '--proc', '2',
  ], env);
  logTo(fastcgi, 'lemonldap-ng-fastcgi.log', LOG_DIR);
  const nginx = watched(['/usr/sbin/nginx', '-e', 'stderr', '-p', dir, '-c', path.join(dir, 'nginx.conf')], env);
  logTo(nginx, 'lemonldap-ng-nginx.log', LOG_DIR);
  const stop = async () => {
    await Promise.all([stopChild(nginx), stopChild(fastcgi)]);
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    const discoveryUrl = `${url}/.well-known/openid-configuration`;
    await untilAnswering(discoveryUrl, fastcgi, 'llng-fastcgi-server');
    let discovery;
    for (const deadline = Date.now() + 30_000; ;) {
      const res = await fetch(discoveryUrl);
      if (res.status === 200) { discovery = await res.json(); break; }
      if (Date.now() > deadline) throw new Error(`LemonLDAP::NG discovery: ${res.status}; see ${LOG_DIR}`);
      await new Promise((r) => setTimeout(r, 250));
    }
    return { issuer: discovery.issuer, url, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
