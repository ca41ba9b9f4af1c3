"""The daemon's JSON API (`/api/...`): what `reconciler runs` and the dashboard talk to.

The backend's state (a local run's process group, a watch on the cluster) belongs to the daemon
process, so stopping a run or reading its logs goes through the daemon rather than around it.
Who may call these is the guard's business (`reconciler.server.guard`); this module makes every
answer bounded, well-formed and described (`/openapi.json`, from `models`):

- query parameters are checked before anything is read: an unknown name, a repeated one, a
  value that is not what it should be is a 400 with a JSON error saying which; `limit` is
  clamped to 1..1000 and `tail` to 1..10000 lines. Each parameter is declared once (`PARAMS`),
  for the check and for the description alike;
- lists take `limit` and `cursor` (keyset pages: the next page's cursor is in the `Link` and
  `X-Next-Cursor` headers, the body stays a JSON array) and the filters that apply to them;
- a log tail is read from the end of the file, a whole log is streamed in blocks, a followed log
  (`follow=true`) is server-sent events read in bounded slices: none costs more memory than a
  block whatever the log's size;
- every answer, logs included, goes through the log redactor: no loaded secret leaves here;
- a run reports its metrics and outputs with its own token (the guard checks it), only while
  it is not done.
"""

from __future__ import annotations

import asyncio
import codecs
import math
import re
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse

from reconciler.logs import redact, redact_stream
from reconciler.model import Cause, LogSlice
from reconciler.server import data
from reconciler.server.app import ERRORS, ApiError, RedactedJSON
from reconciler.server.models import (
    ChildOut,
    CommitDetailOut,
    CommitOut,
    ErrorOut,
    MetricsIn,
    OpDetailOut,
    OpOut,
    OutputsIn,
    QueuedOut,
    RecordedOut,
    RepoOut,
    RetryOut,
    RunDetailOut,
    RunOut,
    RunOutputsOut,
    ScheduleOut,
    StoppingOut,
)
from reconciler.statuses import Status
from reconciler.tracking import Point, Store

LIMIT_DEFAULT, LIMIT_MAX = 100, 1000
TAIL_MAX = 10_000
TEXT_MAX = 255  # repo names, op keys: longer is never a match, and refused
FOLLOWERS_MAX = 32  # log streams followed at once; more get a 503
FOLLOW_POLL = 0.5  # seconds between reads of a followed log that has nothing new
FOLLOW_SLICE = 64 * 1024
_INTEGER = re.compile(r"[+-]?[0-9]+")


class BadParameter(ValueError):
    pass


def json_response(body: Any, status_code: int = 200) -> Response:
    """JSON, with every loaded secret redacted."""
    return RedactedJSON(body, status_code=status_code)


def error(message: str, status_code: int, detail: Any = None) -> Response:
    return json_response({"error": message, "detail": detail}, status_code)


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


def cause(params: Mapping[str, str]) -> str | None:
    raw = params.get("cause")
    if raw is None:
        return None
    try:
        return str(Cause(raw))
    except ValueError:
        causes = ", ".join(c.value for c in Cause)
        raise BadParameter(f"cause: not a run cause: {_shown(raw)} (one of {causes})") from None


def since(params: Mapping[str, str]) -> datetime | None:
    raw = params.get("since")
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw.strip()) if len(raw) <= 64 else None
    except ValueError:
        value = None
    if value is None:
        raise BadParameter(f"since: not an ISO 8601 time: {_shown(raw)} (e.g. 2026-01-02T03:04:05Z)")
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def boolean(params: Mapping[str, str], name: str) -> bool:
    raw = params.get(name)
    if raw is None:
        return False
    value = raw.strip().lower()
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise BadParameter(f"{name}: must be true or false, got {_shown(raw)}")


def cursor(params: Mapping[str, str]) -> str | None:
    raw = params.get("cursor")
    if raw is not None and (not raw or len(raw) > 512):
        raise BadParameter("cursor: not a cursor this server gave (1 to 512 characters)")
    return raw


def valid(params: Mapping[str, str]) -> bool | None:
    raw = params.get("valid")
    return None if raw is None else boolean(params, "valid")


# --- the parameters, declared once for the check and the description --------------------------


@dataclass(frozen=True)
class Param:
    description: str
    schema: Mapping[str, Any]


_STATUSES = sorted(s.value for s in Status)
PARAMS: dict[str, Param] = {
    "limit": Param(f"how many items (default {LIMIT_DEFAULT}; clamped to 1..{LIMIT_MAX})", {"type": "integer"}),
    "cursor": Param(
        "the next page, as given by the previous page's Link or X-Next-Cursor header",
        {"type": "string", "minLength": 1, "maxLength": 512},
    ),
    "repo": Param("only this repo", {"type": "string", "minLength": 1, "maxLength": TEXT_MAX}),
    "op": Param("only this operation (repo:path#name)", {"type": "string", "minLength": 1, "maxLength": TEXT_MAX}),
    "status": Param("only runs in this status (for operations: whose newest run is)", {"enum": _STATUSES}),
    "cause": Param("only runs made for this cause", {"enum": [c.value for c in Cause]}),
    "since": Param(
        "only what was created (recorded, updated) at or after this time", {"type": "string", "format": "date-time"}
    ),
    "valid": Param("only valid (true) or invalid (false) commits", {"type": "boolean"}),
    "tail": Param(f"only the last lines (clamped to 1..{TAIL_MAX})", {"type": "integer"}),
    "follow": Param("follow the log as server-sent events (text/event-stream) until the run ends", {"type": "boolean"}),
}


CURSORS = {"time": {"pattern": data.TIME_CURSOR}, "offset": {"pattern": data.OFFSET_CURSOR}, "key": {}}


def described(*names: str, cursor: str = "time") -> dict[str, Any]:
    """`openapi_extra` declaring the query parameters `names` (`cursor`: the kind of cursor)."""
    return {
        "parameters": [
            {
                "name": n,
                "in": "query",
                "required": False,
                "description": PARAMS[n].description,
                "schema": {**PARAMS[n].schema, **(CURSORS[cursor] if n == "cursor" else {})},
            }
            for n in names
        ]
    }


LIST = ("limit", "cursor")
# One server-sent event of a followed log: `log` (lines; id: the byte offset after them, for
# Last-Event-ID) or `end` (the run is done and everything was sent).
SSE_EVENT = {
    "type": "object",
    "properties": {
        "event": {"enum": ["log", "end"]},
        "data": {"type": "string"},
        "id": {"type": "string", "pattern": "^[0-9]+$"},
    },
    "required": ["event", "data"],
}
PAGED_HEADERS = {
    "Link": {"description": 'the next page: <...>; rel="next"', "schema": {"type": "string"}},
    "X-Next-Cursor": {"description": "the next page's cursor", "schema": {"type": "string"}},
}


def _list_responses(model: Any) -> dict[int | str, dict[str, Any]]:
    return {200: {"model": list[model], "headers": PAGED_HEADERS}, **ERRORS}


def _found(responses: Mapping[int | str, dict[str, Any]] | None = None) -> dict[int | str, dict[str, Any]]:
    return {**ERRORS, 404: {"model": ErrorOut, "description": "no such thing"}, **(responses or {})}


# --- what the API asks of the daemon ------------------------------------------------------------


class RunControl(Protocol):
    """What the API asks of the daemon's runs (the applier): unknown runs raise LookupError."""

    def logs(self, run_name: str, tail: int | None = None) -> str: ...

    def log_chunks(self, run_name: str) -> Iterable[bytes]: ...

    def read_log(self, run_name: str, offset: int, limit: int) -> LogSlice: ...

    def stop(self, run_name: str) -> None: ...

    def retry(self, run_name: str, now: datetime) -> str: ...

    def report(self, run_name: str, points: Sequence[Point], outputs: Mapping[str, Any], now: datetime) -> int:
        """Record what a run reported; ValueError when it is done, LookupError when unknown."""
        ...

    def outputs_of(self, run_name: str) -> Mapping[str, Any]: ...


def _decoded(blocks: Iterable[bytes]) -> Iterator[str]:
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    for block in blocks:
        yield decoder.decode(block)
    yield decoder.decode(b"", final=True)


def _paged(request: Request, page: data.Page) -> Response:
    response = json_response([item.model_dump(mode="json") for item in page.items])
    if page.next_cursor is not None:
        params = [(k, v) for k, v in request.query_params.multi_items() if k != "cursor"]
        url = request.url.path + "?" + urlencode([*params, ("cursor", page.next_cursor)])
        response.headers["Link"] = f'<{url}>; rel="next"'
        response.headers["X-Next-Cursor"] = page.next_cursor
    return response


def _model(model: Any, status_code: int = 200) -> Response:
    return json_response(model.model_dump(mode="json"), status_code)


def numeric_points(values: Mapping[str, Any], step: int | None = None) -> list[Point]:
    """The numbers among reported values, as metric values (booleans are not numbers here)."""
    return [
        Point(name, step, float(v))
        for name, v in values.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    ]


class _Followers:
    def __init__(self, limit: int) -> None:
        self.limit, self.count = limit, 0

    def take(self) -> bool:
        if self.count >= self.limit:
            return False
        self.count += 1
        return True

    def give(self) -> None:
        self.count -= 1


def _sse(event: str, payload: str, event_id: int | None = None) -> bytes:
    lines = [f"event: {event}"] + ([f"id: {event_id}"] if event_id is not None else [])
    lines += [f"data: {line}" for line in payload.split("\n")]
    return ("\n".join(lines) + "\n\n").encode()


async def follow_log(
    control: RunControl, name: str, start: int, tail: int | None, request: Request
) -> AsyncIterator[bytes]:
    """A log as server-sent events: `log` events of whole lines (id: the byte offset after them,
    so `Last-Event-ID` resumes), a comment every 15 s of silence, and `end` when the run is done
    and everything was sent."""
    offset = start
    if tail is not None:
        size = (await asyncio.to_thread(control.read_log, name, 0, 0)).size
        window = max(0, size - 256 * 1024)
        head = await asyncio.to_thread(control.read_log, name, window, size - window)
        kept = head.data[: size - window].split(b"\n")
        if kept and kept[-1] == b"":
            kept.pop()
        lines = kept[-tail:]
        if lines:
            yield _sse("log", redact(b"\n".join(lines).decode("utf-8", "replace")), size)
        offset = size
    pending = b""
    quiet = 0.0
    while not await request.is_disconnected():
        piece = await asyncio.to_thread(control.read_log, name, offset, FOLLOW_SLICE)
        offset += len(piece.data)
        pending += piece.data
        cut = pending.rfind(b"\n")
        if piece.done and not piece.data:
            cut = len(pending) - 1  # nothing more will come: the last line too
        if cut >= 0 and pending:
            chunk, pending = pending[: cut + 1], pending[cut + 1 :]
            text_ = chunk[:-1] if chunk.endswith(b"\n") else chunk
            yield _sse("log", redact(text_.decode("utf-8", "replace")), offset - len(pending))
            quiet = 0.0
        elif len(pending) > FOLLOW_SLICE:  # one endless line: send what there is
            yield _sse("log", redact(pending.decode("utf-8", "replace")), offset)
            pending = b""
        if piece.done and not piece.data and not pending:
            yield _sse("end", "the run is done", offset)
            return
        if not piece.data:
            await asyncio.sleep(FOLLOW_POLL)
            quiet += FOLLOW_POLL
            if quiet >= 15:
                quiet = 0.0
                yield b": still here\n\n"


def api_router(
    store: Store,
    control: RunControl,
    on_push: Callable[[str], bool] | None = None,
    daemon: data.DaemonView | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> APIRouter:
    """The API's routes over the tracking DB (`store`), the runs (`control`) and the daemon."""
    view: data.DaemonView = daemon if daemon is not None else data.NoDaemon()
    followers = _Followers(FOLLOWERS_MAX)
    router = APIRouter(prefix="/api", default_response_class=RedactedJSON)

    async def checked(request: Request, *names: str) -> dict[str, str]:
        try:
            return query(request, names)
        except BadParameter as e:
            raise ApiError(400, str(e), {"parameter": _parameter_of(str(e))}) from None

    def bad(e: ValueError) -> ApiError:
        return ApiError(400, str(e), {"parameter": _parameter_of(str(e))})

    # --- runs ---------------------------------------------------------------------------------

    runs_params = ("repo", "op", "status", "cause", "since", *LIST)

    @router.get(
        "/runs",
        tags=["runs"],
        summary="Runs, newest first",
        responses=_list_responses(RunOut),
        openapi_extra=described(*runs_params),
        response_model=list[RunOut],
    )
    async def list_runs(request: Request) -> Response:
        q = await checked(request, *runs_params)
        try:
            where = data.RunFilter(
                repo=text(q, "repo"), op=text(q, "op"), status=status(q), cause=cause(q), since=since(q)
            )
            limit = integer(q, "limit", LIMIT_DEFAULT, 1, LIMIT_MAX) or LIMIT_DEFAULT
            page = await asyncio.to_thread(data.runs, store, where, limit, cursor(q))
        except ValueError as e:
            raise bad(e) from None
        return _paged(request, page)

    @router.get(
        "/runs/{name}",
        tags=["runs"],
        summary="A run with its status history",
        responses=_found(),
        response_model=RunDetailOut,
    )
    async def show_run(request: Request, name: str) -> Response:
        await checked(request)
        found = await asyncio.to_thread(data.run_detail, store, name)
        if found is None:
            raise ApiError(404, f"no run named {name}", {"run": name})
        return _model(found)

    children_params = ("op", "status", "cause", "since", *LIST)

    @router.get(
        "/runs/{name}/children",
        tags=["runs"],
        summary="A DAG's operations or a matrix's trials, with params and results",
        responses={**_found(), 200: {"model": list[ChildOut], "headers": PAGED_HEADERS}},
        openapi_extra=described(*children_params, cursor="offset"),
        response_model=list[ChildOut],
    )
    async def run_children(request: Request, name: str) -> Response:
        q = await checked(request, *children_params)
        try:
            where = data.RunFilter(op=text(q, "op"), status=status(q), cause=cause(q), since=since(q))
            limit = integer(q, "limit", LIMIT_DEFAULT, 1, LIMIT_MAX) or LIMIT_DEFAULT
            page = await asyncio.to_thread(data.children, store, name, where, limit, cursor(q))
        except ValueError as e:
            raise bad(e) from None
        if page is None:
            raise ApiError(404, f"no run named {name}", {"run": name})
        return _paged(request, page)

    @router.get(
        "/runs/{name}/outputs",
        tags=["runs"],
        summary="A run's params, outputs and every value of its metrics",
        responses=_found(),
        response_model=RunOutputsOut,
    )
    async def run_outputs(request: Request, name: str) -> Response:
        await checked(request)
        found = await asyncio.to_thread(data.outputs, store, name, control.outputs_of)
        if found is None:
            raise ApiError(404, f"no run named {name}", {"run": name})
        return _model(found)

    @router.get(
        "/runs/{name}/logs",
        tags=["runs"],
        summary="A run's log: whole (streamed), its tail, or followed (server-sent events)",
        responses={
            **_found(),
            200: {
                "description": "the log (text/plain), or with follow=true its events (text/event-stream)",
                "content": {
                    "text/plain": {"schema": {"type": "string"}},
                    "text/event-stream": {"schema": SSE_EVENT},
                },
            },
            503: {"model": ErrorOut, "description": "too many logs followed at once"},
        },
        openapi_extra=described("tail", "follow"),
    )
    async def logs(request: Request, name: str) -> Response:
        q = await checked(request, "tail", "follow")
        try:
            tail = integer(q, "tail", None, 1, TAIL_MAX)
            follow = boolean(q, "follow")
        except BadParameter as e:
            raise bad(e) from None
        try:
            if follow:
                resume = request.headers.get("last-event-id", "")
                start = int(resume) if resume.isdigit() and len(resume) < 19 else 0
                await asyncio.to_thread(control.read_log, name, 0, 0)  # a 404 now, not mid-stream
                if not followers.take():
                    raise ApiError(503, f"{FOLLOWERS_MAX} logs are followed already; try again later")

                async def stream() -> AsyncIterator[bytes]:
                    try:
                        async for event in follow_log(control, name, start, None if resume else tail, request):
                            yield event
                    finally:
                        followers.give()

                return StreamingResponse(
                    stream(),
                    media_type="text/event-stream",
                    headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
                )
            if tail is None:
                blocks = await asyncio.to_thread(control.log_chunks, name)
                return StreamingResponse(redact_stream(_decoded(blocks)), media_type="text/plain; charset=utf-8")
            text_ = await asyncio.to_thread(control.logs, name, tail)
        except LookupError as e:
            raise ApiError(404, str(e), {"run": name}) from None
        return PlainTextResponse(redact(text_))

    @router.post(
        "/runs/{name}/stop",
        tags=["runs"],
        summary="Stop a run (stopping, then stopped)",
        status_code=202,
        responses=_found(),
        response_model=StoppingOut,
    )
    async def stop(request: Request, name: str) -> Response:
        await checked(request)
        if await asyncio.to_thread(store.run, name) is None:
            raise ApiError(404, f"no run named {name}", {"run": name})
        await asyncio.to_thread(control.stop, name)
        return json_response({"stopping": name}, 202)

    @router.post(
        "/runs/{name}/retry",
        tags=["runs"],
        summary="Run a finished run again (a new run, cause retry)",
        status_code=202,
        responses=_found({409: {"model": ErrorOut, "description": "the run is not done"}}),
        response_model=RetryOut,
    )
    async def retry(request: Request, name: str) -> Response:
        await checked(request)
        try:
            new = await asyncio.to_thread(control.retry, name, clock())
        except LookupError as e:
            raise ApiError(404, str(e), {"run": name}) from None
        except ValueError as e:
            raise ApiError(409, str(e), {"run": name}) from None
        return json_response({"retry": new, "of": name}, 202)

    report_responses = _found(
        {
            409: {"model": ErrorOut, "description": "the run is done: it reports nothing more"},
            413: {"model": ErrorOut, "description": "the body, or what the run keeps, is too large"},
        }
    )

    async def record(name: str, points: list[Point], outputs: Mapping[str, Any]) -> Response:
        from reconciler.tracking import ReportLimit

        try:
            count = await asyncio.to_thread(control.report, name, points, outputs, clock())
        except LookupError:
            raise ApiError(404, f"no run named {name}", {"run": name}) from None
        except ReportLimit as e:
            raise ApiError(413, str(e), {"run": name}) from None
        except ValueError as e:
            raise ApiError(409, str(e), {"run": name}) from None
        return _model(RecordedOut(run=name, metrics=count, outputs=len(outputs)), 202)

    @router.post(
        "/runs/{name}/metrics",
        tags=["reporting"],
        summary="A run reports metric values (with its POLYAXON_RUN_TOKEN)",
        status_code=202,
        responses=report_responses,
        response_model=RecordedOut,
    )
    async def report_metrics(request: Request, name: str, body: MetricsIn) -> Response:
        await checked(request)
        points = [Point(metric, body.step, value) for metric, value in body.metrics.items()]
        return await record(name, points, dict(body.metrics))

    @router.post(
        "/runs/{name}/outputs",
        tags=["reporting"],
        summary="A run reports outputs (with its POLYAXON_RUN_TOKEN)",
        status_code=202,
        responses=report_responses,
        response_model=RecordedOut,
    )
    async def report_outputs(request: Request, name: str, body: OutputsIn) -> Response:
        await checked(request)
        return await record(name, numeric_points(body.outputs), dict(body.outputs))

    # --- repos and commits ---------------------------------------------------------------------

    @router.get(
        "/repos",
        tags=["repos"],
        summary="Repos: head, last applied commit, readiness, last error",
        responses=_list_responses(RepoOut),
        openapi_extra=described("repo", *LIST, cursor="key"),
        response_model=list[RepoOut],
    )
    async def list_repos(request: Request) -> Response:
        q = await checked(request, "repo", *LIST)
        try:
            limit = integer(q, "limit", LIMIT_DEFAULT, 1, LIMIT_MAX) or LIMIT_DEFAULT
            page = await asyncio.to_thread(data.repos, store, view, text(q, "repo"), limit, cursor(q))
        except ValueError as e:
            raise bad(e) from None
        return _paged(request, page)

    @router.post(
        "/repos/{repo}/sync",
        tags=["repos"],
        summary="Reconcile a repo now",
        status_code=202,
        responses=_found(),
        response_model=QueuedOut,
    )
    async def sync(request: Request, repo: str) -> Response:
        await checked(request)
        if on_push is None or not on_push(repo):
            raise ApiError(404, f"no repo named {repo}", {"repo": repo})
        return json_response({"queued": repo}, 202)

    commits_params = ("since", "valid", *LIST)

    @router.get(
        "/repos/{repo}/commits",
        tags=["repos"],
        summary="A repo's commits, most recently applied first, with located validation errors",
        responses={**_found(), 200: {"model": list[CommitOut], "headers": PAGED_HEADERS}},
        openapi_extra=described(*commits_params),
        response_model=list[CommitOut],
    )
    async def list_commits(request: Request, repo: str) -> Response:
        q = await checked(request, *commits_params)
        try:
            limit = integer(q, "limit", LIMIT_DEFAULT, 1, LIMIT_MAX) or LIMIT_DEFAULT
            page = await asyncio.to_thread(data.commits, store, repo, since(q), valid(q), limit, cursor(q))
        except ValueError as e:
            raise bad(e) from None
        if page is None:
            raise ApiError(404, f"no repo named {repo}", {"repo": repo})
        return _paged(request, page)

    @router.get(
        "/repos/{repo}/commits/{sha}",
        tags=["repos"],
        summary="A commit: validation, the plan, the runs it caused, the commit statuses posted",
        responses=_found({409: {"model": ErrorOut, "description": "a short sha that names several commits"}}),
        response_model=CommitDetailOut,
    )
    async def show_commit(request: Request, repo: str, sha: str) -> Response:
        await checked(request)
        try:
            found = await asyncio.to_thread(data.commit_detail, store, repo, sha)
        except data.Ambiguous as e:
            raise ApiError(409, str(e), {"sha": sha}) from None
        if found is None:
            raise ApiError(404, f"no commit {sha} in {repo}", {"repo": repo, "sha": sha})
        return _model(found)

    # --- operations and schedules ----------------------------------------------------------------

    ops_params = ("repo", "op", "status", "since", *LIST)

    @router.get(
        "/ops",
        tags=["ops"],
        summary="Operations: mode, validity, newest run, next tick",
        responses=_list_responses(OpOut),
        openapi_extra=described(*ops_params, cursor="key"),
        response_model=list[OpOut],
    )
    async def list_ops(request: Request) -> Response:
        q = await checked(request, *ops_params)
        try:
            limit = integer(q, "limit", LIMIT_DEFAULT, 1, LIMIT_MAX) or LIMIT_DEFAULT
            page = await asyncio.to_thread(
                data.ops, store, text(q, "repo"), text(q, "op"), status(q), since(q), limit, cursor(q)
            )
        except ValueError as e:
            raise bad(e) from None
        return _paged(request, page)

    @router.get(
        "/ops/{op_key:path}",
        tags=["ops"],
        summary="An operation: its spec as compiled, schedule and ticks, subscriptions, runs (op key URL-encoded)",
        responses=_found(),
        response_model=OpDetailOut,
    )
    async def show_op(request: Request, op_key: str) -> Response:
        await checked(request)
        found = await asyncio.to_thread(data.op_detail, store, view, op_key, clock())
        if found is None:
            raise ApiError(404, f"no operation {op_key}", {"op": op_key})
        return _model(found)

    schedules_params = ("repo", "op", *LIST)

    @router.get(
        "/schedules",
        tags=["ops"],
        summary="Schedules with their next ticks",
        responses=_list_responses(ScheduleOut),
        openapi_extra=described(*schedules_params, cursor="key"),
        response_model=list[ScheduleOut],
    )
    async def list_schedules(request: Request) -> Response:
        q = await checked(request, *schedules_params)
        try:
            limit = integer(q, "limit", LIMIT_DEFAULT, 1, LIMIT_MAX) or LIMIT_DEFAULT
            page = await asyncio.to_thread(
                data.schedules, store, view, text(q, "repo"), text(q, "op"), limit, cursor(q), clock()
            )
        except ValueError as e:
            raise bad(e) from None
        return _paged(request, page)

    return router


def _parameter_of(message: str) -> str | None:
    head = message.split(":", 1)[0]
    if head.startswith("unknown query parameter"):
        return None
    return head if head.isidentifier() else None


__all__ = [
    "PARAMS",
    "BadParameter",
    "LogSlice",
    "RunControl",
    "api_router",
    "boolean",
    "cause",
    "integer",
    "query",
    "since",
    "status",
    "text",
]
