'use strict';
// The BFF's job done the usual Node.js way, for side-by-side benchmarks:
// express + express-openid-connect (Authorization Code Grant with PKCE, session in an
// encrypted cookie, refresh when the access token has expired) + http-proxy-middleware
// (forwards /api/* to the upstream with the user's access token).
//
//   node server.js [--exit-on-stdin-close]
//
// Environment (the same names as the BFF's):
//   BFF_ISSUER, BFF_CLIENT_ID, BFF_CLIENT_SECRET  the provider and this client
//   BFF_PUBLIC_URL                                this server's origin (redirect URI base)
//   BFF_UPSTREAM_URL                              the API /api/* is forwarded to
//   BFF_SESSION_SECRET                            key of the session cookie (32+ chars)
//   BFF_LISTEN                                    host:port (127.0.0.1:8090)
//
// Prints `READY {"url": ...}` on stdout once listening.

const express = require('express');
const { auth } = require('express-openid-connect');
const { createProxyMiddleware } = require('http-proxy-middleware');

function required(name) {
  const value = process.env[name];
  if (!value) {
    process.stderr.write(`node-bff: ${name} is required\n`);
    process.exit(2);
  }
  return value;
}

const publicUrl = required('BFF_PUBLIC_URL');
const upstream = required('BFF_UPSTREAM_URL').replace(/\/+$/, '');
const [host, port] = (process.env.BFF_LISTEN ?? '127.0.0.1:8090').split(':');

const app = express();
app.disable('x-powered-by');

app.use(auth({
  issuerBaseURL: required('BFF_ISSUER'),
  baseURL: publicUrl,
  clientID: required('BFF_CLIENT_ID'),
  clientSecret: required('BFF_CLIENT_SECRET'),
  secret: required('BFF_SESSION_SECRET'),
  authRequired: false,
  idpLogout: false,
  authorizationParams: {
    response_type: 'code',
    response_mode: 'query',
    scope: 'openid profile email offline_access',
  },
  routes: {
    login: '/auth/login',
    callback: '/auth/callback',
    logout: '/auth/logout',
  },
}));

// Who is logged in: the ID-token claims, or 401.
app.get('/auth/me', (req, res) => {
  res.set('cache-control', 'no-store');
  if (!req.oidc.isAuthenticated()) {
    res.status(401).json({ error: 'login_required' });
    return;
  }
  res.json(req.oidc.user);
});

// Anti-forgery header and a live session with a usable access token, refreshed when it
// has expired; then the call goes upstream with `Authorization: Bearer`.
async function withAccessToken(req, res, next) {
  if (req.get('x-csrf') !== '1') {
    res.status(403).json({ error: 'csrf_required' });
    return;
  }
  let token = req.oidc.isAuthenticated() ? req.oidc.accessToken : undefined;
  if (!token) {
    res.status(401).json({ error: 'login_required' });
    return;
  }
  try {
    if (token.isExpired()) token = await token.refresh();
  } catch {
    res.status(502).json({ error: 'provider_error' });
    return;
  }
  req.upstreamToken = token.access_token;
  next();
}

const proxy = createProxyMiddleware({
  target: upstream,
  changeOrigin: true,
  xfwd: false,
  on: {
    proxyReq(proxyReq, req) {
      // The browser's credentials never reach the API; the user's access token does.
      proxyReq.removeHeader('cookie');
      proxyReq.removeHeader('x-csrf');
      proxyReq.setHeader('authorization', `Bearer ${req.upstreamToken}`);
    },
    proxyRes(proxyRes) {
      delete proxyRes.headers['set-cookie'];
    },
  },
});

// Mounted on /api: express strips the prefix, so /api/orders goes to {upstream}/orders.
app.use('/api', withAccessToken, proxy);

const server = app.listen(Number(port), host, () => {
  const address = server.address();
  process.stdout.write(`READY ${JSON.stringify({ url: `http://${address.address}:${address.port}` })}\n`);
});

const stop = () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
if (process.argv.includes('--exit-on-stdin-close')) {
  // A harness that spawns this with piped stdin takes it down with it, even when killed.
  process.stdin.on('end', stop);
  process.stdin.resume();
}
