#!/usr/bin/env bash
# Installs PostgreSQL (Debian's package: 15 on bookworm) when no server binaries are present.
# The tests start their own throw-away server with initdb + pg_ctl; nothing here starts one.
set -euo pipefail

if compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" > /dev/null; then
    exit 0
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo > /dev/null; then
        SUDO="sudo"
    else
        echo "ensure-postgres: PostgreSQL is not installed and we are not root; install the 'postgresql' package" >&2
        exit 1
    fi
fi

echo "ensure-postgres: installing PostgreSQL from Debian packages"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends postgresql
compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" > /dev/null || {
    echo "ensure-postgres: installed, but no pg_ctl under /usr/lib/postgresql/*/bin" >&2
    exit 1
}
