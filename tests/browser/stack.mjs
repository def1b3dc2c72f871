// The stack a browser test talks to, started on free loopback ports:
//
// - infra/provider.mjs: the OpenID provider (real login and consent pages) and the
//   demo APIs (default, orders, public; see apisEnv), with a static client whose
//   redirect URI is the BFF's callback;
// - bff-local: /auth/*, /api/* and the demo front end (infra/demo) on one origin,
//   http://localhost:<port>, so the cookies are the loopback ones (bff-session, bff-tx).
//
// - a second front end on another origin of the same site (http://localhost:<other
//   port>, in BFF_ALLOWED_ORIGINS), serving tests/browser/other-origin/ and bff.js,
//   for the client library's configure({ baseUrl }).
//
// Both processes end with the test process, even when it is killed: the provider
// runs with --exit-on-stdin-close, bff-local under a small watchdog that stops it when
// its stdin closes. Their environment holds none of the caller's BFF_*, PROVIDER_* or
// AWS_* variables, so a developer's settings cannot change what the tests see.

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, createWriteStream, readFileSync } from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const LOG_DIR = path.join(ROOT, 'target', 'browser-tests');

export function baseEnv() {
  const env = Object.fromEntries(Object.entries(process.env)
    .filter(([name]) => !/^(BFF_|PROVIDER_|AWS_)/.test(name)));
  return { ...env, NO_COLOR: '1' };
}

/**
 * The front end on another origin: tests/browser/other-origin/ and infra/demo/bff.js,
 * with /config.js telling the page where the BFF is.
 */
async function startOtherOrigin(bffUrl) {
  const files = {
    '/': ['text/html; charset=utf-8', path.join(ROOT, 'tests/browser/other-origin/index.html')],
    '/page.js': ['text/javascript', path.join(ROOT, 'tests/browser/other-origin/page.js')],
    '/bff.js': ['text/javascript', path.join(ROOT, 'infra/demo/bff.js')],
  };
  const server = http.createServer((req, res) => {
    const { pathname } = new URL(req.url, 'http://x');
    if (pathname === '/config.js') {
      res.writeHead(200, { 'content-type': 'text/javascript', 'cache-control': 'no-store' });
      res.end(`export const bffUrl = ${JSON.stringify(bffUrl)};\n`);
      return;
    }
    const file = files[pathname];
    if (!file) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': file[0], 'cache-control': 'no-store' });
    res.end(readFileSync(file[1]));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return server;
}

/** A port that was free a moment ago: bind port 0, read it, let it go. */
export async function freePort() {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  server.close();
  await once(server, 'close');
  return port;
}

/** Resolves with the first line of `stream` starting with `prefix`, or rejects when `child` exits first. */
export function lineStartingWith(child, stream, prefix, name, timeoutMs = 30_000) {
  return new Promise((resolve, reject) => {
    let buffered = '';
    const timer = setTimeout(() => done(new Error(`${name} did not print ${prefix.trim()} within ${timeoutMs / 1000} s`)), timeoutMs);
    const onData = (chunk) => {
      buffered += chunk;
      const line = buffered.split('\n').find((l) => l.startsWith(prefix));
      if (line !== undefined) done(null, line.slice(prefix.length));
    };
    const onExit = (code, signal) => done(new Error(`${name} exited (${signal ?? code}) before it was ready; see ${LOG_DIR}`));
    function done(err, value) {
      clearTimeout(timer);
      stream.off('data', onData);
      child.off('exit', onExit);
      if (err) reject(err);
      else resolve(value);
    }
    stream.setEncoding('utf8');
    stream.on('data', onData);
    child.once('exit', onExit);
  });
}

export async function untilAnswering(url, child, name, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`${name} exited (${child.signalCode ?? child.exitCode}) during start-up; see ${LOG_DIR}`);
    }
    try {
      await fetch(url, { signal: AbortSignal.timeout(1000) });
      return;
    } catch {
      if (Date.now() > deadline) throw new Error(`${name} did not answer on ${url} within ${timeoutMs / 1000} s`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

export function logTo(child, file, dir = LOG_DIR) {
  mkdirSync(dir, { recursive: true });
  const out = createWriteStream(path.join(dir, file));
  child.stderr.pipe(out);
  child.stdout?.pipe(out, { end: false });
  return out;
}

/** Closes the child's stdin (its signal to stop) and waits for it to exit. */
export async function stopChild(child) {
  child.stdin.end();
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

/**
 * The APIs behind bff-local, as infra/dev.sh puts them: the demo API's orders API with a
 * token for the resource https://orders.example, its public API with no token, and the
 * rest of /api with the login's own token (which asks for api:read, for the orders token).
 * `upstreamUrl` puts that one API behind all of /api/* (BFF_UPSTREAM_URL) instead.
 */
function apisEnv(api, upstreamUrl) {
  if (upstreamUrl) return { BFF_UPSTREAM_URL: upstreamUrl };
  return {
    BFF_APIS: JSON.stringify([
      { path: '/api/orders', upstream: `${api}/orders`, resource: 'https://orders.example' },
      { path: '/api/public', upstream: `${api}/public`, token: 'none' },
      { path: '/api', upstream: api },
    ]),
    BFF_SCOPES: 'openid profile email offline_access api:read',
  };
}

/**
 * Starts the provider, the demo APIs, bff-local and the front end on another origin.
 * `upstreamUrl` puts another API behind /api/* in place of the demo APIs.
 * Resolves to `{ baseUrl, otherOrigin, issuer, api, stop() }`.
 */
export async function startStack({ upstreamUrl } = {}) {
  mkdirSync(LOG_DIR, { recursive: true });
  const bffPort = await freePort();
  const baseUrl = `http://localhost:${bffPort}`;
  const other = await startOtherOrigin(baseUrl);
  const otherOrigin = `http://localhost:${other.address().port}`;
  const clientId = 'bff-browser-tests';
  const clientSecret = randomBytes(32).toString('hex');

  const provider = spawn(process.execPath, [
    path.join(ROOT, 'infra/provider.mjs'), '--port', '0', '--api-port', '0', '--exit-on-stdin-close',
  ], {
    cwd: ROOT,
    stdio: ['pipe', 'pipe', 'pipe'],
    env: {
      ...baseEnv(),
      PROVIDER_CLIENT_ID: clientId,
      PROVIDER_CLIENT_SECRET: clientSecret,
      PROVIDER_REDIRECT_URIS: `${baseUrl}/auth/callback`,
      PROVIDER_POST_LOGOUT_REDIRECT_URIS: `${baseUrl}/`,
    },
  });
  const providerLog = createWriteStream(path.join(LOG_DIR, 'provider.log'));
  provider.stderr.pipe(providerLog);
  const children = [provider];
  const stop = async () => {
    other.closeAllConnections();
    await Promise.all([...children.map(stopChild), new Promise((resolve) => other.close(resolve))]);
  };

  try {
    const ready = JSON.parse(await lineStartingWith(provider, provider.stdout, 'READY ', 'the OpenID provider'));
    provider.stdout.resume();

    const bff = await startBffLocal({
      port: bffPort,
      env: {
        BFF_ISSUER: ready.issuer,
        BFF_CLIENT_ID: clientId,
        BFF_CLIENT_SECRET: clientSecret,
        BFF_PUBLIC_URL: baseUrl,
        ...apisEnv(ready.api, upstreamUrl),
        BFF_STATIC_DIR: path.join(ROOT, 'infra/demo'),
        BFF_ALLOWED_ORIGINS: otherOrigin,
        BFF_STORE: 'memory',
      },
    });
    children.push(bff);
    return { baseUrl, otherOrigin, issuer: ready.issuer, api: ready.api, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * Starts bff-local (BFF_LOCAL_BIN, default target/debug/bff-local) on 127.0.0.1:`port`
 * with `env` added to a clean environment, under a watchdog that stops it when the test
 * process ends however it ends; its output goes to `log` in LOG_DIR. Resolves to the
 * child (stop it with stopChild) once /auth/me answers.
 */
export async function startBffLocal({ port, env, log = 'bff-local.log', logDir = LOG_DIR }) {
  const bin = path.resolve(ROOT, process.env.BFF_LOCAL_BIN || 'target/debug/bff-local');
  // The watchdog: bff-local runs in the background; when this shell's stdin closes
  // (the test process ended, however it ended), it is stopped.
  const bff = spawn('/bin/sh', [
    // (A background job's stdin is /dev/null unless redirected: hence fd 3.)
    '-c', 'exec 3<&0; "$0" </dev/null & child=$!; (cat <&3 >/dev/null; kill -TERM $child 2>/dev/null) & exec 3<&-; wait $child',
    bin,
  ], {
    cwd: ROOT,
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...baseEnv(), BFF_LISTEN: `127.0.0.1:${port}`, RUST_LOG: process.env.RUST_LOG || 'info', ...env },
  });
  logTo(bff, log, logDir);
  try {
    await untilAnswering(`http://127.0.0.1:${port}/auth/me`, bff, `bff-local (${bin})`);
  } catch (err) {
    await stopChild(bff);
    throw err;
  }
  return bff;
}

/**
 * Starts DynamoDB Local (infra/dynamodb-local.mjs, in memory, stopped when the test
 * process ends). Resolves to `{ endpoint, child }`.
 */
export async function startDynamoDbLocal({ log = 'dynamodb-local.log', logDir = LOG_DIR } = {}) {
  mkdirSync(logDir, { recursive: true });
  const child = spawn(process.execPath, [path.join(ROOT, 'infra/dynamodb-local.mjs'), '--exit-on-stdin-close'], {
    cwd: ROOT,
    stdio: ['pipe', 'pipe', 'pipe'],
    env: baseEnv(),
  });
  child.stderr.pipe(createWriteStream(path.join(logDir, log)));
  try {
    const ready = JSON.parse(await lineStartingWith(child, child.stdout, 'READY ', 'DynamoDB Local', 60_000));
    child.stdout.resume();
    return { endpoint: ready.endpoint, child };
  } catch (err) {
    await stopChild(child);
    throw err;
  }
}
