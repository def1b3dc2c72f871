#!/usr/bin/env bash
# Coverage-guided fuzzing of the parsers that face attackers (see fuzz/README.md):
#
#   bash infra/fuzz.sh                          # every target, 60 s each
#   FUZZ_SECONDS=600 bash infra/fuzz.sh return_to proxy_path
#
# Installs cargo-fuzz from crates.io when missing, builds the targets once (in
# fuzz/target, apart from the main build), runs each for FUZZ_SECONDS starting from its
# committed seeds in fuzz/corpus/<target>/, and prints one line per target. New corpus
# entries go to a temporary directory, so the tree stays clean. Fails when any target
# finds a crash; the input is kept in fuzz/artifacts/<target>/.
#
# cargo fuzz needs unstable compiler flags: the stable toolchain accepts them with
# RUSTC_BOOTSTRAP=1. Sanitizer: FUZZ_SANITIZER (default address; none when the address
# sanitizer cannot be built here, libFuzzer's coverage works either way).

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=infra/lib.sh
source infra/lib.sh

seconds="${FUZZ_SECONDS:-60}"
sanitizer="${FUZZ_SANITIZER:-address}"
all_targets=(cookie_parsing return_to callback_query proxy_path)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    step "Installing cargo-fuzz from crates.io"
    cargo install cargo-fuzz --locked
fi

# The fuzz crate is its own workspace; its lock file starts as a copy of the main one
# (again whenever that changes), so it builds the dependency versions the BFF ships with.
[ fuzz/Cargo.lock -nt Cargo.lock ] || cp Cargo.lock fuzz/Cargo.lock

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

step "cargo fuzz build (sanitizer: $sanitizer)"
build_start=$SECONDS
if ! cargo fuzz build -s "$sanitizer"; then
    [ "$sanitizer" != none ] || exit 1
    echo "fuzz.sh: the $sanitizer sanitizer does not build here; fuzzing without one" >&2
    sanitizer=none
    cargo fuzz build -s none
fi
echo "built in $((SECONDS - build_start)) s"

step "fuzzing, ${seconds} s per target"
failed=0
summary=()
for target in "${targets[@]}"; do
    corpus="$work/corpus/$target"
    mkdir -p "$corpus"
    args=(-max_total_time="$seconds" -timeout=10 -print_final_stats=1)
    [ -f "fuzz/dict/$target.dict" ] && args+=(-dict="fuzz/dict/$target.dict")
    log="$work/$target.log"
    if cargo fuzz run -s "$sanitizer" "$target" "$corpus" "fuzz/corpus/$target" -- "${args[@]}" >"$log" 2>&1; then
        runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
        cov="$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | cut -d' ' -f2)"
        found="$(find "$corpus" -type f | wc -l)"
        summary+=("$(printf 'fuzz %-15s ok      %9s runs in %s s, coverage %s, %s new corpus inputs' \
            "$target" "${runs:-?}" "$seconds" "${cov:-?}" "$found")")
    else
        failed=1
        artifact="$(grep -o 'fuzz/artifacts/[^ ]*/crash-[0-9a-f]*' "$log" | head -n 1 || true)"
        grep -m 1 -A 3 'panicked at' "$log" >&2 || tail -n 30 "$log" >&2
        summary+=("$(printf 'fuzz %-15s FAILED  input kept in %s' "$target" "${artifact:-fuzz/artifacts/$target/}")")
    fi
done

echo
printf '%s\n' "${summary[@]}"
exit "$failed"
