"""The dashboard's pages over real HTTP from the production daemon, read as a browser without
JavaScript would: every page answers, says what it should, links only to pages that exist,
escapes what it shows and carries no secret."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from tests.integration.server.world import World


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for key, value in attrs:
            if key in ("href", "src") and value:
                self.hrefs.append(value)


def page(world: Any, path: str) -> httpx.Response:
    return httpx.get(world.url + path, timeout=20)


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_every_link_from_home_leads_somewhere(served: Any) -> None:
    """Crawl the dashboard from `/`: every page and asset it links to answers 200."""
    w: World = served
    seen: set[str] = set()
    queue = ["/"]
    while queue and len(seen) < 400:
        path = queue.pop()
        if path in seen:
            continue
        seen.add(path)
        answer = page(w, path)
        assert answer.status_code == 200, (path, answer.status_code)
        if not answer.headers["content-type"].startswith("text/html"):
            continue
        links = Links()
        links.feed(answer.text)
        for href in links.hrefs:
            target = urljoin(path, href)
            parts = urlsplit(target)
            if parts.netloc or parts.path.startswith("/api/") or parts.path in ("/docs", "/openapi.json"):
                continue
            if parts.path == "/login":
                continue
            queue.append(parts.path + (f"?{parts.query}" if parts.query else ""))
    pages = {p.split("?")[0] for p in seen}
    assert {"/", "/schedules", f"/runs/{w.sweep}", f"/runs/{w.flow}", f"/repos/r/commits/{w.good}"} <= pages
    assert any(p.startswith("/ops/") for p in pages)
    assert "/static/vendor/uPlot.iife.min.js" in pages and "/static/dashboard.js" in pages


def test_home_answers_what_did_my_last_commit_do(served: Any) -> None:
    w: World = served
    home = text_of(page(w, "/").text)
    assert "Repositories" in home and "Runs in flight" in home and "Operations" in home
    assert w.bad[:12] in home and "invalid" in home  # the last applied commit, and that it is broken
    assert w.steps[1] in page(w, "/").text  # the DAG step still running is in flight
    commit = page(w, f"/repos/r/commits/{w.bad}")
    assert "ops/broken.yaml:4:41" in commit.text and "Validation errors" in commit.text
    good = text_of(page(w, f"/repos/r/commits/{w.good}").text)
    assert "create" in good and w.train in good and "succeeded" in good


def test_a_matrix_page_has_its_trials_sortable_without_javascript(served: Any) -> None:
    w: World = served
    html = page(w, f"/runs/{w.sweep}").text
    assert 'id="trials"' in html and 'id="objective-chart"' in html and 'id="objective-data"' in html
    table = html.split('id="trials"', 1)[1].split("</table>", 1)[0]
    assert all(t in table for t in w.trials) and "EarlyStopping" not in table
    by_loss = page(w, f"/runs/{w.sweep}?sort=metric:loss").text.split('id="trials"', 1)[1]
    order = [by_loss.index(t) for t in w.trials if t in by_loss]
    losses = {w.trials[0]: 0.8}
    assert order[0] == min(order) and w.trials[0] in losses  # the best loss first
    assert 'aria-sort="ascending"' in by_loss.split("</thead>")[0]
    down = page(w, f"/runs/{w.sweep}?sort=metric:loss&desc=1").text.split('id="trials"', 1)[1]
    assert down.index(w.trials[0]) > down.index(w.trials[2])


def test_a_dag_page_draws_its_graph_with_each_steps_status(served: Any) -> None:
    w: World = served
    html = page(w, f"/runs/{w.flow}").text
    graph = html.split("<svg", 1)[1].split("</svg>", 1)[0]
    assert "prepare" in graph and "fit" in graph and "status-succeeded" in graph and "status-running" in graph
    assert f'href="/runs/{w.steps[0]}"' in graph and "<line" in graph


def test_an_op_page_shows_its_schedule_and_spec(served: Any) -> None:
    w: World = served
    html = page(w, "/ops/r%3Aops/nightly.yaml%23nightly").text
    plain = text_of(html)
    assert "Next ticks" in plain and "Missed and skipped ticks" in plain and "missed" in plain
    assert "cron: 0 2 * * *" in html or "cron: '0 2 * * *'" in html
    assert page(w, "/ops/r%3Anope%23x").status_code == 404
    assert page(w, "/runs/nope").status_code == 404


def test_what_a_run_reports_is_escaped_on_its_page(served: Any) -> None:
    w: World = served
    fit = w.steps[1]
    tokens = w.h.daemon.applier.run_tokens
    assert tokens is not None
    hostile = {"outputs": {"note": "<script>alert(1)</script>", "model": "<img src=x onerror=alert(1)>"}}
    answer = httpx.post(
        f"{w.url}/api/runs/{fit}/outputs", json=hostile, headers={"Authorization": f"Bearer {tokens.token(fit)}"}
    )
    assert answer.status_code == 202
    html = page(w, f"/runs/{fit}").text
    assert "<script>alert(1)</script>" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
