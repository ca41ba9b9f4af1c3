"""The dashboard's vendored JavaScript and CSS are exactly what npm published at the pinned
versions: each file's sha256 is in VENDORED.json, written by scripts/vendor_js.py from tarballs
whose integrity it checked; nothing else is in the directory, and (slow suite) npm still gives the
same bytes."""

from __future__ import annotations

import hashlib
import json
import os
import shutil

import pytest

from scripts.vendor_js import MANIFEST, PACKAGES, VENDOR, fetch


def test_every_vendored_file_is_the_one_the_manifest_pins() -> None:
    manifest = json.loads(MANIFEST.read_text())
    files = manifest["files"]
    on_disk = {p.name for p in VENDOR.iterdir() if p.name != MANIFEST.name}
    assert on_disk == set(files), "files in static/vendor/ and VENDORED.json differ"
    for name, entry in files.items():
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == entry["sha256"], name
    assert {p.name: {"version": p.version, "integrity": p.integrity} for p in PACKAGES} == manifest["packages"]
    for package in PACKAGES:
        assert set(package.files.values()) <= set(files)


@pytest.mark.slow
def test_npm_gives_the_same_bytes() -> None:
    if shutil.which("npm") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("npm is needed to check the vendored files against the registry")
        pytest.skip("npm is not installed")
    for package in PACKAGES:
        for name, data in fetch(package).items():
            assert (VENDOR / name).read_bytes() == data, f"{name} differs from {package.name}@{package.version}"
