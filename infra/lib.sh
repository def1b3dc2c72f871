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
#   ensure_node and ensure_java for Node.js and Java (DynamoDB Local runs on it);
# - npm_stale DIR [PACKAGE] and npm_ci DIR [PACKAGE]: whether DIR's npm packages need
#   installing, and `npm ci` in DIR only then.

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

ensure_node() { ensure_command node nodejs npm; }
ensure_java() { ensure_command java openjdk-17-jre-headless; }

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
