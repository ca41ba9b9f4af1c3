"""A real browser for the dashboard: Debian's chromium (`make test` installs it with apt through
scripts/ensure-chromium.sh) driven by Playwright for Python through `executable_path` (Playwright's
own browser downloads are never used), headless. axe-core, fetched from npm at a pinned version by
scripts/vendor_js.py, checks each page's accessibility basics.

Without chromium the tests skip, loudly; under CI=true they fail instead."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scripts.vendor_js import TEST_PACKAGES, test_assets
from tests.infra.daemon import daemon_harness
from tests.infra.git_server import GitRepoFactory
from tests.integration.server import local_world

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
CACHE = Path(os.environ.get("RECONCILER_TEST_CACHE", Path.home() / ".cache" / "polyaxon-reconciler"))


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    path = chromium_path()
    if path is None:
        message = "chromium is not installed (make test installs it: scripts/ensure-chromium.sh)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="session")
def axe_script() -> Path:
    [axe] = TEST_PACKAGES
    return test_assets(CACHE / "npm") / f"{axe.name}-{axe.version}" / "axe.min.js"


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda e: errors.append(str(e)))
    tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    tab.js_errors = errors
    try:
        yield tab
    finally:
        context.close()


@pytest.fixture
def examples(tmp_path: Path, git_repo_factory: GitRepoFactory) -> Iterator[local_world.LocalWorld]:
    db = f"sqlite:///{tmp_path / 'db.sqlite'}"
    with daemon_harness(tmp_path / "h", db, git_repo_factory, backend="local", interval=5.0) as h:
        world = local_world.start(h, tmp_path)
        try:
            yield world
        finally:
            world.release.touch()  # let the chatty run end
