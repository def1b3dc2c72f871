#!/usr/bin/env bash
# Runs the BFF locally with everything it talks to:
#
#   bash infra/dev.sh [--store memory|dynamodb]
#
# - a local OpenID provider (infra/provider.mjs) with a client for the BFF and real
#   login and consent pages,
# - the demo resource APIs (served by the same Node process), behind the BFF's BFF_APIS
#   routes: /api/orders with a token for the resource https://orders.example, /api/public
#   with no token, the rest of /api with the login's own token,
# - bff-local (built with the dev-local profile: optimised, quicker to build than the
#   release profile of the Lambda packages), serving the demo page (infra/demo) and
#   /auth/*, /api/* on one origin,
# - with --store dynamodb (or BFF_STORE=dynamodb) and no AWS_ENDPOINT_URL_DYNAMODB:
#   DynamoDB Local as well.
#
# It installs Node.js (when the one on PATH is too old) and the npm packages, builds
# bff-local when needed, checks that every part answers, then prints the URL to open.
# Ctrl-C stops everything.
#
# Ports: PROVIDER_PORT (9000), API_PORT (9001), BFF_PORT (8080), DYNAMODB_PORT (8000).
# Each is checked before the build and again right before its server starts; once a
# server is up, the port must be held by that very process (or its child), so another
# program on the port is named and refused rather than taken for the server.
# Logs: target/dev/ (bff-local's is also shown live; under $CARGO_TARGET_DIR when set).

set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# Only ensure_node and npm_stale are used: this script has its own output style (ok,
# info, die below).
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

ensure_node
for tool in node npm cargo curl; do
    command -v "$tool" >/dev/null 2>&1 || die "'$tool' is required but not on PATH"
done
command -v ss >/dev/null 2>&1 || die "'ss' is required but not on PATH (Debian package iproute2)"

TARGET_DIR="${CARGO_TARGET_DIR:-target}"
BFF_LOCAL="$TARGET_DIR/dev-local/bff-local"
LOG_DIR="$TARGET_DIR/dev"
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
        [[ -z "$TTY" ]] || printf '\r\033[K' >&2
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
# line (elapsed time, last line of the log) on a terminal, or the same as a new line
# every 30 s otherwise (a log file, CI), then $2 when done. On failure shows the end of
# the log.
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
        (
            local next=30 last
            while sleep 1; do
                ((SECONDS - start >= next)) || continue
                next=$((next + 30))
                last="$(tail -n 1 "$log" 2>/dev/null | tr -d '\r' | sed 's/^ *//' | cut -c1-100)"
                info "$label · $(elapsed $((SECONDS - start))) · ${last:-…}"
            done
        ) &
        SPINNER=$!
    fi
    # In the foreground: Ctrl-C reaches the command and its children directly.
    "$@" >"$log" 2>&1 || status=$?
    if [[ -n "$SPINNER" ]]; then
        kill "$SPINNER" 2>/dev/null || true
        wait "$SPINNER" 2>/dev/null || true
        SPINNER=''
        [[ -z "$TTY" ]] || printf '\r\033[K' >&2
    fi
    if ((status != 0)); then
        show_log "$log" 40
        die "$label failed (exit $status); full log: $log"
    fi
    ok "$done_label" "${DIM}$(elapsed $((SECONDS - start)))${RESET}"
}

# Waits until the file $1 holds a line starting with "READY "; prints its JSON.
# $2 is the pid of the process that writes it, $3 a name, $4 its log; then pairs of a
# port it listens on and the port's variable, to name who holds one if it cannot start.
wait_ready() {
    local file=$1 pid=$2 name=$3 log=$4 line
    shift 4
    for _ in $(seq 1 300); do
        line="$(grep -m1 '^READY ' "$file" 2>/dev/null || true)"
        if [[ -n "$line" ]]; then
            printf '%s\n' "${line#READY }"
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            local who
            while (($# >= 2)); do
                who="$(holders "$1")"
                [[ -z "$who" ]] || die "$name could not listen on port $1: it is in use by $who; stop it, or choose another port with $2=…"
                shift 2
            done
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

# --- Ports ----------------------------------------------------------------------------
# Who listens on a TCP port, on any local address (127.0.0.1, ::1, 0.0.0.0 …): `ss`.

# The listening sockets on port $1, one "name pid" line per process holding one ("? ?"
# for a socket whose process this user cannot see).
listeners() {
    ss -Hltnp "sport = :$1" 2>/dev/null | while read -r line; do
        if [[ "$line" == *'users:(('* ]]; then
            grep -o '("[^"]*",pid=[0-9]*' <<<"$line" | sed 's/^("\(.*\)",pid=\([0-9]*\)$/\1 \2/'
        else
            echo '? ?'
        fi
    done | sort -u
}

# "python3 (pid 1234), node (pid 99)": the programs listening on port $1.
holders() {
    listeners "$1" | while read -r name pid; do
        if [[ "$pid" == '?' ]]; then echo 'a program of another user'; else echo "$name (pid $pid)"; fi
    done | paste -sd, - | sed 's/,/, /g'
}

# True when process $2 is process $1 or one of its descendants.
descends_from() {
    local root=$1 pid=$2
    for _ in $(seq 1 32); do
        [[ "$pid" == "$root" ]] && return 0
        pid="$(ps -o ppid= -p "$pid" 2>/dev/null | tr -d ' ')"
        [[ -n "$pid" && "$pid" != 0 && "$pid" != 1 ]] || return 1
    done
    return 1
}

# Dies unless port $1 is free; $2 names the variable that chooses it.
require_free() {
    local port=$1 var=$2 who
    who="$(holders "$port")"
    [[ -z "$who" ]] || die "port $port is in use by $who; stop it, or choose another port with $var=…"
}

# Whether port $2 is held by the process $1 started (or its children) and nobody else:
# prints "ours", "free" or the other holders.
owner_of() {
    local root=$1 port=$2 name pid others='' any=''
    while read -r name pid; do
        [[ -n "$name" ]] || continue
        any=1
        [[ "$pid" != '?' ]] && descends_from "$root" "$pid" && continue
        others+="${others:+, }$([[ "$pid" == '?' ]] && echo 'a program of another user' || echo "$name (pid $pid)")"
    done < <(listeners "$port")
    if [[ -n "$others" ]]; then echo "$others"; elif [[ -n "$any" ]]; then echo ours; else echo free; fi
}

# Dies unless port $3 is held by process $1 (named $2) or its children alone; $4 names
# the port's variable.
require_owned() {
    local pid=$1 name=$2 port=$3 var=$4 owner
    owner="$(owner_of "$pid" "$port")"
    case "$owner" in
        ours) ;;
        free) die "$name (pid $pid) does not listen on port $port" ;;
        *) die "port $port is held by $owner, not by the $name this script started (pid $pid); stop it, or choose another port with $var=…" ;;
    esac
}

# After the process named $1 (log $2) exited during start-up: names the program holding
# port $3 (variable $4) when there is one, the cause of most such exits.
died_on_port() {
    local name=$1 log=$2 port=$3 var=$4 who
    who="$(holders "$port")"
    [[ -z "$who" ]] || die "$name could not listen on port $port: it is in use by $who; stop it, or choose another port with $var=…"
    show_log "$log"
    die "$name exited during start-up"
}

printf '\n%sBFF local stack%s %s(store: %s)%s\n\n' "$BOLD" "$RESET" "$DIM" "$BFF_STORE" "$RESET" >&2

# Checked now, before a build that may take minutes, and again right before each start.
for port_var in PROVIDER_PORT API_PORT BFF_PORT; do
    require_free "${!port_var}" "$port_var"
done
[[ "$BFF_STORE" != dynamodb || -n "${AWS_ENDPOINT_URL_DYNAMODB:-}" ]] || require_free "$DYNAMODB_PORT" DYNAMODB_PORT

# --- Node packages and build ---------------------------------------------------------

if npm_stale infra; then
    with_progress "Installing the npm packages (npm ci)" "npm packages" "$LOG_DIR/npm.log" \
        bash -c 'cd infra && npm ci --no-audit --no-fund'
else
    ok "npm packages" "${DIM}up to date${RESET}"
fi

if [[ ! -x "$BFF_LOCAL" ]]; then
    info "First build of bff-local: about 5 minutes on 2 cores (profile dev-local); later runs take seconds."
fi
with_progress "Building bff-local (profile dev-local)" "bff-local built" \
    "$LOG_DIR/build.log" cargo build --profile dev-local --locked -p bff-local

# --- DynamoDB Local (only for the dynamodb store without an endpoint) ----------------

export BFF_STORE
if [[ "$BFF_STORE" == dynamodb ]]; then
    export AWS_REGION="${AWS_REGION:-us-east-1}"
    export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-dummy}"
    export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-dummy}"
    if [[ -z "${AWS_ENDPOINT_URL_DYNAMODB:-}" ]]; then
        command -v java >/dev/null 2>&1 || die "--store dynamodb needs Java for DynamoDB Local (or set AWS_ENDPOINT_URL_DYNAMODB)"
        require_free "$DYNAMODB_PORT" DYNAMODB_PORT
        node infra/dynamodb-local.mjs --port "$DYNAMODB_PORT" >"$LOG_DIR/dynamodb.ready" 2>"$LOG_DIR/dynamodb.log" &
        ddb_pid=$!
        track "$ddb_pid" "DynamoDB Local"
        ddb_ready="$(wait_ready "$LOG_DIR/dynamodb.ready" "$ddb_pid" "DynamoDB Local" "$LOG_DIR/dynamodb.log" "$DYNAMODB_PORT" DYNAMODB_PORT)"
        # DynamoDB Local is Java, started by that node process: its child.
        require_owned "$ddb_pid" "DynamoDB Local" "$DYNAMODB_PORT" DYNAMODB_PORT
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

require_free "$PROVIDER_PORT" PROVIDER_PORT
require_free "$API_PORT" API_PORT
PROVIDER_CLIENT_ID="$CLIENT_ID" \
PROVIDER_CLIENT_SECRET="$CLIENT_SECRET" \
PROVIDER_REDIRECT_URIS="$PUBLIC_URL/auth/callback" \
PROVIDER_POST_LOGOUT_REDIRECT_URIS="$PUBLIC_URL/" \
    node infra/provider.mjs --port "$PROVIDER_PORT" --api-port "$API_PORT" \
    >"$LOG_DIR/provider.ready" 2>"$LOG_DIR/provider.log" &
provider_pid=$!
track "$provider_pid" "provider"
provider_ready="$(wait_ready "$LOG_DIR/provider.ready" "$provider_pid" "The OpenID provider" "$LOG_DIR/provider.log" \
    "$PROVIDER_PORT" PROVIDER_PORT "$API_PORT" API_PORT)"
require_owned "$provider_pid" "OpenID provider" "$PROVIDER_PORT" PROVIDER_PORT
require_owned "$provider_pid" "demo API" "$API_PORT" API_PORT
ISSUER="$(json_field "$provider_ready" issuer)"
API_URL="$(json_field "$provider_ready" api)"

# --- BFF ------------------------------------------------------------------------------
# Three APIs behind the BFF, all served by the demo API: /api/orders with a token for the
# resource https://orders.example (a JWT whose aud says so), /api/public with no token,
# and the rest of /api with the login's own token. The login asks for api:read, which
# the orders token then carries.

APIS="[{\"path\":\"/api/orders\",\"upstream\":\"$API_URL/orders\",\"resource\":\"https://orders.example\"},"
APIS+="{\"path\":\"/api/public\",\"upstream\":\"$API_URL/public\",\"token\":\"none\"},"
APIS+="{\"path\":\"/api\",\"upstream\":\"$API_URL\"}]"

require_free "$BFF_PORT" BFF_PORT
# BFF_UPSTREAM_URL may not come with BFF_APIS: one from the caller's shell is dropped.
env -u BFF_UPSTREAM_URL \
BFF_ISSUER="$ISSUER" \
BFF_CLIENT_ID="$CLIENT_ID" \
BFF_CLIENT_SECRET="$CLIENT_SECRET" \
BFF_TOKEN_KEYS="dev:$TOKEN_KEY" \
BFF_PUBLIC_URL="$PUBLIC_URL" \
BFF_APIS="$APIS" \
BFF_SCOPES="openid profile email offline_access api:read" \
BFF_LISTEN="127.0.0.1:$BFF_PORT" \
BFF_STATIC_DIR=infra/demo \
    "$BFF_LOCAL" >"$LOG_DIR/bff-local.log" 2>&1 &
bff_pid=$!
track "$bff_pid" "bff-local"

# Ready when the port is held by this bff-local alone and it answers; an answer from
# anything else on the port is refused, naming it.
code=000
for _ in $(seq 1 300); do
    if ! kill -0 "$bff_pid" 2>/dev/null; then
        died_on_port bff-local "$LOG_DIR/bff-local.log" "$BFF_PORT" BFF_PORT
    fi
    owner="$(owner_of "$bff_pid" "$BFF_PORT")"
    if [[ "$owner" == ours ]]; then
        code="$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' "$PUBLIC_URL/auth/me" || true)"
        [[ "$code" != 000 ]] && break
    elif [[ "$owner" != free ]]; then
        require_owned "$bff_pid" bff-local "$BFF_PORT" BFF_PORT
    fi
    sleep 0.1
done
[[ "$code" != 000 ]] || { show_log "$LOG_DIR/bff-local.log"; die "bff-local did not answer on $PUBLIC_URL after 30 s"; }
# Still this bff-local's alone (nothing opened the port on another address meanwhile).
require_owned "$bff_pid" bff-local "$BFF_PORT" BFF_PORT

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
check "orders demo API without a token" 401 "$(status_of "$API_URL/orders/recent")"
check "public demo API" 200 "$(status_of "$API_URL/public/status")"
ok "Demo APIs" "$API_URL ${DIM}(behind the BFF: /api/orders → /orders, /api/public → /public, /api/* → /*)${RESET}"
check "GET /auth/me without a session" 401 "$code"
# The routes are in place: the public API answers without a session, the others need one.
check "GET /api/public/status without a session" 200 "$(status_of -H 'X-CSRF: 1' "$PUBLIC_URL/api/public/status")"
check "GET /api/orders/recent without a session" 401 "$(status_of -H 'X-CSRF: 1' "$PUBLIC_URL/api/orders/recent")"
check "GET / (the demo page)" 200 "$(status_of "$PUBLIC_URL/")"
login_to="$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' "$PUBLIC_URL/auth/login?returnTo=/" || true)"
[[ "$login_to" == "302 $ISSUER/"* ]] ||
    { show_log "$LOG_DIR/bff-local.log" 15; die "health check failed: /auth/login answered '$login_to', expected a redirect to $ISSUER"; }
ok "bff-local" "$PUBLIC_URL ${DIM}(store: $BFF_STORE; /auth/me, /auth/login → provider, /api/public, /api/orders, demo page: OK)${RESET}"

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
