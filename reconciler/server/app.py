"""The daemon's HTTP app (FastAPI on Starlette) served by uvicorn in a thread of the daemon.

`/healthz` says the process is alive; `/readyz` runs the readiness checks the daemon registered
(database writable, recent fetch per repo, backend reachable) and answers 503 naming the ones
that fail, plus the problems of report-only checks (a forge's backlog) under `warnings`, which
never fail it; `/metrics` is the Prometheus exposition. The API (`reconciler.server.api`) and the
dashboard (`reconciler.server.pages`) are routers added by the daemon; `/openapi.json` describes
every route of the API from its models, and `/docs` shows that description (Swagger UI,
vendored: nothing is fetched from elsewhere).

Every error, from a route or from FastAPI itself (an unknown path, a body that does not match
its model), is `{"error": ..., "detail": ...}` with a 4xx status; an unexpected exception is a
500 with the same shape and a logged traceback, never a traceback in the answer.

Every app is wrapped in the `guard` (who may call what) and a cap on request bodies
(`BodyLimit`), and served with the `protocol`'s bounds (read deadlines, a connection cap): all
plain ASGI, outside FastAPI.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reconciler.jsonlimits import MAX_JSON_DEPTH, json_too_deep
from reconciler.logs import redact
from reconciler.metrics import Metrics
from reconciler.server.guard import LOGGED, Access, Guard
from reconciler.server.models import ErrorOut
from reconciler.server.protocol import Limits

log = logging.getLogger("reconciler.server")

STATIC_DIR = Path(__file__).with_name("static")
MAX_API_BODY = 1024 * 1024  # metrics and outputs reports; webhooks have their own cap


@dataclass(frozen=True)
class Check:
    """A named readiness check: returns None when fine, or what is wrong.

    `fails=False` makes it report-only: its problem is shown, readiness does not fail for it
    (for what taking the daemon out of a Service would not mend, only hide)."""

    name: str
    run: Callable[[], str | None]
    fails: bool = True


def _failing(checks: Sequence[Check]) -> dict[str, str]:
    problems: dict[str, str] = {}
    for check in checks:
        try:
            problem = check.run()
        except Exception as e:  # a check that crashes is a failing check
            problem = f"{type(e).__name__}: {e}"
        if problem:
            problems[check.name] = problem
    return problems


class RedactedJSON(JSONResponse):
    """JSON with every loaded secret redacted (the API's default answer)."""

    def render(self, content: Any) -> bytes:
        return redact(json.dumps(content, ensure_ascii=False, allow_nan=False)).encode()


class ApiError(Exception):
    """An answer other than success: `status` with `{"error": message, "detail": detail}`."""

    def __init__(self, status: int, message: str, detail: Any = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.detail, self.headers = status, message, detail, headers


def error_response(status: int, message: str, detail: Any = None, headers: dict[str, str] | None = None) -> Response:
    return RedactedJSON(ErrorOut(error=message, detail=detail).model_dump(), status_code=status, headers=headers)


def _validation_detail(errors: Sequence[Any]) -> tuple[str, list[dict[str, Any]]]:
    """A sentence naming the first problem, and every problem as {where, message}."""
    problems = []
    for e in errors:
        where = ".".join(str(p) for p in e.get("loc", ()) if p not in ("body",)) or "body"
        problems.append({"where": where, "message": str(e.get("msg", "invalid"))})
    first = problems[0] if problems else {"where": "request", "message": "invalid"}
    return f"{first['where']}: {first['message']}", problems


def install_errors(app: FastAPI) -> None:
    async def api_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return error_response(exc.status, exc.message, exc.detail, exc.headers)

    async def http_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        message = {404: "not found", 405: "method not allowed"}.get(exc.status_code, str(exc.detail))
        return error_response(exc.status_code, message, None, dict(exc.headers or {}) or None)

    async def invalid(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        message, problems = _validation_detail(exc.errors())
        return error_response(400, message, problems)

    async def crashed(request: Request, exc: Exception) -> Response:
        # Starlette re-raises after this answer; the guard then knows it was logged.
        if not isinstance(exc, ClientDisconnect):
            log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        request.scope[LOGGED] = True
        return error_response(500, "internal error (logged by the daemon)")

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(Exception, crashed)


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "a bad parameter or body (which, and why)"},
    401: {"model": ErrorOut, "description": "no or a wrong bearer token"},
    403: {"model": ErrorOut, "description": "refused (another site, another Host name, no token off loopback)"},
}


class BodyLimit:
    """Request bodies of the API, read whole before the app sees them: at most `limit` bytes
    (413 beyond) and JSON nested at most `MAX_JSON_DEPTH` deep (400 beyond), so no body can
    exhaust memory or the parser's stack. Webhooks keep their own (larger) cap."""

    def __init__(self, app: ASGIApp, limit: int = MAX_API_BODY) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] in ("GET", "HEAD", "OPTIONS")
            or scope["path"].startswith("/webhooks/")
        ):
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await error_response(413, f"the body is over {self.limit} bytes")(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client left: nothing to answer
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await error_response(413, f"the body is over {self.limit} bytes")(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if json_too_deep(body):
            await error_response(400, f"body nests deeper than {MAX_JSON_DEPTH} levels")(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()  # after the body: only a disconnect can come
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


def health_router(metrics: Metrics, checks: Sequence[Check], liveness: Sequence[Check]) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get(
        "/healthz",
        response_class=PlainTextResponse,
        summary="Alive",
        responses={200: {"content": {"text/plain": {}}}, 503: {"description": "a worker or the observer is gone"}},
    )
    async def healthz() -> Response:
        problems = _failing(liveness)
        if problems:
            return JSONResponse({"alive": False, "failing": problems}, status_code=503)
        return PlainTextResponse("ok\n")

    @router.get(
        "/readyz",
        summary="Ready: database writable, repos fetched recently, backend reachable",
        responses={503: {"description": "not ready: `failing` names what; `warnings` never fail it"}},
    )
    async def readyz() -> Response:
        found = await asyncio.to_thread(_failing, checks)
        fails = {c.name for c in checks if c.fails}
        problems = {name: text for name, text in found.items() if name in fails}
        warnings = {name: text for name, text in found.items() if name not in fails}
        status = 503 if problems else 200
        return JSONResponse({"ready": not problems, "failing": problems, "warnings": warnings}, status_code=status)

    @router.get(
        "/metrics",
        response_class=PlainTextResponse,
        summary="Prometheus metrics",
        responses={200: {"content": {"text/plain": {}}}},
    )
    async def metrics_endpoint() -> Response:
        return Response(metrics.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")

    return router


def build_app(
    metrics: Metrics,
    checks: Sequence[Check] = (),
    routes: Sequence[BaseRoute] = (),
    liveness: Sequence[Check] = (),
    *,
    access: Access | None = None,
    routers: Sequence[APIRouter] = (),
) -> ASGIApp:
    """The app behind the guard; `access` defaults to a loopback server without a token.

    `checks` decide readiness (503 while one fails); `liveness` decides `/healthz`: what only a
    restart mends, such as a worker thread that is gone. `routers` are FastAPI routers (the API,
    the dashboard), described in `/openapi.json` when they say so; `routes` are plain Starlette
    routes (the webhooks), served as they are."""
    from reconciler import __version__

    app = FastAPI(
        title="polyaxon-reconciler",
        version=__version__,
        description=(
            "The reconciler's API: repos, commits, operations, schedules and runs, their logs and "
            "what they report. Authentication: `Authorization: Bearer <server token>` when the daemon "
            "has one (see the README's security model); runs report with their own "
            "`POLYAXON_RUN_TOKEN`. Lists are newest first where time orders them, `limit` items "
            "at a time; the next page's `cursor` is in the `Link` (rel=next) and `X-Next-Cursor` headers."
        ),
        openapi_url="/openapi.json",
        docs_url=None,
        redoc_url=None,
        default_response_class=RedactedJSON,
    )
    install_errors(app)
    app.include_router(health_router(metrics, checks, liveness))
    for router in routers:
        app.include_router(router)
    app.router.routes.extend(routes)
    if STATIC_DIR.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="polyaxon-reconciler API",
            swagger_js_url="/static/vendor/swagger-ui-bundle.js",
            swagger_css_url="/static/vendor/swagger-ui.css",
            swagger_favicon_url="/static/favicon.svg",
        )

    _add_security_scheme(app)
    return Guard(BodyLimit(app), access if access is not None else Access())


def _add_security_scheme(app: FastAPI) -> None:
    """The bearer token in the description, so /docs offers to send it."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = original()
        schema.setdefault("components", {}).setdefault("securitySchemes", {})["bearer"] = {
            "type": "http",
            "scheme": "bearer",
            "description": "the daemon's server token, or (to report) a run's POLYAXON_RUN_TOKEN",
        }
        schema["security"] = [{"bearer": []}, {}]
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


class HttpServer:
    """uvicorn in a background thread, with a stop that waits for in-flight requests."""

    def __init__(self, app: ASGIApp, host: str, port: int, limits: Limits | None = None) -> None:
        limits = limits or Limits()
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            http=limits.protocol(),
            timeout_keep_alive=int(limits.keep_alive),
            timeout_graceful_shutdown=5,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="http", daemon=True)

    def start(self, timeout: float = 30.0) -> None:
        self._thread.start()
        ready = threading.Event()

        def wait() -> None:
            while not self._server.started and self._thread.is_alive():
                ready.wait(0.01)

        waiter = threading.Thread(target=wait)
        waiter.start()
        waiter.join(timeout)
        if not self._server.started:
            raise RuntimeError("the HTTP server did not start (is the port in use?)")

    @property
    def port(self) -> int:
        servers = getattr(self._server, "servers", [])
        for server in servers:
            for sock in server.sockets:
                return int(sock.getsockname()[1])
        return int(self._server.config.port)

    def stop(self, timeout: float = 10.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout)


__all__ = ["ERRORS", "ApiError", "BodyLimit", "Check", "HttpServer", "RedactedJSON", "build_app", "error_response"]
