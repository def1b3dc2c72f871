#!/usr/bin/env bash
# Runs the browser tests: the demo front end in a real, headless Chromium against the
# provider's real login and consent pages and bff-local.
#
#   bash tests/browser/run.sh
#
# 1. Node.js (infra/lib.sh's ensure_node) and Debian's chromium when /usr/bin/chromium is
#    missing (as root; never a browser download);
# 2. the npm packages of infra/ (oidc-provider, playwright-core) from package-lock.json;
# 3. cargo build -p bff-local (debug; BFF_LOCAL_BIN points the tests at another binary);
# 4. node --test on tests/browser/*.test.mjs (demo.test.mjs: the demo's flows;
#    idle.test.mjs: no request left open, and what the page says after logging out;
#    unauthorized.test.mjs: an API's 401 is not an ended session).
#    Each test starts nothing itself: each file starts one provider and one bff-local on
#    free ports and stops them when it ends.
#
# On failure, screenshots are in target/browser-screenshots/, logs in target/browser-tests/.

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# shellcheck source=infra/lib.sh
source infra/lib.sh

ensure_node
if [ -z "${CHROMIUM_BIN:-}" ] && [ ! -x /usr/bin/chromium ]; then
    apt_install chromium
fi

step "npm packages (infra/)"
npm_ci infra playwright-core

if [ -z "${BFF_LOCAL_BIN:-}" ]; then
    step "cargo build -p bff-local"
    cargo build -p bff-local
fi

version="$("${CHROMIUM_BIN:-/usr/bin/chromium}" --version 2>/dev/null || true)"
step "Browser tests (${version:-chromium})"
rm -rf target/browser-screenshots
node --test --test-reporter=spec tests/browser/*.test.mjs
