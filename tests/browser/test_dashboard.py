"""The dashboard in a real browser (chromium, headless), over the examples repository reconciled by
the production daemon on the local backend, as `make run` shows it: a user clicks from home to a
commit, an operation, the sweep (trials table, chart, sorting), the pipeline DAG, and a run whose
log grows while they look. Every page passes axe-core's WCAG A/AA rules and logs no JavaScript
error. The README's screenshots are taken here (RECONCILER_SCREENSHOTS=docs/img keeps them)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.integration.server.local_world import LocalWorld

pytestmark = pytest.mark.slow

TIMEOUT = 30_000  # ms: what the browser may take to show what the daemon already has


def check_accessibility(page: Any, axe: Path) -> None:
    """axe-core's WCAG 2 A and AA rules on the page as shown: no violation at all."""
    page.add_script_tag(path=str(axe))
    result = page.evaluate(
        "async () => { const r = await axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa']}});"
        " return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,"
        " nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))})); }"
    )
    assert result == [], f"{page.url}: {result}"


def screenshot(page: Any, name: str, tmp_path: Path) -> None:
    keep = os.environ.get("RECONCILER_SCREENSHOTS")
    target = Path(keep) / name if keep else tmp_path / name
    target.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(target), full_page=False)


def test_a_user_finds_what_the_reconciler_did(
    examples: LocalWorld, page: Any, axe_script: Path, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    url = examples.url
    page.set_default_timeout(TIMEOUT)

    # Home: the repo, its last applied commit, the operations.
    page.goto(url + "/")
    expect(page.get_by_role("heading", level=1)).to_have_text("What the reconciler does")
    expect(page.get_by_role("table", name="Every repository this daemon watches")).to_contain_text("valid")
    check_accessibility(page, axe_script)
    screenshot(page, "dashboard-home.png", tmp_path)

    # What did my last commit do?
    page.get_by_role("table", name="Every repository this daemon watches").get_by_role("link").nth(1).click()
    expect(page.get_by_role("heading", name="Plan")).to_be_visible()
    plan = page.get_by_role("table", name="What the reconcile that applied this commit did")
    expect(plan).to_contain_text("create")
    expect(plan).to_contain_text("register_schedule")
    check_accessibility(page, axe_script)

    # When does my schedule fire next?
    page.goto(url + "/")
    page.get_by_role("link", name="retrain-nightly").click()
    expect(page.get_by_role("heading", name="Next ticks")).to_be_visible()
    expect(page.locator("section", has=page.get_by_role("heading", name="Schedule"))).to_contain_text("0 2 * * *")
    check_accessibility(page, axe_script)

    # Which trial of my sweep was best?
    page.goto(url + "/")
    ops = page.get_by_role("table", name="Operations in Git, with their newest run and next tick")
    ops.get_by_role("row", name="sweep").get_by_role("link").nth(1).click()
    trials = page.locator("#trials")
    expect(trials.locator("tbody tr")).to_have_count(6)
    expect(page.locator("#objective-chart canvas")).to_have_count(1)  # drawn by uPlot
    loss = trials.get_by_role("link", name="loss", exact=True)
    loss.click()  # sorted in place by the script, best loss first
    expect(trials.get_by_role("columnheader", name="loss")).to_have_attribute("aria-sort", "ascending")
    column = trials.locator("thead th").all_inner_texts().index("loss") + 1
    cells = trials.locator(f"tbody tr td:nth-child({column})").all_inner_texts()
    values = [float(v) for v in cells if v.strip() not in ("", "—")]
    assert values == sorted(values) and len(values) >= 3, cells
    check_accessibility(page, axe_script)
    page.evaluate("document.getElementById('trials-h').scrollIntoView()")
    screenshot(page, "dashboard-sweep.png", tmp_path)
    best = trials.locator("tbody tr").first.get_by_role("link").first
    best.click()
    expect(page.locator("#metric-charts canvas").first).to_be_visible()  # the trial's loss per epoch
    expect(page.get_by_role("table", name="Each metric's values (the chart above plots them)")).to_contain_text("loss")

    # The pipeline: a DAG with each step's status.
    page.goto(url + "/")
    ops = page.get_by_role("table", name="Operations in Git, with their newest run and next tick")
    ops.get_by_role("row", name="pipeline").get_by_role("link").nth(1).click()
    graph = page.get_by_role("group", name="The DAG's operations and their dependencies")
    for step in ("preprocess", "train", "evaluate"):
        expect(graph).to_contain_text(step)
    expect(page.locator("figure.dag .status-succeeded")).to_have_count(3)
    check_accessibility(page, axe_script)

    # Why did this run do that? Its log, followed while it prints.
    page.goto(url + "/")
    page.get_by_role("table", name="Runs not done yet").get_by_role("link", name="chatty", exact=False).first.click()
    log = page.locator("#log")
    expect(log).to_contain_text("tick 1: waiting for the test")
    expect(log).to_have_attribute("data-following", "true")
    assert "tick 2" not in log.inner_text()
    examples.release.touch()
    expect(log).to_contain_text("tick 2: released")  # appeared without a reload
    expect(page.locator("#run-status .status")).to_have_text("succeeded")
    check_accessibility(page, axe_script)
    assert page.js_errors == []


def test_the_api_docs_load_from_the_daemon_alone(examples: LocalWorld, page: Any) -> None:
    from playwright.sync_api import expect

    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    page.goto(examples.url + "/docs")
    expect(page.get_by_text("/api/runs/{name}/logs").first).to_be_visible(timeout=TIMEOUT)
    assert requested and all(r.startswith(examples.url) for r in requested), requested
