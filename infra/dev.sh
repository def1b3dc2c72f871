#!/usr/bin/env bash
# Runs the BFF locally with everything it talks to:
#
#   bash infra/dev.sh [--store memory|dynamodb]
#
# - a local OpenID provider (infra/provider.mjs) with a client for the BFF and real
#   login and consent pages,
# - the demo resource API (served by the same Node process),
# - bff-local (release build), serving the demo page (infra/demo) and /auth/*, /api/*
#   on one origin,
# - with --store dynamodb (or BFF_STORE=dynamodb) and no AWS_ENDPOINT_URL_DYNAMODB:
#   DynamoDB Local as well.
#
# It installs the npm packages and builds bff-local when needed, checks that every part
# answers, then prints the URL to open. Ctrl-C stops everything.
#
# Ports: PROVIDER_PORT (9000), API_PORT (9001), BFF_PORT (8080), DYNAMODB_PORT (8000).
# Logs: target/dev/ (bff-local's is also shown live).

set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# Only npm_stale is used: this script has its own output style (ok, info, die below).
# shellcheck source=infra/lib.sh
source infra/lib.sh

PROVIDER_PORT="${PROVIDER_PORT:-9000}"
API_PORT="${API_PORT:-9001}"
BFF_PORT="${BFF_PORT:-8080}"
DYNAMODB_PORT="${DYNAMODB_PORT:-8000}"
BFF_STORE="${BFF_STORE:-memory}"
TEST_USER=alice

usage() {
    cat <<EOF
usage: bash infra/dev.sh [--store memory|dynamodb]

  --store memory     sessions in bff-local's memory (the default)
  --store dynamodb   sessions in DynamoDB: DynamoDB Local (needs Java), or the endpoint
                     in AWS_ENDPOINT_URL_DYNAMODB when set
  -h, --help         this text

Environment: BFF_STORE (same as --store), BFF_PORT (8080), PROVIDER_PORT (9000),
API_PORT (9001), DYNAMODB_PORT (8000).
EOF
}

while [[ $# -gt 0 ]]; do
    case "$1" in
        --store) [[ $# -ge 2 ]] || { usage >&2; exit 2; }; BFF_STORE=$2; shift 2 ;;
        --store=*) BFF_STORE=${1#--store=}; shift ;;
        -h | --help) usage; exit 0 ;;
        *) printf 'dev.sh: unknown argument %s\n\n' "$1" >&2; usage >&2; exit 2 ;;
    esac
done
case "$BFF_STORE" in
    memory | dynamodb) ;;
    *) printf 'dev.sh: --store must be memory or dynamodb, not %s\n' "$BFF_STORE" >&2; exit 2 ;;
esac

# --- Output -----------------------------------------------------------------------
# Colour and the live progress line only on a terminal (and not with NO_COLOR).

if [[ -t 2 && -z "${NO_COLOR:-}" ]]; then
    TTY=1 BOLD=$'\033[1m' DIM=$'\033[2m' RED=$'\033[31m' GREEN=$'\033[32m' YELLOW=$'\033[33m' CYAN=$'\033[36m' RESET=$'\033[0m'
else
    TTY='' BOLD='' DIM='' RED='' GREEN='' YELLOW='' CYAN='' RESET=''
fi

ok() { printf '  %s✓%s %-16s %s\n' "$GREEN" "$RESET" "$1" "${2:-}" >&2; }
info() { printf '  %s•%s %s\n' "$CYAN" "$RESET" "$*" >&2; }
die() { printf '\n  %s✗ %s%s\n' "$RED$BOLD" "$*" "$RESET" >&2; exit 1; }

# Prints the last lines of a log file, indented, after a failure.
show_log() {
    [[ -s "$1" ]] || return 0
    printf '\n  %s--- last lines of %s ---%s\n' "$DIM" "$1" "$RESET" >&2
    tail -n "${2:-25}" "$1" | sed 's/^/    /' >&2
}

elapsed() {
    local s=$1
    if ((s >= 60)); then printf '%dm%02ds' $((s / 60)) $((s % 60)); else printf '%ds' "$s"; fi
}

for tool in node npm cargo curl; do
    command -v "$tool" >/dev/null 2>&1 || die "'$tool' is required but not on PATH"
done

LOG_DIR=target/dev
mkdir -p "$LOG_DIR"
PIDS=()
NAMES=()
SPINNER=''

# shellcheck disable=SC2317  # invoked by the traps below
cleanup() {
    local status=$?
    trap - INT TERM HUP EXIT
    # Whatever fails from here on (a process already gone), stop the rest.
    set +e
    if [[ -n "$SPINNER" ]]; then
        kill "$SPINNER" 2>/dev/null
        printf '\r\033[K' >&2
    fi
    if ((${#PIDS[@]})); then
        local shown
        shown="$(printf '%s, ' "${NAMES[@]}" | sed 's/, log, /, /; s/, $//; s/, log$//')"
        printf '\n  %sStopping %s…%s' "$BOLD" "$shown" "$RESET" >&2
        local pid
        for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
        for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
        printf ' %sdone%s\n' "$GREEN" "$RESET" >&2
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# Remembers a background process ($1, the pid) by a name ($2) to stop it at the end.
track() {
    PIDS+=("$1")
    NAMES+=("$2")
}

# Runs "$@" in the foreground with its output in $3, showing $1 and a live progress
# line (elapsed time, last line of the log) on a terminal, then $2 when done. On
# failure shows the end of the log.
with_progress() {
    local label=$1 done_label=$2 log=$3 start=$SECONDS status=0
    shift 3
    if [[ -n "$TTY" ]]; then
        (
            local frames=(⠋ ⠙ ⠹ ⠸ ⠼ ⠴ ⠦ ⠧ ⠇ ⠏) i=0 cols last text
            cols="$(tput cols 2>/dev/null || echo 80)"
            while :; do
                last="$(tail -n 1 "$log" 2>/dev/null | tr -d '\r' | sed 's/^ *//')"
                text="$label · $(elapsed $((SECONDS - start))) · $last"
                # One screen line, or \r cannot redraw it.
                printf '\r\033[K  %s%s%s %s' "$CYAN" "${frames[i++ % 10]}" "$RESET" "${text:0:cols-6}" >&2
                sleep 0.2
            done
        ) &
        SPINNER=$!
    else
        info "$label…"
    fi
    # In the foreground: Ctrl-C reaches the command and its children directly.
    "$@" >"$log" 2>&1 || status=$?
    if [[ -n "$SPINNER" ]]; then
        kill "$SPINNER" 2>/dev/null || true
        wait "$SPINNER" 2>/dev/null || true
        SPINNER=''
        printf '\r\033[K' >&2
    fi
    if ((status != 0)); then
        show_log "$log" 40
        die "$label failed (exit $status); full log: $log"
    fi
    ok "$done_label" "${DIM}$(elapsed $((SECONDS - start)))${RESET}"
}

# Waits until the file $1 holds a line starting with "READY "; prints its JSON.
# $2 is the pid of the process that writes it, $3 a name, $4 its log.
wait_ready() {
    local file=$1 pid=$2 name=$3 log=$4 line
    for _ in $(seq 1 300); do
        line="$(grep -m1 '^READY ' "$file" 2>/dev/null || true)"
        if [[ -n "$line" ]]; then
            printf '%s\n' "${line#READY }"
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            show_log "$log"
            die "$name exited before it was ready"
        fi
        sleep 0.1
    done
    show_log "$log"
    die "$name was not ready after 30 s"
}

# Extracts a string field from a flat JSON object: json_field '{"a":"b"}' a -> b
json_field() {
    sed -n "s/.*\"$2\":\"\\([^\"]*\\)\".*/\\1/p" <<<"$1"
}

port_free() {
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

printf '\n%sBFF local stack%s %s(store: %s)%s\n\n' "$BOLD" "$RESET" "$DIM" "$BFF_STORE" "$RESET" >&2

for port_var in PROVIDER_PORT API_PORT BFF_PORT; do
    port_free "${!port_var}" || die "port ${!port_var} is in use (another dev.sh?); choose another with $port_var=…"
done

# --- Node packages and build ---------------------------------------------------------

if npm_stale infra; then
    with_progress "Installing the npm packages (npm ci)" "npm packages" "$LOG_DIR/npm.log" \
        bash -c 'cd infra && npm ci --no-audit --no-fund'
else
    ok "npm packages" "${DIM}up to date${RESET}"
fi

if [[ ! -x target/release/bff-local ]]; then
    info "First build of bff-local: a release build takes several minutes."
fi
with_progress "Building bff-local (release)" "bff-local built" \
    "$LOG_DIR/build.log" cargo build --release -p bff-local

# --- DynamoDB Local (only for the dynamodb store without an endpoint) ----------------

export BFF_STORE
if [[ "$BFF_STORE" == dynamodb ]]; then
    export AWS_REGION="${AWS_REGION:-us-east-1}"
    export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-dummy}"
    export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-dummy}"
    if [[ -z "${AWS_ENDPOINT_URL_DYNAMODB:-}" ]]; then
        command -v java >/dev/null 2>&1 || die "--store dynamodb needs Java for DynamoDB Local (or set AWS_ENDPOINT_URL_DYNAMODB)"
        port_free "$DYNAMODB_PORT" || die "port $DYNAMODB_PORT is in use; choose another with DYNAMODB_PORT=…"
        node infra/dynamodb-local.mjs --port "$DYNAMODB_PORT" >"$LOG_DIR/dynamodb.ready" 2>"$LOG_DIR/dynamodb.log" &
        track $! "DynamoDB Local"
        ddb_ready="$(wait_ready "$LOG_DIR/dynamodb.ready" "$!" "DynamoDB Local" "$LOG_DIR/dynamodb.log")"
        export AWS_ENDPOINT_URL_DYNAMODB
        AWS_ENDPOINT_URL_DYNAMODB="$(json_field "$ddb_ready" endpoint)"
        ok "DynamoDB Local" "$AWS_ENDPOINT_URL_DYNAMODB"
    else
        ok "DynamoDB" "$AWS_ENDPOINT_URL_DYNAMODB"
    fi
fi

# --- OpenID provider and demo API -----------------------------------------------------

CLIENT_ID=bff-local
if command -v openssl >/dev/null 2>&1; then
    CLIENT_SECRET="$(openssl rand -hex 32)"
else
    CLIENT_SECRET="$(node -e 'process.stdout.write(require("node:crypto").randomBytes(32).toString("hex"))')"
fi
PUBLIC_URL="http://localhost:$BFF_PORT"
# A fresh key each run seals the tokens this run stores (AES-256-GCM, 32 bytes).
TOKEN_KEY="$(node -e 'process.stdout.write(require("node:crypto").randomBytes(32).toString("base64"))')"

PROVIDER_CLIENT_ID="$CLIENT_ID" \
PROVIDER_CLIENT_SECRET="$CLIENT_SECRET" \
PROVIDER_REDIRECT_URIS="$PUBLIC_URL/auth/callback" \
PROVIDER_POST_LOGOUT_REDIRECT_URIS="$PUBLIC_URL/" \
    node infra/provider.mjs --port "$PROVIDER_PORT" --api-port "$API_PORT" \
    >"$LOG_DIR/provider.ready" 2>"$LOG_DIR/provider.log" &
track $! "provider"
provider_ready="$(wait_ready "$LOG_DIR/provider.ready" "$!" "The OpenID provider" "$LOG_DIR/provider.log")"
ISSUER="$(json_field "$provider_ready" issuer)"
API_URL="$(json_field "$provider_ready" api)"

# --- BFF ------------------------------------------------------------------------------

BFF_ISSUER="$ISSUER" \
BFF_CLIENT_ID="$CLIENT_ID" \
BFF_CLIENT_SECRET="$CLIENT_SECRET" \
BFF_TOKEN_KEYS="dev:$TOKEN_KEY" \
BFF_PUBLIC_URL="$PUBLIC_URL" \
BFF_UPSTREAM_URL="$API_URL" \
BFF_LISTEN="127.0.0.1:$BFF_PORT" \
BFF_STATIC_DIR=infra/demo \
    target/release/bff-local >"$LOG_DIR/bff-local.log" 2>&1 &
bff_pid=$!
track "$bff_pid" "bff-local"

code=000
for _ in $(seq 1 300); do
    code="$(curl -s -o /dev/null -w '%{http_code}' "$PUBLIC_URL/auth/me" || true)"
    [[ "$code" != 000 ]] && break
    if ! kill -0 "$bff_pid" 2>/dev/null; then
        show_log "$LOG_DIR/bff-local.log"
        die "bff-local exited during start-up"
    fi
    sleep 0.1
done
[[ "$code" != 000 ]] || { show_log "$LOG_DIR/bff-local.log"; die "bff-local did not answer on $PUBLIC_URL after 30 s"; }

# --- Health checks ----------------------------------------------------------------------
# Each part answers as it should, and the BFF can reach the provider.

status_of() { curl -s -o /dev/null -w '%{http_code}' "$@" || true; }
check() {
    local name=$1 want=$2 got=$3
    [[ "$got" == "$want" ]] || { show_log "$LOG_DIR/bff-local.log" 15; die "health check failed: $name answered $got, expected $want"; }
}
check "provider discovery" 200 "$(status_of "$ISSUER/.well-known/openid-configuration")"
ok "OpenID provider" "$ISSUER"
check "demo API without a token" 401 "$(status_of "$API_URL/hello")"
ok "Demo API" "$API_URL ${DIM}(behind the BFF at /api/*)${RESET}"
check "GET /auth/me without a session" 401 "$code"
check "GET / (the demo page)" 200 "$(status_of "$PUBLIC_URL/")"
login_to="$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' "$PUBLIC_URL/auth/login?returnTo=/" || true)"
[[ "$login_to" == "302 $ISSUER/"* ]] ||
    { show_log "$LOG_DIR/bff-local.log" 15; die "health check failed: /auth/login answered '$login_to', expected a redirect to $ISSUER"; }
ok "bff-local" "$PUBLIC_URL ${DIM}(store: $BFF_STORE; /auth/me, /auth/login → provider, demo page: OK)${RESET}"

cat >&2 <<EOF

  ${BOLD}${GREEN}Open ${PUBLIC_URL}${RESET}

  ${YELLOW}${BOLD}Test user${RESET}   ${BOLD}${TEST_USER}${RESET} with any password ${DIM}(any user name works: bob, carol.smith …;
              only for this local provider)${RESET}

  ${DIM}Logs        $LOG_DIR/ (bff-local's below)
  Press Ctrl-C to stop everything.${RESET}

EOF

# bff-local's log, live, until it stops.
tail --pid="$bff_pid" -n +1 -f "$LOG_DIR/bff-local.log" &
track $! "log"

# Stop everything as soon as any one of the processes ends.
set +e
wait -n
status=$?
for i in "${!PIDS[@]}"; do
    if ! kill -0 "${PIDS[$i]}" 2>/dev/null; then
        printf '\n  %s✗ %s exited (status %s); stopping the rest%s\n' "$RED$BOLD" "${NAMES[$i]}" "$status" "$RESET" >&2
        [[ "${NAMES[$i]}" == provider ]] && show_log "$LOG_DIR/provider.log"
        break
    fi
done
exit "$status"
