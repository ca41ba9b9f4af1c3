"""A small ASGI app (Starlette) served by uvicorn in a thread of the daemon.

`/healthz` says the process is alive; `/readyz` runs the readiness checks the daemon registered
(database writable, recent fetch per repo, backend reachable) and answers 503 naming the ones
that fail, plus the problems of report-only checks (a forge's backlog) under `warnings`, which
never fail it; `/metrics` is the Prometheus exposition.

Every app is wrapped in the `guard` (who may call what) and served with the `protocol`'s bounds
(read deadlines, a connection cap): both outside Starlette, so they carry over to another ASGI
framework unchanged.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp

from reconciler.metrics import Metrics
from reconciler.server.guard import Access, Guard
from reconciler.server.protocol import Limits


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


def build_app(
    metrics: Metrics,
    checks: Sequence[Check] = (),
    routes: Sequence[BaseRoute] = (),
    liveness: Sequence[Check] = (),
    *,
    access: Access | None = None,
) -> ASGIApp:
    """The app behind the guard; `access` defaults to a loopback server without a token.

    `checks` decide readiness (503 while one fails); `liveness` decides `/healthz`: what only a
    restart mends, such as a worker thread that is gone."""

    async def healthz(_: Request) -> Response:
        problems = _failing(liveness)
        if problems:
            return JSONResponse({"alive": False, "failing": problems}, status_code=503)
        return PlainTextResponse("ok\n")

    async def readyz(_: Request) -> Response:
        found = await asyncio.to_thread(_failing, checks)
        fails = {c.name for c in checks if c.fails}
        problems = {name: text for name, text in found.items() if name in fails}
        warnings = {name: text for name, text in found.items() if name not in fails}
        status = 503 if problems else 200
        return JSONResponse({"ready": not problems, "failing": problems, "warnings": warnings}, status_code=status)

    async def metrics_endpoint(_: Request) -> Response:
        return Response(metrics.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")

    app = Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics_endpoint),
            *routes,
        ]
    )
    return Guard(app, access if access is not None else Access())


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
