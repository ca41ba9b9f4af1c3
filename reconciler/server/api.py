"""The daemon's read API and run actions: what `reconciler runs` talks to while the daemon runs.

The backend's state (a local run's process group, a watch on the cluster) belongs to the daemon
process, so stopping a run or reading its logs goes through the daemon rather than around it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from reconciler.tracking import Store
from reconciler.views import run_row


class RunControl(Protocol):
    """What the API asks of the daemon's runs (the applier): logs raise LookupError when unknown."""

    def logs(self, run_name: str, tail: int | None = None) -> str: ...

    def stop(self, run_name: str) -> None: ...

    def retry(self, run_name: str, now: datetime) -> str: ...


def api_routes(store: Store, backend: RunControl, on_push: Callable[[str], bool] | None = None) -> list[Route]:
    async def list_runs(request: Request) -> Response:
        q = request.query_params
        limit = int(q.get("limit", "100"))
        rows = await asyncio.to_thread(
            store.list_runs, repo=q.get("repo"), op_key=q.get("op"), status=q.get("status"), limit=limit
        )
        return JSONResponse([run_row(run, op) for run, op in rows])

    async def show_run(request: Request) -> Response:
        name = request.path_params["name"]
        found = await asyncio.to_thread(store.list_runs, name=name)
        if not found:
            return JSONResponse({"error": f"no run named {name}"}, status_code=404)
        [(run, op_key)] = found
        history = await asyncio.to_thread(store.history, name)
        body = run_row(run, op_key)
        body["history"] = [
            {"status": str(h.status), "at": h.at.isoformat(), "reason": h.reason, "message": h.message} for h in history
        ]
        return JSONResponse(body)

    async def logs(request: Request) -> Response:
        name = request.path_params["name"]
        tail = request.query_params.get("tail")
        try:
            text = await asyncio.to_thread(backend.logs, name, int(tail) if tail else None)
        except LookupError as e:
            return JSONResponse({"error": str(e)}, status_code=404)
        return PlainTextResponse(text)

    async def stop(request: Request) -> Response:
        name = request.path_params["name"]
        if await asyncio.to_thread(store.run, name) is None:
            return JSONResponse({"error": f"no run named {name}"}, status_code=404)
        await asyncio.to_thread(backend.stop, name)
        return JSONResponse({"stopping": name}, status_code=202)

    async def retry(request: Request) -> Response:
        name = request.path_params["name"]
        try:
            new = await asyncio.to_thread(backend.retry, name, datetime.now(UTC))
        except LookupError as e:
            return JSONResponse({"error": str(e)}, status_code=404)
        except ValueError as e:
            return JSONResponse({"error": str(e)}, status_code=409)
        return JSONResponse({"retry": new, "of": name}, status_code=202)

    async def sync(request: Request) -> Response:
        repo = request.path_params["repo"]
        if on_push is None or not on_push(repo):
            return JSONResponse({"error": f"no repo named {repo}"}, status_code=404)
        return JSONResponse({"queued": repo}, status_code=202)

    return [
        Route("/api/runs", list_runs),
        Route("/api/runs/{name}", show_run),
        Route("/api/runs/{name}/logs", logs),
        Route("/api/runs/{name}/stop", stop, methods=["POST"]),
        Route("/api/runs/{name}/retry", retry, methods=["POST"]),
        Route("/api/repos/{repo}/sync", sync, methods=["POST"]),
    ]
