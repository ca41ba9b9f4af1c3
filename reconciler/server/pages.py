"""The pages commit statuses link to: a run with its history, and a commit with its runs.

Plain server-rendered HTML (every value escaped, every loaded secret redacted), so a click from a forge shows something
readable without a front-end build; `/api/...` serves the same data as JSON.
"""

from __future__ import annotations

import asyncio
from html import escape
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from reconciler.logs import redact
from reconciler.tracking import Store
from reconciler.views import run_row

_STYLE = (
    "body{font:14px system-ui,sans-serif;margin:2em;max-width:70em}table{border-collapse:collapse}"
    "td,th{padding:.25em .75em;border-bottom:1px solid #ddd;text-align:left}code{font-size:13px}"
)


def _page(title: str, body: str, status: int = 200) -> Response:
    html = f"<!doctype html><title>{escape(title)}</title><style>{_STYLE}</style><h1>{escape(title)}</h1>{body}"
    return HTMLResponse(redact(html), status_code=status)


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _run_link(name: str) -> str:
    return f'<a href="/runs/{escape(name)}">{escape(name)}</a>'


def page_routes(store: Store) -> list[Route]:
    async def run_page(request: Request) -> Response:
        name = request.path_params["name"]
        found = await asyncio.to_thread(store.list_runs, name=name)
        if not found:
            return _page("Run not found", f"<p>No run named <code>{escape(name)}</code>.</p>", 404)
        [(run, op_key)] = found
        row = run_row(run, op_key)
        history = await asyncio.to_thread(store.history, name)
        facts = [[escape(k), f"<code>{escape(str(v))}</code>"] for k, v in row.items() if v is not None and k != "name"]
        changes = [
            [
                escape(h.at.isoformat(timespec="seconds")),
                escape(str(h.status)),
                escape(h.reason or ""),
                escape(h.message or ""),
            ]
            for h in history
        ]
        body = _table(["", ""], facts) + "<h2>History</h2>" + _table(["at", "status", "reason", "message"], changes)
        return _page(f"Run {name}", body)

    async def commit_page(request: Request) -> Response:
        repo, sha = request.path_params["repo"], request.path_params["sha"]
        commit = await asyncio.to_thread(store.commit, repo, sha)
        runs = await asyncio.to_thread(store.runs_by_commit, sha)
        if commit is None and not runs:
            return _page("Commit not found", f"<p>No commit <code>{escape(sha)}</code> in {escape(repo)}.</p>", 404)
        parts = []
        if commit is not None:
            verdict = "valid" if commit.valid else ("invalid" if commit.valid is False else "not validated yet")
            parts.append(f"<p>Validation: <strong>{verdict}</strong></p>")
            errors = [
                [escape(f"{e.get('file')}:{e.get('line')}:{e.get('column')}"), escape(str(e.get("message")))]
                for e in commit.errors
            ]
            if errors:
                parts.append(_table(["where", "error"], errors))
        rows = [
            [_run_link(r.name), escape(r.kind or ""), escape(str(r.status)), escape(r.created_at.isoformat())]
            for r in runs
        ]
        parts.append("<h2>Runs</h2>" + (_table(["run", "kind", "status", "created"], rows) if rows else "<p>none</p>"))
        return _page(f"{repo} @ {sha[:12]}", "".join(parts))

    return [Route("/runs/{name}", run_page), Route("/repos/{repo}/commits/{sha}", commit_page)]
