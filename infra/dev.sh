#!/usr/bin/env bash
# Runs the BFF locally with everything it talks to:
#
#   bash infra/dev.sh
#
# - a local OpenID provider (infra/provider.mjs) with a client for the BFF,
# - the demo resource API (served by the same Node process),
# - bff-local, serving the demo page (infra/demo) and /auth/*, /api/* on one origin,
# - with BFF_STORE=dynamodb and no AWS_ENDPOINT_URL_DYNAMODB: DynamoDB Local as well.
#
# Ports: PROVIDER_PORT (9000), API_PORT (9001), BFF_PORT (8080), DYNAMODB_PORT (8000).
# Ctrl-C stops everything.

set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

PROVIDER_PORT="${PROVIDER_PORT:-9000}"
API_PORT="${API_PORT:-9001}"
BFF_PORT="${BFF_PORT:-8080}"
DYNAMODB_PORT="${DYNAMODB_PORT:-8000}"
BFF_STORE="${BFF_STORE:-memory}"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'dev.sh: %s\n' "$*" >&2; exit 1; }

for tool in node npm cargo curl; do
    command -v "$tool" >/dev/null 2>&1 || die "'$tool' is required but not on PATH"
done

RUN_DIR="$(mktemp -d "${TMPDIR:-/tmp}/bff-dev.XXXXXX")"
PIDS=()

# shellcheck disable=SC2317  # invoked by the traps below
cleanup() {
    local status=$?
    trap - INT TERM EXIT
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$RUN_DIR"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Waits until the file $1 holds a line starting with "READY "; prints its JSON.
# $2 is the pid of the process that writes it, $3 a name for messages.
wait_ready() {
    local file=$1 pid=$2 name=$3 line
    for _ in $(seq 1 300); do
        line="$(grep -m1 '^READY ' "$file" 2>/dev/null || true)"
        if [[ -n "$line" ]]; then
            printf '%s\n' "${line#READY }"
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || die "$name exited before it was ready (see the messages above)"
        sleep 0.1
    done
    die "$name was not ready after 30 s"
}

# Extracts a string field from a flat JSON object: json_field '{"a":"b"}' a -> b
json_field() {
    sed -n "s/.*\"$2\":\"\\([^\"]*\\)\".*/\\1/p" <<<"$1"
}

# --- Node dependencies ------------------------------------------------------
if [[ ! -d infra/node_modules || infra/package-lock.json -nt infra/node_modules/.package-lock.json ]]; then
    say "Installing the local stack's Node packages (npm ci)"
    (cd infra && npm ci --no-audit --no-fund)
fi

# --- Build --------------------------------------------------------------------
say "Building bff-local (cargo build --release -p bff-local)"
cargo build --release -p bff-local

# --- DynamoDB Local (only for BFF_STORE=dynamodb without an endpoint) -----------
if [[ "$BFF_STORE" == dynamodb && -z "${AWS_ENDPOINT_URL_DYNAMODB:-}" ]]; then
    command -v java >/dev/null 2>&1 || die "BFF_STORE=dynamodb needs Java for DynamoDB Local (or set AWS_ENDPOINT_URL_DYNAMODB)"
    say "Starting DynamoDB Local on port $DYNAMODB_PORT"
    node infra/dynamodb-local.mjs --port "$DYNAMODB_PORT" >"$RUN_DIR/dynamodb.out" &
    PIDS+=("$!")
    ddb_ready="$(wait_ready "$RUN_DIR/dynamodb.out" "$!" "DynamoDB Local")"
    export AWS_ENDPOINT_URL_DYNAMODB
    AWS_ENDPOINT_URL_DYNAMODB="$(json_field "$ddb_ready" endpoint)"
    export AWS_REGION="${AWS_REGION:-us-east-1}"
    export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-dummy}"
    export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-dummy}"
fi

# --- OpenID provider and demo API -------------------------------------------------
CLIENT_ID=bff-local
if command -v openssl >/dev/null 2>&1; then
    CLIENT_SECRET="$(openssl rand -hex 32)"
else
    CLIENT_SECRET="$(node -e 'process.stdout.write(require("node:crypto").randomBytes(32).toString("hex"))')"
fi
PUBLIC_URL="http://localhost:$BFF_PORT"

say "Starting the OpenID provider on port $PROVIDER_PORT and the demo API on port $API_PORT"
PROVIDER_CLIENT_ID="$CLIENT_ID" \
PROVIDER_CLIENT_SECRET="$CLIENT_SECRET" \
PROVIDER_REDIRECT_URIS="$PUBLIC_URL/auth/callback" \
PROVIDER_POST_LOGOUT_REDIRECT_URIS="$PUBLIC_URL/" \
    node infra/provider.mjs --port "$PROVIDER_PORT" --api-port "$API_PORT" >"$RUN_DIR/provider.out" &
PIDS+=("$!")
provider_ready="$(wait_ready "$RUN_DIR/provider.out" "$!" "The OpenID provider")"
ISSUER="$(json_field "$provider_ready" issuer)"
API_URL="$(json_field "$provider_ready" api)"

# --- BFF --------------------------------------------------------------------------
say "Starting bff-local on $PUBLIC_URL (store: $BFF_STORE)"
BFF_ISSUER="$ISSUER" \
BFF_CLIENT_ID="$CLIENT_ID" \
BFF_CLIENT_SECRET="$CLIENT_SECRET" \
BFF_PUBLIC_URL="$PUBLIC_URL" \
BFF_UPSTREAM_URL="$API_URL" \
BFF_LISTEN="127.0.0.1:$BFF_PORT" \
BFF_STATIC_DIR=infra/demo \
BFF_STORE="$BFF_STORE" \
    target/release/bff-local &
bff_pid=$!
PIDS+=("$bff_pid")

for _ in $(seq 1 300); do
    code="$(curl -s -o /dev/null -w '%{http_code}' "$PUBLIC_URL/auth/me" || true)"
    [[ "$code" != 000 ]] && break
    kill -0 "$bff_pid" 2>/dev/null || die "bff-local exited during start-up (see the messages above)"
    sleep 0.1
done
[[ "$code" != 000 ]] || die "bff-local did not answer on $PUBLIC_URL after 30 s"

cat >&2 <<EOF

  Open $PUBLIC_URL — log in as any user name (e.g. alice) with any password.

  OpenID provider  $ISSUER
  Demo API         $API_URL
  Press Ctrl-C to stop everything.

EOF

# Stop everything as soon as any one of the processes ends.
set +e
wait -n
status=$?
say "A process of the local stack exited (status $status); stopping the rest"
exit "$status"
