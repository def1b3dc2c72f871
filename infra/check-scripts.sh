#!/usr/bin/env bash
# Checks of the project's own scripts (infra/test.sh runs them):
#
#   bash infra/check-scripts.sh
#
# - infra/dev.sh refuses a port held by another program, naming it: taken before it
#   starts, taken during the build (a stand-in cargo takes it), and taken by another
#   program right after bff-local starts (a stand-in bff-local starts that program), so
#   that an answer from that program is never taken for the BFF's;
# - infra/test.sh ends with its summary, the fuzz build output kept out of it unless
#   fuzzing fails (test.sh's own steps, with stand-ins for the commands they run);
# - fuzz/Cargo.lock is committed, matches fuzz/Cargo.toml (cargo metadata --locked),
#   holds the main lock file's versions, and infra/fuzz.sh builds with it locked;
# - the Node.js version is one number: infra/lib.sh, infra/package.json (and its lock
#   file) and the README.
#
# Needs Node.js, the npm packages of infra/, python3 (the stand-in programs) and ss.
# Ends with `scripts: N passed, N failed`.

# test.sh is sourced in a subshell below: what it sets stays there, as meant.
# shellcheck disable=SC2031
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=infra/lib.sh
source infra/lib.sh

ensure_node
npm_ci infra >/dev/null

work="$(mktemp -d)"
intruders=()
# shellcheck disable=SC2317 # invoked by the trap
finish() {
    local pid
    for pid in "${intruders[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap finish EXIT

passed=0
failed=0
pass() {
    passed=$((passed + 1))
    printf 'ok - %s\n' "$1"
}
fail() {
    failed=$((failed + 1))
    printf 'FAILED - %s\n' "$1"
    [ -z "${2:-}" ] || sed 's/^/    /' "$2" | tail -n 30
}

# A loopback port nobody listens on.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits until something listens on port $1.
wait_listening() {
    for _ in $(seq 1 100); do
        [ -z "$(ss -Hltn "sport = :$1")" ] || return 0
        sleep 0.1
    done
    return 1
}

# --- infra/dev.sh: ports held by another program -------------------------------------
# dev.sh runs with a stand-in cargo first on PATH (no real build), its target directory
# (binary, logs) in $work, and ports of its own.

mkdir -p "$work/bin"
cat >"$work/bin/cargo" <<'EOF'
#!/usr/bin/env bash
# Stand-in for `cargo build --profile dev-local -p bff-local`: writes the stand-in
# bff-local, and runs $FAKE_BUILD (which may take a port, as another program might while
# a real build runs).
set -eu
mkdir -p "$CARGO_TARGET_DIR/dev-local"
cp "$FAKE_BFF_LOCAL" "$CARGO_TARGET_DIR/dev-local/bff-local"
chmod +x "$CARGO_TARGET_DIR/dev-local/bff-local"
[ -z "${FAKE_BUILD:-}" ] || bash -c "$FAKE_BUILD"
EOF
chmod +x "$work/bin/cargo"

# Another program: a Python HTTP server on port $1, not a child of dev.sh's processes
# (started from a subshell that exits at once); its pid goes to the file $2.
cat >"$work/intruder.sh" <<'EOF'
( python3 -m http.server "$1" --bind 127.0.0.1 >/dev/null 2>&1 & echo $! >"$2" )
EOF

# Stand-ins for bff-local: one that only waits (never reached when dev.sh refuses
# before starting it), one that starts another program on its port and then waits.
printf '#!/bin/sh\nexec sleep 60\n' >"$work/bff-local-idle"
cat >"$work/bff-local-intruder" <<EOF
#!/bin/sh
bash "$work/intruder.sh" "\${BFF_LISTEN##*:}" "$work/intruder.pid"
exec sleep 60
EOF

# Runs dev.sh with the stand-ins; $1 is the stand-in bff-local, $2 what the build does.
# Output in $work/dev.out, exit status in $dev_status.
run_dev() {
    dev_status=0
    PATH="$work/bin:$PATH" CARGO_TARGET_DIR="$work/target" FAKE_BFF_LOCAL="$1" FAKE_BUILD="$2" \
        BFF_PORT="$bff_port" PROVIDER_PORT="$provider_port" API_PORT="$api_port" \
        timeout 90 bash infra/dev.sh </dev/null >"$work/dev.out" 2>&1 || dev_status=$?
}

bff_port=$(free_port)
provider_port=$(free_port)
api_port=$(free_port)

# 1. Taken before dev.sh starts.
bash "$work/intruder.sh" "$bff_port" "$work/intruder.pid"
intruders+=("$(cat "$work/intruder.pid")")
wait_listening "$bff_port"
run_dev "$work/bff-local-idle" ""
name="dev.sh refuses a port in use before it starts, naming the program"
if [ "$dev_status" -eq 1 ] &&
    grep -qF "port $bff_port is in use by python" "$work/dev.out" &&
    grep -qF "(pid ${intruders[-1]})" "$work/dev.out" &&
    grep -qF "BFF_PORT=" "$work/dev.out"; then
    pass "$name"
else
    fail "$name (exit $dev_status)" "$work/dev.out"
fi
kill "${intruders[-1]}" 2>/dev/null || true

# 2. Taken during the build.
bff_port=$(free_port)
run_dev "$work/bff-local-idle" "bash '$work/intruder.sh' $bff_port '$work/intruder.pid'; \
    for _ in \$(seq 1 100); do [ -n \"\$(ss -Hltn 'sport = :$bff_port')\" ] && break; sleep 0.1; done"
intruder="$(cat "$work/intruder.pid" 2>/dev/null || true)"
intruders+=("$intruder")
name="dev.sh checks a port again before starting its server: taken during the build, refused and named"
if [ "$dev_status" -eq 1 ] &&
    grep -qF "port $bff_port is in use by python" "$work/dev.out" &&
    grep -qF "(pid $intruder)" "$work/dev.out" &&
    ! grep -q 'health check' "$work/dev.out"; then
    pass "$name"
else
    fail "$name (exit $dev_status)" "$work/dev.out"
fi
kill "$intruder" 2>/dev/null || true

# 3. Taken right after bff-local starts, by a program that is not bff-local.
bff_port=$(free_port)
rm -f "$work/intruder.pid"
run_dev "$work/bff-local-intruder" ""
intruder="$(cat "$work/intruder.pid" 2>/dev/null || true)"
intruders+=("$intruder")
name="dev.sh takes no other program's answer for bff-local's"
if [ "$dev_status" -eq 1 ] &&
    grep -qF "port $bff_port is held by python" "$work/dev.out" &&
    grep -qF "(pid $intruder), not by the bff-local this script started" "$work/dev.out" &&
    ! grep -q 'health check' "$work/dev.out"; then
    pass "$name"
else
    fail "$name (exit $dev_status)" "$work/dev.out"
fi
kill "$intruder" 2>/dev/null || true

# 4. The provider's port taken during the build: refused before the provider starts.
bff_port=$(free_port)
provider_port=$(free_port)
run_dev "$work/bff-local-idle" "bash '$work/intruder.sh' $provider_port '$work/intruder.pid'; \
    for _ in \$(seq 1 100); do [ -n \"\$(ss -Hltn 'sport = :$provider_port')\" ] && break; sleep 0.1; done"
intruder="$(cat "$work/intruder.pid" 2>/dev/null || true)"
intruders+=("$intruder")
name="dev.sh checks the provider's port again before starting it"
if [ "$dev_status" -eq 1 ] &&
    grep -qF "port $provider_port is in use by python" "$work/dev.out" &&
    grep -qF "(pid $intruder)" "$work/dev.out" &&
    grep -qF "PROVIDER_PORT=" "$work/dev.out"; then
    pass "$name"
else
    fail "$name (exit $dev_status)" "$work/dev.out"
fi
kill "$intruder" 2>/dev/null || true

# --- infra/test.sh: the summary comes last ----------------------------------------------
# test.sh's own main, sourced, with stand-ins for the commands its steps run: cargo test
# prints three tests (one an attack), the browser tests two, the provider tests three,
# fuzz.sh 400 lines of build output before its per-target lines.

# Runs test.sh's main with the stand-ins; $1 is fuzz.sh's exit status. Output in
# $work/test.out, exit status in $test_status.
run_test_sh() {
    test_status=0
    (
        export FAKE_FUZZ_STATUS=$1
        cargo() {
            if [ "$1" = test ]; then
                printf 'running 3 tests\ntest flows::attack_replayed_callback ... ok\ntest a::b ... ok\ntest a::c ... ok\n'
                printf '\ntest result: ok. 3 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out\n'
            else
                echo "cargo $1: fine"
            fi
        }
        bash() {
            case "$1" in
                infra/fuzz.sh)
                    for i in $(seq 1 400); do echo "   Compiling fuzz-build-noise v0.0.$i"; done
                    if [ "$FAKE_FUZZ_STATUS" -eq 0 ]; then
                        printf 'fuzz %-15s ok      %9s runs in 1 s, coverage 9, 0 new corpus inputs\n' cookie_parsing 10 return_to 10
                    else
                        echo 'fuzz-build-noise: error: the build failed here'
                    fi
                    return "$FAKE_FUZZ_STATUS" ;;
                tests/browser/run.sh) printf 'ℹ tests 2\nℹ pass 2\nℹ fail 0\n' ;;
                tests/providers/run.sh) printf 'ℹ tests 3\nℹ pass 3\nℹ fail 0\n' ;;
                infra/check-scripts.sh) echo 'scripts: 5 passed, 0 failed' ;;
                *) echo "bash $1: fine" ;;
            esac
        }
        # shellcheck source=infra/test.sh
        source infra/test.sh
        ensure_node() { :; }
        ensure_java() { :; }
        ensure_moto() { :; }
        npm_ci() { :; }
        main
    ) >"$work/test.out" 2>&1 || test_status=$?
}

run_test_sh 0
name="test.sh ends with its summary, without the fuzz build output"
if [ "$test_status" -eq 0 ] &&
    [ "$(tail -n 7 "$work/test.out" | cut -d: -f1 | paste -sd' ' -)" = "security cargo browser providers scripts fuzz total" ] &&
    [ "$(tail -n 1 "$work/test.out")" = "total: 15 passed, 0 failed" ] &&
    grep -qx 'security: 1 attacks tried, 1 blocked, 0 not blocked' "$work/test.out" &&
    ! grep -q 'fuzz-build-noise' "$work/test.out"; then
    pass "$name"
else
    fail "$name (exit $test_status)" "$work/test.out"
fi

run_test_sh 1
name="test.sh shows the fuzz output when fuzzing fails, and still ends with its summary"
if [ "$test_status" -ne 0 ] &&
    [ "$(tail -n 7 "$work/test.out" | cut -d: -f1 | paste -sd' ' -)" = "security cargo browser providers scripts fuzz total" ] &&
    [ "$(tail -n 1 "$work/test.out")" = "total: 13 passed, 1 failed" ] &&
    grep -q 'the build failed here' "$work/test.out"; then
    pass "$name"
else
    fail "$name (exit $test_status)" "$work/test.out"
fi

# --- fuzz/Cargo.lock ----------------------------------------------------------------------

name="fuzz/Cargo.lock is committed and matches fuzz/Cargo.toml, and fuzz.sh builds locked"
: >"$work/lock.out"
git ls-files --error-unmatch fuzz/Cargo.lock >/dev/null 2>&1 || echo "fuzz/Cargo.lock is not committed" >>"$work/lock.out"
! git check-ignore -q fuzz/Cargo.lock || echo "git ignores fuzz/Cargo.lock" >>"$work/lock.out"
cargo metadata --locked --manifest-path fuzz/Cargo.toml --format-version 1 >/dev/null 2>>"$work/lock.out" ||
    echo "cargo metadata --locked failed: fuzz/Cargo.lock is missing or out of date" >>"$work/lock.out"
grep -q '^if ! cargo fetch --locked --manifest-path fuzz/Cargo.toml' infra/fuzz.sh ||
    echo "infra/fuzz.sh does not fetch with --locked" >>"$work/lock.out"
if [ ! -s "$work/lock.out" ]; then pass "$name"; else fail "$name" "$work/lock.out"; fi

# "name version" of every crates.io package in the lock file $1.
registry_packages() {
    awk '/^\[\[package\]\]/ { n = v = "" } /^name = / { n = $3 } /^version = / { v = $3 }
         /^source = "registry/ { gsub(/"/, "", n); gsub(/"/, "", v); print n, v }' "$1" | sort -u
}
registry_packages Cargo.lock >"$work/main.versions"
registry_packages fuzz/Cargo.lock >"$work/fuzz.versions"
# A package of both lock files at a version the main one does not have.
awk 'NR == FNR { main[$1] = 1; both[$1 " " $2] = 1; next } ($1 in main) && !(($1 " " $2) in both)' \
    "$work/main.versions" "$work/fuzz.versions" >"$work/differ"
name="fuzz/Cargo.lock holds the main lock file's versions"
if [ ! -s "$work/differ" ]; then
    pass "$name"
else
    {
        echo "not in Cargo.lock at these versions:"
        cat "$work/differ"
        echo "make it again: cp Cargo.lock fuzz/Cargo.lock && cargo metadata --manifest-path fuzz/Cargo.toml --format-version 1 >/dev/null"
    } >"$work/differ.out"
    fail "$name" "$work/differ.out"
fi

# --- One Node.js version ---------------------------------------------------------------------

engines="$(node -p 'require("./infra/package.json").engines.node')"
lock_engines="$(node -p 'require("./infra/package-lock.json").packages[""].engines.node')"
name="one Node.js version: infra/lib.sh ($NODE_MIN), infra/package.json ($engines), its lock ($lock_engines), README"
if [ "$engines" = ">=$NODE_MIN" ] && [ "$lock_engines" = ">=$NODE_MIN" ] &&
    grep -qF "Node.js $NODE_MIN or newer" README.md &&
    [ "$(grep -oE 'Node(\.js)? (>= ?)?[0-9]+\.[0-9]+\.[0-9]+' README.md | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | sort -u)" = "$NODE_MIN" ]; then
    pass "$name"
else
    fail "$name"
fi

echo
printf 'scripts: %d passed, %d failed\n' "$passed" "$failed"
[ "$failed" -eq 0 ]
