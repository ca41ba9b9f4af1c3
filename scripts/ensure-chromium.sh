#!/usr/bin/env bash
# Installs Chromium (Debian's package) when it is missing: the dashboard's browser tests drive it
# with Playwright for Python through `executable_path` (Playwright's own browser download is never
# used: it needs hosts other than the package registries).
set -euo pipefail

for candidate in chromium chromium-browser; do
    if command -v "$candidate" > /dev/null; then
        exit 0
    fi
done

SUDO=""
if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo > /dev/null; then
        SUDO="sudo"
    else
        echo "ensure-chromium: Chromium is not installed and we are not root; install the 'chromium' package" >&2
        exit 1
    fi
fi

echo "ensure-chromium: installing Chromium from Debian packages"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core
command -v chromium > /dev/null || {
    echo "ensure-chromium: installed, but no chromium on PATH" >&2
    exit 1
}
