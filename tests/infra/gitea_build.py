"""Build a real Gitea from the Go module proxy, once per machine.

A real forge beats any fake: the contract tests run the same client-visible checks against the
fake forge and against this Gitea, so the fake cannot quietly drift from a real server. Gitea is
the one forge that can be built here: ``code.gitea.io/gitea`` is a Go module on the proxy.

Facts that fixed the choices below (measured on the 2-core machine):
- ``v1.26.0`` is the newest tag whose dependencies are all on the proxy (``v1.27.x`` moved some to
  ``gitea.dev/...`` paths that the proxy refuses).
- ``go install pkg@version`` cannot be used (the module has ``replace`` directives), so the module
  is downloaded and built in place; SQLite needs cgo and ``-tags sqlite,sqlite_unlock_notify``.
- Without ``bindata`` the binary reads ``options/`` and ``templates/`` from disk, so those two
  directories are kept beside it (``STATIC_ROOT_PATH``); the web UI's built assets are absent,
  which the REST API and git over HTTP do not need.
- The build takes about 11 minutes cold at ``nice 19 -p 1`` while another build runs; the Go build
  cache makes a rebuild take well under a minute.

Run ``python -m tests.infra.gitea_build`` (``make gitea``); prints the binary's path.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.infra.openapi_assets import cache_dir

GITEA_MODULE = "code.gitea.io/gitea"
GITEA_VERSION = "v1.26.0"
BUILD_TAGS = "sqlite sqlite_unlock_notify"


def install_dir() -> Path:
    return cache_dir().parent / "gitea" / GITEA_VERSION


def binary_path() -> Path:
    return install_dir() / "gitea"


def static_root() -> Path:
    return install_dir() / "static"


def is_built() -> bool:
    return binary_path().is_file() and (static_root() / "options" / "locale").is_dir()


def _go() -> str:
    found = shutil.which("go") or "/usr/local/go/bin/go"
    if not Path(found).exists():
        raise RuntimeError("`go` is needed to build Gitea and was not found")
    return found


def build() -> Path:
    if is_built():
        return binary_path()
    target = install_dir()
    target.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "CGO_ENABLED": "1", "GOFLAGS": "-modcacherw"}
    out = subprocess.run(
        [_go(), "mod", "download", "-json", f"{GITEA_MODULE}@{GITEA_VERSION}"],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    module_dir = Path(json.loads(out.stdout)["Dir"])
    with tempfile.TemporaryDirectory(dir=target) as tmp:
        src = Path(tmp) / "src"
        shutil.copytree(module_dir, src)
        for path in [src, *src.rglob("*")]:
            path.chmod(path.stat().st_mode | 0o200)
        # nice and -p 1: the machine is shared with other builds.
        subprocess.run(
            [
                "nice",
                "-n",
                "19",
                _go(),
                "build",
                "-p",
                "1",
                "-tags",
                BUILD_TAGS,
                "-o",
                str(Path(tmp) / "gitea"),
                ".",
            ],
            check=True,
            cwd=src,
            env=env,
            timeout=3600,
        )
        static = Path(tmp) / "static"
        static.mkdir()
        for keep in ("options", "templates"):
            shutil.copytree(src / keep, static / keep)
        shutil.rmtree(static_root(), ignore_errors=True)
        (static).rename(static_root())
        (Path(tmp) / "gitea").rename(binary_path())
    return binary_path()


def main() -> int:
    print(build())
    return 0


if __name__ == "__main__":
    sys.exit(main())
