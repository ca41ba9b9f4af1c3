"""The daemon's read API and run actions: what `reconciler runs` talks to while the daemon runs.

The backend's state (a local run's process group, a watch on the cluster) belongs to the daemon
process, so stopping a run or reading its logs goes through the daemon rather than around it.
Who may call these is the guard's business (`reconciler.server.guard`); this module makes every
answer bounded and well-formed:

- query parameters are checked before anything is read: an unknown name, a repeated one, a
  value that is not what it should be is a 400 with a JSON error saying which; `limit` is
  clamped to 1..1000 and `tail` to 1..10000 lines;
- a log tail is read from the end of the file, a whole log is streamed in blocks, so neither
  costs more memory than a block whatever the log's size;
- every answer, logs included, goes through the log redactor: no loaded secret leaves here.
"""

from __future__ import annotations

import asyncio
import codecs
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from reconciler.logs import redact, redact_stream
from reconciler.statuses import Status
from reconciler.tracking import Store
from reconciler.views import run_row

LIMIT_DEFAULT, LIMIT_MAX = 100, 1000
TAIL_MAX = 10_000
TEXT_MAX = 255  # repo names, op keys: longer is never a match, and refused
_INTEGER = re.compile(r"[+-]?[0-9]+")


class BadParameter(ValueError):
    pass


def json_response(body: Any, status_code: int = 200) -> Response:
    """JSON, with every loaded secret redacted."""
    return Response(redact(json.dumps(body)), status_code=status_code, media_type="application/json")


def error(message: str, status_code: int) -> Response:
    return json_response({"error": message}, status_code)


def _shown(value: str) -> str:
    return repr(value if len(value) <= 40 else value[:40] + "...")


def query(request: Request, allowed: Iterable[str]) -> dict[str, str]:
    """The query parameters, each at most once and all among `allowed`."""
    names = set(allowed)
    found: dict[str, str] = {}
    for name, value in request.query_params.multi_items():
        if name not in names:
            expected = ", ".join(sorted(names)) or "none"
            raise BadParameter(f"unknown query parameter {_shown(name)} (allowed: {expected})")
        if name in found:
            raise BadParameter(f"{name}: given more than once")
        found[name] = value
    return found


def integer(params: Mapping[str, str], name: str, default: int | None, low: int, high: int) -> int | None:
    """An integer parameter clamped to `low..high` (a huge number is `high`, not an error)."""
    raw = params.get(name)
    if raw is None:
        return default
    text = raw.strip()
    if not _INTEGER.fullmatch(text):
        raise BadParameter(f"{name}: must be an integer, got {_shown(raw)}")
    digits = text.lstrip("+-")
    if len(digits) > 18:  # beyond any bound, and not worth converting
        return low if text.startswith("-") else high
    return max(low, min(high, int(text)))


def text(params: Mapping[str, str], name: str) -> str | None:
    raw = params.get(name)
    if raw is not None and (not raw or len(raw) > TEXT_MAX):
        raise BadParameter(f"{name}: must be 1 to {TEXT_MAX} characters")
    return raw


def status(params: Mapping[str, str]) -> str | None:
    raw = params.get("status")
    if raw is None:
        return None
    try:
        return str(Status(raw))
    except ValueError:
        raise BadParameter(f"status: not a run status: {_shown(raw)} (e.g. running, succeeded, failed)") from None


class RunControl(Protocol):
    """What the API asks of the daemon's runs (the applier): unknown runs raise LookupError."""

    def logs(self, run_name: str, tail: int | None = None) -> str: ...

    def log_chunks(self, run_name: str) -> Iterable[bytes]: ...

    def stop(self, run_name: str) -> None: ...

    def retry(self, run_name: str, now: datetime) -> str: ...


def _decoded(blocks: Iterable[bytes]) -> Iterator[str]:
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    for block in blocks:
        yield decoder.decode(block)
    yield decoder.decode(b"", final=True)


def api_routes(store: Store, backend: RunControl, on_push: Callable[[str], bool] | None = None) -> list[Route]:
    async def list_runs(request: Request) -> Response:
        try:
            q = query(request, ("repo", "op", "status", "limit"))
            limit = integer(q, "limit", LIMIT_DEFAULT, 1, LIMIT_MAX)
            repo, op, wanted = text(q, "repo"), text(q, "op"), status(q)
        except BadParameter as e:
            return error(str(e), 400)
        rows = await asyncio.to_thread(store.list_runs, repo=repo, op_key=op, status=wanted, limit=limit)
        return json_response([run_row(run, op) for run, op in rows])

    async def show_run(request: Request) -> Response:
        try:
            query(request, ())
        except BadParameter as e:
            return error(str(e), 400)
        name = request.path_params["name"]
        found = await asyncio.to_thread(store.list_runs, name=name)
        if not found:
            return error(f"no run named {name}", 404)
        [(run, op_key)] = found
        history = await asyncio.to_thread(store.history, name)
        body = run_row(run, op_key)
        body["history"] = [
            {"status": str(h.status), "at": h.at.isoformat(), "reason": h.reason, "message": h.message} for h in history
        ]
        return json_response(body)

    async def logs(request: Request) -> Response:
        name = request.path_params["name"]
        try:
            tail = integer(query(request, ("tail",)), "tail", None, 1, TAIL_MAX)
        except BadParameter as e:
            return error(str(e), 400)
        try:
            if tail is None:
                blocks = await asyncio.to_thread(backend.log_chunks, name)
                return StreamingResponse(redact_stream(_decoded(blocks)), media_type="text/plain; charset=utf-8")
            text_ = await asyncio.to_thread(backend.logs, name, tail)
        except LookupError as e:
            return error(str(e), 404)
        return PlainTextResponse(redact(text_))

    async def stop(request: Request) -> Response:
        name = request.path_params["name"]
        if await asyncio.to_thread(store.run, name) is None:
            return error(f"no run named {name}", 404)
        await asyncio.to_thread(backend.stop, name)
        return json_response({"stopping": name}, 202)

    async def retry(request: Request) -> Response:
        name = request.path_params["name"]
        try:
            new = await asyncio.to_thread(backend.retry, name, datetime.now(UTC))
        except LookupError as e:
            return error(str(e), 404)
        except ValueError as e:
            return error(str(e), 409)
        return json_response({"retry": new, "of": name}, 202)

    async def sync(request: Request) -> Response:
        repo = request.path_params["repo"]
        if on_push is None or not on_push(repo):
            return error(f"no repo named {repo}", 404)
        return json_response({"queued": repo}, 202)

    return [
        Route("/api/runs", list_runs),
        Route("/api/runs/{name}", show_run),
        Route("/api/runs/{name}/logs", logs),
        Route("/api/runs/{name}/stop", stop, methods=["POST"]),
        Route("/api/runs/{name}/retry", retry, methods=["POST"]),
        Route("/api/repos/{repo}/sync", sync, methods=["POST"]),
    ]
