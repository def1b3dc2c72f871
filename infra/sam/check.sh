#!/usr/bin/env bash
# Checks the AWS deployment offline, end to end:
#
#   bash infra/sam/check.sh
#
# 1. tools: aws-sam-cli and cfn-lint from PyPI into .local/sam-venv (git-ignored); for
#    the sam build only, cargo-lambda and ziglang (the cross linker, about 400 MB) too,
#    and Rust's standard library for the target;
# 2. cfn-lint template.yaml: no error, no warning;
# 3. sam validate --lint;
# 4. infra/sam/test_template.py: least privilege, secrets by reference, origin
#    verification, table, logs and alarms;
# 5. sam build: every function's bootstrap, checked to exist and to be an ELF binary for
#    the template's architecture.
#
# SAM_BUILD=0 stops after step 4 (the test command does: the release cross-build of
# five functions takes longer than the rest of the suite together), and installs only
# what steps 2 to 4 need.
# SAM_ARCHITECTURE=x86_64 builds for x86_64 instead of the default arm64. No AWS
# account or network access to AWS is needed.

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

# Exact versions: a new cfn-lint release may add rules, and this check must not turn red
# on its own. Change them here; the next run reinstalls.
CHECK_TOOLS=(aws-sam-cli==1.170.0 cfn-lint==1.58.0)
BUILD_TOOLS=(cargo-lambda==1.9.2 ziglang==0.17.1)
SAM_BUILD=${SAM_BUILD:-1}
VENV=.local/sam-venv
ARCHITECTURE=${SAM_ARCHITECTURE:-arm64}
REGION=us-east-1 # any region: nothing is sent to AWS

export SAM_CLI_TELEMETRY=0
export PATH="$PWD/$VENV/bin:$PATH"

step() { printf '\n\033[1m==> %s\033[0m (%ss so far)\n' "$1" "$SECONDS"; }
fail() {
    echo "check.sh: $*" >&2
    exit 1
}

case "$ARCHITECTURE" in
arm64) RUST_TARGET=aarch64-unknown-linux-gnu ELF_MACHINE=b7 ;;
x86_64) RUST_TARGET=x86_64-unknown-linux-gnu ELF_MACHINE=3e ;;
*) fail "SAM_ARCHITECTURE must be arm64 or x86_64, not $ARCHITECTURE" ;;
esac

TOOLS=("${CHECK_TOOLS[@]}")
[ "$SAM_BUILD" = 0 ] || TOOLS+=("${BUILD_TOOLS[@]}")

step "tools in $VENV"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
# $VENV/.tools lists the tools installed, one a line; only the missing ones are installed.
missing=()
for tool in "${TOOLS[@]}"; do
    grep -qxF "$tool" "$VENV/.tools" 2>/dev/null || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${missing[@]}"
    printf '%s\n' "${missing[@]}" >>"$VENV/.tools"
else
    echo "up to date: ${TOOLS[*]}"
fi
if [ "$SAM_BUILD" != 0 ] && ! rustup target list --installed | grep -qx "$RUST_TARGET"; then
    rustup target add "$RUST_TARGET"
fi

step "cfn-lint template.yaml"
cfn-lint template.yaml

step "sam validate --lint"
sam validate --lint --region "$REGION"

step "template tests"
python infra/sam/test_template.py

if [ "$SAM_BUILD" = "0" ]; then
    echo "sam build skipped (SAM_BUILD=0); run bash infra/sam/check.sh for the full check"
    exit 0
fi

step "sam build ($ARCHITECTURE)"
rm -rf .aws-sam/build
sam build --build-in-source --region "$REGION" --parameter-overrides "Architecture=$ARCHITECTURE"

step "bootstrap of every function"
functions=$(python - <<'EOF'
from cfnlint.decode import decode
template, _ = decode("template.yaml")
print(" ".join(n for n, r in template["Resources"].items() if r["Type"] == "AWS::Serverless::Function"))
EOF
)
[ -n "$functions" ] || fail "no functions found in template.yaml"
for fn in $functions; do
    bootstrap=.aws-sam/build/$fn/bootstrap
    [ -f "$bootstrap" ] || fail "$bootstrap is missing"
    [ "$(od -An -N4 -tx1 "$bootstrap" | tr -d ' ')" = 7f454c46 ] || fail "$bootstrap is not an ELF binary"
    [ "$(od -An -j18 -N1 -tx1 "$bootstrap" | tr -d ' ')" = "$ELF_MACHINE" ] || fail "$bootstrap is not built for $ARCHITECTURE"
    printf '%-28s %s bytes\n' "$fn" "$(wc -c <"$bootstrap" | tr -d ' ')"
done

printf '\ncheck.sh: all checks passed in %ss\n' "$SECONDS"
