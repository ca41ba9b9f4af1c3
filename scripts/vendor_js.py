"""The dashboard's JavaScript and CSS from npm, at pinned versions, checked by their integrity.

`python -m scripts.vendor_js` fetches each package of `PACKAGES` with `npm pack`, refuses a
tarball whose sha512 is not the pinned `integrity` (npm's `dist.integrity`), and writes the chosen
files into `reconciler/server/static/vendor/` with `VENDORED.json`: each file's package, version,
path in the package and sha256. The files are committed, so the daemon fetches nothing at run time
and needs no build step; `tests/unit/server/test_vendored.py` holds the files to the manifest and,
in the slow suite, the manifest to npm.

`python -m scripts.vendor_js --test-assets DIR` fetches the test-only packages (`TEST_PACKAGES`:
axe-core, injected by the browser tests) into DIR the same way (`make test-assets`), once.

To move a package to a new version: change its version and integrity here (`npm view
<name>@<version> dist.integrity`), run the script, review the diff, commit.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENDOR = ROOT / "reconciler" / "server" / "static" / "vendor"
MANIFEST = VENDOR / "VENDORED.json"


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    integrity: str  # npm's dist.integrity (sha512, base64)
    files: dict[str, str]  # path in the package (under package/) -> file name in the destination


PACKAGES = (
    # Metric charts on the run page: small (50 kB), no dependencies, fast with many points.
    Package(
        "uplot",
        "1.6.32",
        "sha512-KIMVnG68zvu5XXUbC4LQEPnhwOxBuLyW1AHtpm6IKTXImkbLgkMy+jabjLgSLMasNuGGzQm/ep3tOkyTxpiQIw==",
        {
            "dist/uPlot.iife.min.js": "uPlot.iife.min.js",
            "dist/uPlot.min.css": "uPlot.min.css",
            "LICENSE": "uPlot.LICENSE",
        },
    ),
    # /docs: the API's description shown by Swagger UI, served from here rather than a CDN.
    Package(
        "swagger-ui-dist",
        "5.35.0",
        "sha512-U06rpMtW9V3XPGOBeamTUSr0Z09jMX4IJuANpE/EZbAhw0G8CgwrzU4YmXkn/h0wCDNsXdGarTNNHC3sU8yVUQ==",
        {
            "swagger-ui-bundle.js": "swagger-ui-bundle.js",
            "swagger-ui.css": "swagger-ui.css",
            "LICENSE": "swagger-ui.LICENSE",
        },
    ),
)

TEST_PACKAGES = (
    # Accessibility rules the browser tests run in each page (never shipped with the daemon).
    Package(
        "axe-core",
        "4.14.1",
        "sha512-FHfa+lmNjQZfJz1q8wKqIDwC6DExcHt/pkjNQb09a3NPjCKg2rhu5qb2S4r76ASyFNNtuFooJpZe37OgudVGtQ==",
        {"axe.min.js": "axe.min.js", "LICENSE": "axe-core.LICENSE"},
    ),
)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _integrity(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def fetch(package: Package) -> dict[str, bytes]:
    """The chosen files of `package`, from a tarball `npm pack` gave and its integrity vouches for."""
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is needed to fetch the dashboard's vendored JavaScript")
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [npm, "pack", "--silent", "--pack-destination", tmp, f"{package.name}@{package.version}"],
            check=True,
            cwd=tmp,
            stdout=subprocess.DEVNULL,
            timeout=600,
        )
        (tarball,) = Path(tmp).glob("*.tgz")
        data = tarball.read_bytes()
        if _integrity(data) != package.integrity:
            raise RuntimeError(f"{package.name}@{package.version}: the tarball is not the pinned one (integrity)")
        found: dict[str, bytes] = {}
        with tarfile.open(tarball) as tar:
            for inside, name in package.files.items():
                member = tar.extractfile(f"package/{inside}")
                if member is None:
                    raise RuntimeError(f"{package.name}@{package.version} has no {inside}")
                found[name] = member.read()
        return found


def manifest_of(packages: tuple[Package, ...], files: dict[str, tuple[Package, str, bytes]]) -> dict[str, object]:
    return {
        "note": "written by scripts/vendor_js.py from npm; do not edit by hand",
        "packages": {p.name: {"version": p.version, "integrity": p.integrity} for p in packages},
        "files": {
            name: {"package": pkg.name, "version": pkg.version, "path": inside, "sha256": sha256(data)}
            for name, (pkg, inside, data) in sorted(files.items())
        },
    }


def collect(packages: tuple[Package, ...]) -> dict[str, tuple[Package, str, bytes]]:
    files: dict[str, tuple[Package, str, bytes]] = {}
    for package in packages:
        fetched = fetch(package)
        for inside, name in package.files.items():
            files[name] = (package, inside, fetched[name])
    return files


def vendor(destination: Path = VENDOR) -> None:
    files = collect(PACKAGES)
    destination.mkdir(parents=True, exist_ok=True)
    for old in destination.iterdir():
        if old.name not in files and old.name != MANIFEST.name:
            old.unlink()
    for name, (_, _, data) in files.items():
        (destination / name).write_bytes(data)
    (destination / MANIFEST.name).write_text(json.dumps(manifest_of(PACKAGES, files), indent=2) + "\n")


def test_assets(destination: Path) -> Path:
    """The test-only packages in `destination/<name>-<version>/` (fetched once)."""
    for package in TEST_PACKAGES:
        target = destination / f"{package.name}-{package.version}"
        done = target / ".complete"
        if done.exists():
            continue
        target.mkdir(parents=True, exist_ok=True)
        for name, data in fetch(package).items():
            (target / name).write_bytes(data)
        done.write_text(package.integrity + "\n")
    return destination


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--test-assets", type=Path, help="fetch the test-only packages into this directory")
    args = parser.parse_args(argv)
    if args.test_assets is not None:
        print(f"test JavaScript in {test_assets(args.test_assets)}")
    else:
        vendor()
        print(f"vendored into {VENDOR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
