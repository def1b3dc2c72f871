#!/usr/bin/env node
// Local OpenID provider for development and tests, built on `oidc-provider`.
//
//   node infra/provider.mjs [--port N] [--api-port N] [--exit-on-stdin-close]
//
// Listens on 127.0.0.1 only. `--port 0` (the default) picks a free port; the
// issuer is `http://127.0.0.1:<port>`. When ready it prints exactly one line on
// stdout:
//
//   READY {"issuer":"http://127.0.0.1:PORT","api":"http://127.0.0.1:APIPORT"}
//
// ("api" only with `--api-port`; with PROVIDER_ISSUER also "listen", the plain
// address it serves). Everything else goes to stderr.
//
// Environment:
//   PROVIDER_PORT, PROVIDER_API_PORT   defaults for --port / --api-port
//   PROVIDER_CLIENT_ID                 registers a static confidential client
//   PROVIDER_CLIENT_SECRET             its secret (required with the id)
//   PROVIDER_REDIRECT_URIS             comma-separated redirect URIs
//   PROVIDER_POST_LOGOUT_REDIRECT_URIS comma-separated post-logout redirect URIs
//   PROVIDER_BACKCHANNEL_LOGOUT_URI    optional back-channel logout URI
//   PROVIDER_ACCESS_TOKEN_TTL          access-token lifetime in seconds (300)
//   PROVIDER_CONFORM_ID_TOKEN_CLAIMS=1 profile and email claims only from userinfo, not in
//                                      the ID token (as OIDC Core §5.4 has it, and as many
//                                      providers do)
//   PROVIDER_PAR                       pushed authorization requests (RFC 9126): `off`
//                                      (the default), `on` (advertised and accepted) or
//                                      `required` (authorization requests only when pushed)
//   PROVIDER_CLIENT_AUTH_METHODS       comma-separated client authentication methods the
//                                      token endpoint offers (default: oidc-provider's,
//                                      private_key_jwt among them)
//   PROVIDER_DPOP                      DPoP (RFC 9449) at the token endpoint: `on` (the
//                                      default: proofs accepted and tokens bound to them),
//                                      `nonce` (proofs must carry a server nonce: the first
//                                      one is refused with `use_dpop_nonce`) or `off`
//   PROVIDER_EC_KEY=1                  also sign with a P-256 key, so ES256 ID tokens are
//                                      offered (clients ask with id_token_signed_response_alg)
//   PROVIDER_VERBOSE=1                 keep oidc-provider's notices and start-up warnings
//   PROVIDER_ISSUER                    an https:// issuer for a TLS terminator in front of
//                                      the plain port (which forwards bytes, no headers):
//                                      every request is then taken as arriving over https
//                                      at that address
//
// Any login name with any password signs in; the account's claims are derived
// from the login name (`alice` -> "Alice Example", alice@example.com).
//
// Clients registered with `userinfo_signed_response_alg` get signed userinfo answers
// (application/jwt); `id_token_signed_response_alg` may also be HS256 or HS512 (a
// provider's HMAC default, which relying parties should refuse).
//
// Authentication context: when a login asks for `acr_values`, the sign-in is taken to
// meet the first one the provider knows (urn:bff:loa:1, urn:bff:loa:2), except for login
// names starting with `weak`, whose sign-in is only urn:bff:loa:1 (a provider may answer
// with a lower level than asked: OIDC Core treats `acr_values` as a wish).
//
// With `--api-port` a demo resource API runs next to the provider and answers a
// small JSON description of each call, with the audience and scope of the token it
// received (never the token):
//
//   /orders, /orders/...   the orders API: only a JWT access token of this provider
//                          whose `aud` is https://orders.example (RFC 8707), else 401
//   /public, /public/...   a public API: no token needed; reports whether an
//                          Authorization header arrived at all
//   any other path         any unexpired access token of this provider, else 401

import { once } from 'node:events';
import * as crypto from 'node:crypto';
import * as http from 'node:http';

// oidc-provider prints notices with console.info/console.log; keep stdout for
// the READY line only.
const verbose = process.env.PROVIDER_VERBOSE === '1';
const toStderr = (...args) => {
  // "you SHOULD change this default" notices are noise for a development provider.
  if (!verbose && /^oidc-provider NOTICE/.test(String(args[0]))) return;
  console.error(...args);
};
console.log = toStderr;
console.info = toStderr;
if (!verbose) {
  const warn = console.warn.bind(console);
  const expected = [/Unsupported runtime/, /devInteractions is enabled/, /in-memory adapter is used/,
    // The test hooks read the token endpoint's body before oidc-provider does.
    /already parsed request body detected/];
  console.warn = (...args) => {
    if (expected.some((re) => re.test(String(args[0])))) return;
    warn(...args);
  };
}

const { default: Provider, errors } = await import('oidc-provider');
// The built-in in-memory adapter keeps only the 1000 most recent entries (sessions, grants,
// tokens): with a few hundred users refreshing it forgets refresh tokens still in use and
// refuses them with invalid_grant. The same adapter on a larger store: expired entries
// still go, live ones stay.
const { default: MemoryAdapter } = await import('oidc-provider/lib/adapters/memory_adapter.js');
const { default: Lru } = await import('oidc-provider/lib/helpers/lru.js');
const adapterStore = new Lru({ maxSize: 1_000_000 });

function fail(message) {
  process.stderr.write(`provider: ${message}\n`);
  process.exit(2);
}

function parsePort(value, name) {
  if (!/^\d+$/.test(String(value)) || Number(value) > 65535) {
    fail(`${name} must be a port number (0-65535), got ${JSON.stringify(value)}`);
  }
  return Number(value);
}

function parseArgs(argv) {
  const opts = {
    port: process.env.PROVIDER_PORT ?? '0',
    apiPort: process.env.PROVIDER_API_PORT,
    exitOnStdinClose: false,
    testHooks: false,
  };
  for (let i = 0; i < argv.length; i += 1) {
    const [flag, inline] = argv[i].split(/=(.*)/s, 2);
    const value = () => {
      if (inline !== undefined) return inline;
      i += 1;
      if (i >= argv.length) fail(`${flag} needs a value`);
      return argv[i];
    };
    switch (flag) {
      case '--port': opts.port = value(); break;
      case '--api-port': opts.apiPort = value(); break;
      case '--exit-on-stdin-close': opts.exitOnStdinClose = true; break;
      // Test suites only: counts grants and requests by path, and records the back-channel
      // logout tokens sent, readable at GET /__test/grants, GET /__test/requests and
      // GET /__test/logout-tokens; counts how often each refresh token was presented
      // by a client (GET /__test/refresh-presentations?client=ID); holds a client's next
      // token requests on demand (GET /__test/slow-token?client=ID&ms=N&count=K). Three login
      // names misbehave at the userinfo endpoint: `userinfo-other-sub` is answered with
      // another subject, `userinfo-fails` with 500, and `userinfo-bad-signature`, when its
      // client asked for signed answers, with a JWT whose signature does not verify.
      case '--test-hooks': opts.testHooks = true; break;
      case '--help':
      case '-h':
        process.stderr.write('usage: node provider.mjs [--port N] [--api-port N] [--exit-on-stdin-close] [--test-hooks]\n');
        process.exit(0);
        break;
      default: fail(`unknown argument ${JSON.stringify(argv[i])}`);
    }
  }
  opts.port = parsePort(opts.port, '--port');
  if (opts.apiPort !== undefined && opts.apiPort !== '') {
    opts.apiPort = parsePort(opts.apiPort, '--api-port');
  } else {
    opts.apiPort = undefined;
  }
  return opts;
}

function list(value) {
  return (value ?? '').split(',').map((s) => s.trim()).filter(Boolean);
}

const opts = parseArgs(process.argv.slice(2));

const conformIdTokenClaims = process.env.PROVIDER_CONFORM_ID_TOKEN_CLAIMS === '1';

const accessTokenTtl = process.env.PROVIDER_ACCESS_TOKEN_TTL ?? '300';
if (!/^\d+$/.test(accessTokenTtl) || Number(accessTokenTtl) < 1) {
  fail(`PROVIDER_ACCESS_TOKEN_TTL must be a positive number of seconds, got ${JSON.stringify(accessTokenTtl)}`);
}

// ---------------------------------------------------------------------------
// Accounts: any login name is an account.

function xmlEscape(s) {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function avatar(id, initials) {
  const hue = crypto.createHash('sha256').update(id).digest()[0] * (360 / 256);
  const svg = '<svg xmlns="http://www.w3.org/2000/svg" width="96" height="96" viewBox="0 0 96 96">'
    + `<circle cx="48" cy="48" r="48" fill="hsl(${Math.round(hue)},55%,45%)"/>`
    + '<text x="48" y="48" dy=".35em" text-anchor="middle" font-family="sans-serif" '
    + `font-size="38" fill="#fff">${xmlEscape(initials)}</text></svg>`;
  return `data:image/svg+xml;base64,${Buffer.from(svg).toString('base64')}`;
}

function profileFor(id) {
  const words = id.split(/[\s._+@-]+/u).filter(Boolean)
    .map((w) => w.charAt(0).toUpperCase() + w.slice(1));
  if (words.length === 1) words.push('Example');
  const name = words.length ? words.join(' ') : id;
  const initials = words.length
    ? words.slice(0, 2).map((w) => [...w][0]).join('').toUpperCase()
    : [...id][0] ?? '?';
  return {
    sub: id,
    name,
    given_name: words[0] ?? id,
    family_name: words.slice(1).join(' ') || undefined,
    preferred_username: id,
    picture: avatar(id, initials),
    email: `${id}@example.com`,
    email_verified: true,
  };
}

async function findAccount(ctx, id) {
  if (typeof id !== 'string' || id === '') return undefined;
  if (opts.testHooks && ctx?.oidc?.route === 'userinfo') {
    if (id === 'userinfo-fails') throw new Error('userinfo failure for tests');
    // oidc-provider answers userinfo with the account's id as `sub`.
    if (id === 'userinfo-other-sub') return findAccount(undefined, 'someone-else');
    // A signed userinfo answer whose signature is then spoilt (see the test hooks).
    if (id === 'userinfo-bad-signature') ctx.state.spoilSignature = true;
  }
  return {
    accountId: id,
    // oidc-provider filters these down to what the granted scopes allow.
    async claims() { return profileFor(id); },
  };
}

// ---------------------------------------------------------------------------
// Keys, clients, configuration.

function signingKey() {
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  return { ...jwk, kid: crypto.randomBytes(12).toString('base64url'), alg: 'RS256', use: 'sig' };
}

function staticClients() {
  const clientId = process.env.PROVIDER_CLIENT_ID;
  if (!clientId) return [];
  const secret = process.env.PROVIDER_CLIENT_SECRET;
  if (!secret) fail('PROVIDER_CLIENT_SECRET is required when PROVIDER_CLIENT_ID is set');
  const redirectUris = list(process.env.PROVIDER_REDIRECT_URIS);
  if (!redirectUris.length) fail('PROVIDER_REDIRECT_URIS is required when PROVIDER_CLIENT_ID is set');
  const client = {
    client_id: clientId,
    client_secret: secret,
    redirect_uris: redirectUris,
    post_logout_redirect_uris: list(process.env.PROVIDER_POST_LOGOUT_REDIRECT_URIS),
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  };
  if (process.env.PROVIDER_BACKCHANNEL_LOGOUT_URI) {
    client.backchannel_logout_uri = process.env.PROVIDER_BACKCHANNEL_LOGOUT_URI;
    client.backchannel_logout_session_required = true;
  }
  return [client];
}

const jwk = signingKey();
// The orders API checks its JWT access tokens against this key, as a resource server
// would against the provider's JWKS.
const verifyKey = crypto.createPublicKey({ key: jwk, format: 'jwk' });

/** A P-256 key for ES256 ID tokens, with `PROVIDER_EC_KEY=1`. */
function ecSigningKey() {
  const { privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const ec = privateKey.export({ format: 'jwk' });
  return { ...ec, kid: crypto.randomBytes(12).toString('base64url'), alg: 'ES256', use: 'sig' };
}
const signingKeys = process.env.PROVIDER_EC_KEY === '1' ? [jwk, ecSigningKey()] : [jwk];

const par = process.env.PROVIDER_PAR ?? 'off';
if (!['off', 'on', 'required'].includes(par)) {
  fail(`PROVIDER_PAR must be off, on or required, got ${JSON.stringify(par)}`);
}

const dpop = process.env.PROVIDER_DPOP ?? 'on';
if (!['off', 'on', 'nonce'].includes(dpop)) {
  fail(`PROVIDER_DPOP must be off, on or nonce, got ${JSON.stringify(dpop)}`);
}

const ACR_VALUES = ['urn:bff:loa:1', 'urn:bff:loa:2'];

/** The `acr` of a sign-in by `accountId` for a login that asked for `requested`. */
function acrFor(accountId, requested) {
  const asked = String(requested ?? '').split(' ').filter((v) => ACR_VALUES.includes(v));
  if (!requested) return undefined;
  if (String(accountId).startsWith('weak')) return ACR_VALUES[0];
  return asked[0] ?? ACR_VALUES[0];
}

const clientAuthMethods = list(process.env.PROVIDER_CLIENT_AUTH_METHODS);

const configuration = {
  clients: staticClients(),
  // Clients registering with `private_key_jwt` send their public `jwks`.
  ...(clientAuthMethods.length ? { clientAuthMethods } : {}),
  acrValues: ACR_VALUES,
  jwks: { keys: signingKeys },
  cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
  findAccount,
  adapter: (model) => new MemoryAdapter(model, adapterStore),
  claims: {
    acr: null,
    sid: null,
    auth_time: null,
    iss: null,
    openid: ['sub'],
    profile: ['name', 'given_name', 'family_name', 'preferred_username', 'picture'],
    email: ['email', 'email_verified'],
  },
  scopes: ['openid', 'offline_access'],
  conformIdTokenClaims,
  enabledJWA: {
    idTokenSigningAlgValues: ['RS256', 'PS256', 'ES256', 'Ed25519', 'EdDSA', 'HS256', 'HS512'],
  },
  pkce: { required: () => true },
  issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
  rotateRefreshToken: true,
  clientBasedCORS: (_ctx, origin, client) => client.redirectUris
    .some((uri) => URL.parse(uri)?.origin === origin),
  ttl: {
    AccessToken: Number(accessTokenTtl),
    AuthorizationCode: 60,
    IdToken: 3600,
    RefreshToken: 14 * 24 * 3600,
    Interaction: 3600,
    Session: 24 * 3600,
    Grant: 14 * 24 * 3600,
  },
  // oidc-provider refuses outgoing requests (back-channel logout, jwks_uri,
  // request_uri ...) to loopback and private addresses; locally every client
  // lives on loopback, so drop that guard but keep its timeout.
  fetch: (url, { dispatcher: _ssrfGuard, ...options }) => {
    if (opts.testHooks && options.body) {
      const token = new URLSearchParams(String(options.body)).get('logout_token');
      if (token) sentLogoutTokens.push(token);
    }
    return globalThis.fetch(url, options);
  },
  features: {
    devInteractions: { enabled: true },
    registration: { enabled: true },
    rpInitiatedLogout: { enabled: true },
    backchannelLogout: { enabled: true },
    revocation: { enabled: true },
    introspection: { enabled: true },
    userinfo: { enabled: true },
    jwtUserinfo: { enabled: true },
    clientCredentials: { enabled: true },
    dPoP: {
      enabled: dpop !== 'off',
      ...(dpop === 'nonce'
        ? { nonceSecret: crypto.randomBytes(32), requireNonce: () => true }
        : {}),
    },
    // Off unless asked for, so suites that read `state` from the authorization URL see it.
    pushedAuthorizationRequests: {
      enabled: par !== 'off',
      requirePushedAuthorizationRequests: par === 'required',
    },
    // RFC 8707: any `https://<name>.example` resource is an API here; its tokens are
    // JWTs whose `aud` is the resource, so an upstream can tell which one it got.
    resourceIndicators: {
      enabled: true,
      getResourceServerInfo: (_ctx, resource) => {
        const url = URL.parse(resource);
        if (url?.protocol !== 'https:' || !url.hostname.endsWith('.example')) {
          throw new errors.InvalidTarget(`unknown resource ${resource}`);
        }
        return {
          scope: 'api:read api:write',
          audience: resource,
          accessTokenFormat: 'jwt',
          accessTokenTTL: Number(accessTokenTtl),
        };
      },
    },
  },
};

// What the test hooks observe.
const grantCounts = {};
const requestCounts = {};
const sentLogoutTokens = [];
// Token-endpoint hooks by client id: requests to hold, refresh tokens presented.
const tokenHooks = {};

// The counting key of a request: its path, with interaction and resume ids folded, so
// `/interaction/abc/login` counts as `/interaction/:uid/login`.
function countedPath(path) {
  return path.replace(/^\/(interaction|auth)\/[^/]+/, '/$1/:uid');
}

// ---------------------------------------------------------------------------
// Start: listen first (so an ephemeral port is known), then build the provider.

async function listen(server, port) {
  server.listen(port, '127.0.0.1');
  try {
    await once(server, 'listening');
  } catch (err) {
    fail(`cannot listen on 127.0.0.1:${port}: ${err.code ?? err.message}`);
  }
  return server.address().port;
}

const servers = [];
const providerServer = http.createServer();
servers.push(providerServer);
const port = await listen(providerServer, opts.port);
const listenUrl = `http://127.0.0.1:${port}`;
const behindTls = process.env.PROVIDER_ISSUER !== undefined && process.env.PROVIDER_ISSUER !== '';
if (behindTls && !/^https:\/\/[^/]+$/.test(process.env.PROVIDER_ISSUER)) {
  fail(`PROVIDER_ISSUER must be https://host[:port], got ${JSON.stringify(process.env.PROVIDER_ISSUER)}`);
}
const issuer = behindTls ? process.env.PROVIDER_ISSUER : listenUrl;

let provider;
try {
  provider = new Provider(issuer, configuration);
} catch (err) {
  fail(`configuration rejected: ${err.message}`);
}
// Behind a TLS terminator, which passes bytes through and adds no X-Forwarded-Proto,
// every request is taken as https (see the request handler below), so the endpoints the
// discovery document names and the cookies' Secure flag are https's.
if (behindTls) provider.proxy = true;

// The dev interactions sign in without an authentication context; add the one the
// login asked for (see acrFor) so relying parties can check `acr`.
const interactionFinished = provider.interactionFinished.bind(provider);
provider.interactionFinished = async (req, res, result, options) => {
  if (result?.login) {
    const { params } = await provider.interactionDetails(req, res);
    const acr = acrFor(result.login.accountId, params.acr_values);
    if (acr) result.login.acr = acr;
  }
  return interactionFinished(req, res, result, options);
};

if (opts.testHooks) {
  provider.on('grant.success', (ctx) => {
    const type = ctx.oidc.params.grant_type;
    grantCounts[type] = (grantCounts[type] ?? 0) + 1;
  });
  provider.use(async (ctx, next) => {
    if (ctx.method === 'GET' && ctx.path === '/__test/grants') {
      ctx.body = grantCounts;
    } else if (ctx.method === 'GET' && ctx.path === '/__test/logout-tokens') {
      ctx.body = sentLogoutTokens;
    } else if (ctx.method === 'GET' && ctx.path === '/__test/requests') {
      ctx.body = requestCounts;
    } else if (ctx.method === 'GET' && ctx.path === '/__test/refresh-presentations') {
      const stats = tokenStats(String(ctx.query.client ?? ''));
      ctx.body = {
        presentations: Object.values(stats.presentations),
        // Each token presented more than once: its user and when (ms since the epoch).
        repeated: Object.entries(stats.presentations).filter(([, n]) => n > 1)
          .map(([key]) => ({ account: stats.accounts[key] ?? null, at: stats.times[key] })),
        abandoned: stats.abandoned,
        overlapping: stats.overlapping,
      };
    } else if (ctx.method === 'GET' && ctx.path === '/__test/slow-token') {
      const stats = tokenStats(String(ctx.query.client ?? ''));
      stats.slow = { ms: Number(ctx.query.ms ?? 0), count: Number(ctx.query.count ?? 1) };
      ctx.body = stats.slow;
    } else if (ctx.method === 'POST' && ctx.path === '/token') {
      requestCounts[ctx.path] = (requestCounts[ctx.path] ?? 0) + 1;
      await tokenEndpoint(ctx, next);
    } else {
      const key = countedPath(ctx.path);
      requestCounts[key] = (requestCounts[key] ?? 0) + 1;
      await next();
      if (ctx.state.spoilSignature && typeof ctx.body === 'string' && ctx.type === 'application/jwt') {
        // Another signature of the right length: the claims stay as signed.
        const [header, payload, signature] = ctx.body.split('.');
        const spoilt = Buffer.from(signature, 'base64url').map((b) => b ^ 0xff).toString('base64url');
        ctx.body = [header, payload, spoilt].join('.');
      }
    }
  });
}

// The token endpoint under the test hooks, per client: a held request waits as if queued
// in front of the provider, and one whose client hung up meanwhile is dropped unprocessed,
// as such a queue would; every refresh token processed is counted, and a presentation
// arriving while another of the same token is still pending is counted as overlapping.
async function tokenEndpoint(ctx, next) {
  // Read the form here (oidc-provider takes an already read body from ctx.request.body).
  const chunks = [];
  for await (const chunk of ctx.req) chunks.push(chunk);
  const raw = Buffer.concat(chunks).toString('utf8');
  ctx.request.body = raw;
  const form = new URLSearchParams(raw);
  const client = tokenClient(ctx, form);
  const stats = tokenStats(client);
  const token = form.get('grant_type') === 'refresh_token' ? form.get('refresh_token') : null;
  const key = token && crypto.createHash('sha256').update(token).digest('base64url');
  // Pending from arrival until answered, or until its client hangs up while it is held.
  let pending = Boolean(key);
  const settle = () => {
    if (pending) stats.pending[key] -= 1;
    pending = false;
  };
  if (key) {
    if (stats.pending[key]) stats.overlapping += 1;
    stats.pending[key] = (stats.pending[key] ?? 0) + 1;
  }
  try {
    if (stats.slow.count > 0) {
      stats.slow.count -= 1;
      let gone = false;
      const hangUp = () => { gone = true; settle(); };
      ctx.req.socket.once('close', hangUp);
      await new Promise((resolve) => { setTimeout(resolve, stats.slow.ms); });
      ctx.req.socket.off('close', hangUp);
      if (gone || ctx.req.socket.destroyed) {
        stats.abandoned += 1;
        ctx.respond = false;
        return;
      }
    }
    if (key) {
      stats.presentations[key] = (stats.presentations[key] ?? 0) + 1;
      (stats.times[key] ??= []).push(Date.now());
    }
    await next();
    // Whose token it was, so a token presented twice can be traced to its user.
    const account = ctx.oidc?.entities?.RefreshToken?.accountId;
    if (key && account) stats.accounts[key] = account;
  } finally {
    settle();
  }
}

// The client a token request authenticates as (Basic credentials or the form's client_id).
function tokenClient(ctx, form) {
  const basic = /^Basic +(\S+)$/i.exec(ctx.get('authorization'));
  if (basic) {
    const [id] = Buffer.from(basic[1], 'base64').toString('utf8').split(':');
    try { return decodeURIComponent(id.replace(/\+/g, ' ')); } catch { return id; }
  }
  return form.get('client_id') ?? '';
}

function tokenStats(client) {
  tokenHooks[client] ??= {
    slow: { count: 0, ms: 0 }, abandoned: 0, overlapping: 0, pending: {}, presentations: {},
    times: {}, accounts: {},
  };
  return tokenHooks[client];
}

// The built-in pages import a web font from the internet; this stack works offline.
provider.use(async (ctx, next) => {
  await next();
  if (typeof ctx.body === 'string' && ctx.response.is('html')) {
    ctx.body = ctx.body.replace(/@import url\(https?:\/\/fonts\.googleapis\.com[^)]*\);?/g, '');
  }
});
provider.on('server_error', (_ctx, err) => console.error('provider: server error:', err));
provider.on('pushed_authorization_request.error', (_ctx, err) => { if (verbose) console.error('provider: PAR error:', err.error, err.error_description); });
provider.on('grant.error', (_ctx, err) => { if (verbose) console.error('provider: grant error:', err.error, err.error_description); });
provider.on('backchannel.error', (_ctx, err, client) => {
  console.error(`provider: back-channel logout to ${client.backchannelLogoutUri} failed: ${err.message}`);
});

const handle = provider.callback();
providerServer.on('request', behindTls
  ? (req, res) => {
    req.headers['x-forwarded-proto'] = 'https';
    handle(req, res);
  }
  : handle);

// ---------------------------------------------------------------------------
// Demo resource API.

function sendJson(res, status, body, headers = {}) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(text);
}

const HIDDEN_HEADERS = new Set(['authorization', 'proxy-authorization']);

const ORDERS_AUDIENCE = 'https://orders.example';

function refuse(res) {
  sendJson(res, 401, { error: 'invalid_token' }, {
    'www-authenticate': 'Bearer error="invalid_token"',
  });
}

function bearer(req) {
  return /^Bearer +([^\s]+) *$/i.exec(req.headers.authorization ?? '')?.[1];
}

/** Whether `path` is `prefix` or below it, by whole segments (`/orders/7`, not `/ordersX`). */
function under(path, prefix) {
  return path === prefix || path.startsWith(`${prefix}/`);
}

function decodeJson(part) {
  try {
    const value = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
    return value !== null && typeof value === 'object' ? value : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The claims of `value` when it is a JWT access token this provider signed for
 * `audience` and still valid (RFC 9068: typ at+jwt, RS256 with our key, iss, aud, exp).
 */
function verifiedJwt(value, audience) {
  const parts = String(value ?? '').split('.');
  if (parts.length !== 3) return undefined;
  const header = decodeJson(parts[0]);
  const claims = decodeJson(parts[1]);
  if (!header || !claims) return undefined;
  if (header.alg !== 'RS256' || header.kid !== jwk.kid || String(header.typ).toLowerCase() !== 'at+jwt') return undefined;
  let signed = false;
  try {
    signed = crypto.verify('sha256', Buffer.from(`${parts[0]}.${parts[1]}`), verifyKey, Buffer.from(parts[2], 'base64url'));
  } catch {
    // A malformed signature: not signed by us.
  }
  if (!signed) return undefined;
  const now = Math.floor(Date.now() / 1000);
  const audiences = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
  if (claims.iss !== issuer || !audiences.includes(audience)) return undefined;
  if (typeof claims.exp !== 'number' || claims.exp <= now) return undefined;
  if (typeof claims.nbf === 'number' && claims.nbf > now) return undefined;
  return claims;
}

/** The JSON description of a call: `token` says what the API made of its token. */
function describe(req, body, message, token) {
  const rawUrl = req.url ?? '/';
  const q = rawUrl.indexOf('?');
  const headers = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (!HIDDEN_HEADERS.has(name)) headers[name] = name === 'cookie' ? '[redacted]' : value;
  }
  return {
    message,
    path: q === -1 ? rawUrl : rawUrl.slice(0, q),
    query: q === -1 ? '' : rawUrl.slice(q + 1),
    method: req.method,
    ...token,
    server_time: Math.floor(Date.now() / 1000),
    headers,
    body: body.length ? body.toString('utf8') : undefined,
  };
}

async function apiHandler(req, res) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const body = Buffer.concat(chunks);
  const path = (req.url ?? '/').split('?', 1)[0];

  if (under(path, '/public')) {
    sendJson(res, 200, describe(req, body, 'Hello from the public demo API', {
      token: 'none',
      // Whether the caller sent one at all: the BFF never should on a `none` route.
      authorization_header: req.headers.authorization !== undefined,
    }));
    return;
  }

  if (under(path, '/orders')) {
    const claims = verifiedJwt(bearer(req), ORDERS_AUDIENCE);
    if (!claims) {
      refuse(res);
      return;
    }
    sendJson(res, 200, describe(req, body, 'Hello from the orders demo API', {
      sub: claims.sub,
      audience: claims.aud,
      scope: claims.scope ?? '',
      client_id: claims.client_id,
      token_expires_at: claims.exp,
    }));
    return;
  }

  const value = bearer(req);
  const token = value ? await provider.AccessToken.find(value) : undefined;
  if (!token || token.isExpired) {
    refuse(res);
    return;
  }
  sendJson(res, 200, describe(req, body, 'Hello from the demo API', {
    sub: token.accountId,
    // The login's opaque token has no audience unless it was issued for a resource.
    audience: token.aud ?? null,
    scope: token.scope,
    client_id: token.clientId,
    token_expires_at: token.exp,
  }));
}

const ready = { issuer };
if (behindTls) ready.listen = listenUrl;
if (opts.apiPort !== undefined) {
  const apiServer = http.createServer((req, res) => {
    apiHandler(req, res).catch((err) => {
      console.error('demo api: error:', err);
      if (!res.headersSent) sendJson(res, 500, { error: 'server_error' });
      else res.destroy();
    });
  });
  servers.push(apiServer);
  ready.api = `http://127.0.0.1:${await listen(apiServer, opts.apiPort)}`;
}

// ---------------------------------------------------------------------------
// Lifecycle.

let stopping = false;
function shutdown() {
  if (stopping) return;
  stopping = true;
  for (const server of servers) {
    server.close();
    server.closeAllConnections();
  }
  // Do not wait for keep-alive sockets or pending timers.
  setImmediate(() => process.exit(0));
}

process.on('SIGINT', shutdown);
process.on('SIGTERM', shutdown);
process.on('SIGHUP', shutdown);
if (opts.exitOnStdinClose) {
  process.stdin.on('end', shutdown);
  process.stdin.on('close', shutdown);
  process.stdin.on('error', shutdown);
  process.stdin.resume();
}

process.stdout.write(`READY ${JSON.stringify(ready)}\n`);
