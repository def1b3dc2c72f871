#!/usr/bin/env bash
# Coverage-guided fuzzing of the parsers that face attackers (see fuzz/README.md):
#
#   bash infra/fuzz.sh                          # every target, 60 s each
#   FUZZ_SECONDS=600 bash infra/fuzz.sh return_to proxy_path
#
# Installs cargo-fuzz from crates.io when missing, builds the targets once (in
# fuzz/target, apart from the main build) with the dependency versions of the committed
# fuzz/Cargo.lock (locked: a lock file that no longer matches fails the run instead of
# being re-resolved), runs each for FUZZ_SECONDS starting from its
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
    cargo install cargo-fuzz --version 0.13.2 --locked
fi

# The fuzz crate is its own workspace with its own committed lock file, made from the main
# one so that it holds the dependency versions the BFF ships with (infra/check-scripts.sh
# checks that they still agree). cargo fuzz has no --locked of its own: the fetch below
# refuses a lock file that would need changing, and the build must leave it as it was.
step "cargo fetch --locked (fuzz/Cargo.lock)"
if ! cargo fetch --locked --manifest-path fuzz/Cargo.toml; then
    cat >&2 <<'EOF'
fuzz.sh: fuzz/Cargo.lock does not match fuzz/Cargo.toml and shared/Cargo.toml. Make it
again from the main lock file and commit it:
    cp Cargo.lock fuzz/Cargo.lock && cargo metadata --manifest-path fuzz/Cargo.toml --format-version 1 >/dev/null
EOF
    exit 1
fi
lock_before="$(cksum <fuzz/Cargo.lock)"

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
if [ "$(cksum <fuzz/Cargo.lock)" != "$lock_before" ]; then
    echo "fuzz.sh: cargo fuzz build changed fuzz/Cargo.lock; it must build the committed versions" >&2
    exit 1
fi

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
