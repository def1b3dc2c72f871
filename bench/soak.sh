#!/usr/bin/env bash
# The soak run: faults survived over time.
#
#   bash bench/soak.sh                 # 30 minutes, the documented run
#   bash bench/soak.sh --minutes 2     # a short one
#
# Mixed traffic from 200 sessions through three bff-local processes sharing one DynamoDB
# Local (behind the fault proxy) and one oidc-provider rotating refresh tokens with short
# access tokens, while store writes fail, are delayed or lose their answers, the token
# endpoint is held, and bff-local processes are killed and restarted. Reports sessions
# lost, refresh tokens presented twice and answers by status; writes bench/soak.md and
# the "Soak" section of BENCHMARKS.md, and traces each lost session in
# target/bench/soak/lost-sessions.txt (with the processes' logs). Options after the
# script name go to `bff-bench soak` (--minutes, --sessions, --access-token-ttl,
# --pause-ms, --bff-local, --faults on|off).
#
# Everything listens on loopback only. Not part of infra/test.sh or bench/run.sh.

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=infra/lib.sh
source infra/lib.sh
started=$(date +%s)

ensure_node
ensure_java

step "npm packages (infra/)"
npm_ci infra

target="${CARGO_TARGET_DIR:-target}"
case "$target" in /*) ;; *) target="$PWD/$target" ;; esac

step "bff-local and the harness (dev-local profile: optimised, quick to build)"
cargo build --profile dev-local --locked -p bff-local -p bff-bench

step "soak"
"$target/dev-local/bff-bench" soak --bff-local "$target/dev-local/bff-local" "$@"

printf '\nbench/soak.sh: done in %d s; see bench/soak.md\n' "$(($(date +%s) - started))"
