"""The dashboard: server-rendered pages over the same data as the API (`server.data`).

- `/` home: repos with their health, last applied commit and error; runs in flight; operations
  with their mode, newest run and next tick; recent runs.
- `/repos/<repo>/commits[/<sha>]`: a commit's validation with located errors, the plan, the runs
  it caused, the commit statuses posted (the page commit statuses link to).
- `/ops/<op key>`: the spec as compiled, the schedule with its next and missed ticks,
  subscriptions, run history. `/schedules`: every schedule and when it fires next.
- `/runs/<name>` (the page commit statuses link to): status history, params, outputs, metrics as
  charts, the log followed live, children: a matrix's trials as a sortable table with a chart of
  the objective per trial, a DAG as a graph with each step's status.
- `/login`, `/logout`: a browser signs in with the API token (see `guard`).

Jinja2 templates with autoescaping, every page redacted as the API's answers are; every page
reads fully without JavaScript (sorting is a link, the log's tail and every value are in the
HTML). `static/dashboard.js` adds the live parts (charts, log follow, refreshes) and
`static/vendor/` holds what it uses, vendored from npm (scripts/vendor_js.py): nothing is fetched
from elsewhere, and there is no build step.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

import yaml
from fastapi import APIRouter, Request
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.responses import HTMLResponse, RedirectResponse, Response

from reconciler.logs import redact
from reconciler.model import LogSlice
from reconciler.server import data
from reconciler.server.guard import SCOPE_KEY, SESSION_COOKIE, SESSION_SECONDS, Access, Seen
from reconciler.server.models import ChildOut, RunDetailOut
from reconciler.statuses import ACTIVE, is_done
from reconciler.tracking import Store

TEMPLATES = Path(__file__).with_name("templates")
LOG_LINES = 200
_env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _seen(request: Request) -> Seen:
    found = request.scope.get(SCOPE_KEY)
    return found if isinstance(found, Seen) else Seen(authenticated=False, logs=False)


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    html = _env.get_template(template).render(
        seen=_seen(request), request_path=request.url.path, signin=context.pop("signin", True), **context
    )
    return HTMLResponse(redact(html), status_code=status, headers={"Cache-Control": "no-store"})


def _message(request: Request, title: str, message: str, status: int) -> HTMLResponse:
    return render(request, "message.html", status, title=title, message=message, back="/")


# --- a DAG laid out in columns by depth ------------------------------------------------------------

NODE_W, NODE_H, GAP_X, GAP_Y, PAD = 170, 50, 60, 20, 10


def dag_layout(spec: Mapping[str, Any] | None, children: list[ChildOut]) -> dict[str, Any] | None:
    """Boxes and lines for the DAG `spec` describes, each step with its run's status."""
    run_section = (spec or {}).get("run") or ((spec or {}).get("component") or {}).get("run") or {}
    operations = run_section.get("operations") if isinstance(run_section, dict) else None
    if not isinstance(operations, list) or not operations:
        return None
    needs: dict[str, list[str]] = {}
    for op in operations:
        if isinstance(op, dict) and isinstance(op.get("name"), str):
            needs[op["name"]] = [str(d) for d in op.get("dependencies") or [] if isinstance(d, str)]
    depth: dict[str, int] = {}

    def level(name: str, seen: frozenset[str] = frozenset()) -> int:
        if name in depth:
            return depth[name]
        if name in seen:  # a cycle would have failed compilation; never loop on one here
            return 0
        ups = [level(n, seen | {name}) + 1 for n in needs.get(name, []) if n in needs]
        depth[name] = max(ups, default=0)
        return depth[name]

    for name in needs:
        level(name)
    by_node = {c.node: c for c in children if c.node}
    columns: dict[int, list[str]] = {}
    for name in needs:
        columns.setdefault(depth[name], []).append(name)
    where: dict[str, tuple[int, int]] = {}
    nodes = []
    for col, names in sorted(columns.items()):
        for row, name in enumerate(names):
            x, y = PAD + col * (NODE_W + GAP_X), PAD + row * (NODE_H + GAP_Y)
            where[name] = (x, y)
            child = by_node.get(name)
            nodes.append(
                {
                    "name": name,
                    "x": x,
                    "y": y,
                    "status": str(child.status) if child else "waiting",
                    "run": child.name if child else None,
                    "needs": needs[name],
                }
            )
    edges = [
        {
            "x1": where[up][0] + NODE_W,
            "y1": where[up][1] + NODE_H // 2,
            "x2": where[name][0],
            "y2": where[name][1] + NODE_H // 2,
        }
        for name, ups in needs.items()
        for up in ups
        if up in where
    ]
    width = PAD * 2 + (max(columns) + 1) * NODE_W + max(columns) * GAP_X
    height = PAD * 2 + max(len(v) for v in columns.values()) * (NODE_H + GAP_Y) - GAP_Y
    return {
        "nodes": nodes,
        "edges": edges,
        "width": width,
        "height": height,
        "node_width": NODE_W,
        "node_height": NODE_H,
    }


# --- a matrix's trials ------------------------------------------------------------------------------


def objective_of(spec: Mapping[str, Any] | None, trials: list[ChildOut]) -> dict[str, str] | None:
    """The metric a sweep optimises: its `metric` (bayes, hyperband, tpe), else its first early
    stopping metric, else the first metric its trials report."""
    matrix = (spec or {}).get("matrix") or {}
    metric = matrix.get("metric") if isinstance(matrix, dict) else None
    if isinstance(metric, dict) and isinstance(metric.get("name"), str):
        return {"name": metric["name"], "optimization": str(metric.get("optimization") or "maximize")}
    for rule in (matrix.get("earlyStopping") if isinstance(matrix, dict) else None) or []:
        if isinstance(rule, dict) and isinstance(rule.get("metric"), str):
            optimization = rule.get("optimization")
            direction = "maximize" if optimization in ("maximize", 1) else "minimize"
            return {"name": rule["metric"], "optimization": direction}
    for trial in trials:
        for name in sorted(trial.metrics):
            return {"name": name, "optimization": "minimize" if "loss" in name else "maximize"}
    return None


def trial_view(
    trials: list[ChildOut], objective: dict[str, str] | None, sort: str | None, descending: bool
) -> tuple[list[tuple[str, str]], list[ChildOut], list[dict[str, Any]]]:
    params = sorted({k for t in trials for k in t.params})
    metrics = sorted({k for t in trials for k in t.metrics})
    if objective and objective["name"] in metrics:
        metrics.remove(objective["name"])
        metrics.insert(0, objective["name"])
    columns = [("trial", "Trial"), *((f"param:{p}", p) for p in params), ("status", "Status")]
    columns += [(f"metric:{m}", m) for m in metrics]
    keys = {key for key, _ in columns}
    ordered = list(trials)
    if sort in keys:

        def key_of(t: ChildOut) -> tuple[int, Any]:
            if sort == "trial":
                value: Any = t.trial_index
            elif sort == "status":
                value = str(t.status)
            elif sort.startswith("param:"):
                value = t.params.get(sort[6:])
            else:
                value = t.metrics.get(sort[7:])
            missing = value is None
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                value = str(value)
            return (1 if missing else 0, value)

        present = sorted((t for t in ordered if key_of(t)[0] == 0), key=key_of, reverse=descending)
        ordered = present + [t for t in ordered if key_of(t)[0] == 1]
    points = []
    if objective is not None:
        for t in trials:
            v = t.metrics.get(objective["name"], t.outputs.get(objective["name"]))
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                points.append({"trial": t.trial_index, "value": v, "status": str(t.status), "run": t.name})
    return columns, ordered, points


# --- the routes ------------------------------------------------------------------------------------


def page_router(
    store: Store,
    control: Any = None,
    daemon: data.DaemonView | None = None,
    access: Access | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> APIRouter:
    """The dashboard's routes; `control` (the applier) gives outputs and logs, `access` signs in."""
    view: data.DaemonView = daemon if daemon is not None else data.NoDaemon()
    router = APIRouter(include_in_schema=False, default_response_class=HTMLResponse)
    outputs_of = control.outputs_of if control is not None else (lambda _: {})

    @router.get("/")
    async def home(request: Request) -> Response:
        def gather() -> dict[str, Any]:
            repos = data.repos(store, view, None, 100, None).items
            ops = data.ops(store, None, None, None, None, 500, None, include_removed=False).items
            active = data.runs(store, data.RunFilter(statuses=tuple(sorted(ACTIVE))), 100, None).items
            recent = data.runs(store, data.RunFilter(top_level=True), 20, None).items
            return {"repos": repos, "ops": ops, "active": active, "recent": recent}

        return render(
            request, "home.html", title="Home", heading="What the reconciler does", **await asyncio.to_thread(gather)
        )

    @router.get("/schedules")
    async def schedules(request: Request) -> Response:
        found = await asyncio.to_thread(data.schedules, store, view, None, None, 1000, None, clock())
        return render(request, "schedules.html", title="Schedules", schedules=found.items)

    @router.get("/repos/{repo}/commits")
    async def commits(request: Request, repo: str, cursor: str | None = None) -> Response:
        try:
            page = await asyncio.to_thread(data.commits, store, repo, None, None, 50, cursor)
        except ValueError:
            page = None
        if page is None:
            return _message(request, "Repository not found", f"No repository named {repo}.", 404)
        crumbs = [("Home", "/"), (repo, None)]
        return render(
            request, "commits.html", title=f"{repo}: commits", repo=repo, commits=page.items,
            next_cursor=page.next_cursor, crumbs=crumbs,
        )  # fmt: skip

    @router.get("/repos/{repo}/commits/{sha}")
    async def commit_page(request: Request, repo: str, sha: str) -> Response:
        try:
            found = await asyncio.to_thread(data.commit_detail, store, repo, sha)
        except data.Ambiguous as e:
            return _message(request, "Which commit?", str(e), 409)
        if found is None:
            return _message(request, "Commit not found", f"No commit {sha} in {repo}.", 404)
        known = {o.op_key for o in await asyncio.to_thread(store.operations, repo)}
        crumbs = [("Home", "/"), (repo, f"/repos/{quote(repo)}/commits"), (found.sha[:12], None)]
        return render(
            request, "commit.html", title=f"{repo} @ {found.sha[:12]}", commit=found, crumbs=crumbs, known_ops=known
        )

    @router.get("/ops/{op_key:path}")
    async def op_page(request: Request, op_key: str) -> Response:
        found = await asyncio.to_thread(data.op_detail, store, view, op_key, clock())
        if found is None:
            return _message(request, "Operation not found", f"No operation {op_key}.", 404)
        spec_yaml = yaml.safe_dump(found.spec, sort_keys=False, width=100) if found.spec else ""
        crumbs = [("Home", "/"), (found.repo, f"/repos/{quote(found.repo)}/commits"), (found.name, None)]
        return render(request, "op.html", title=f"Operation {found.name}", op=found, spec_yaml=spec_yaml, crumbs=crumbs)

    @router.get("/runs/{name}")
    async def run_page(request: Request, name: str, sort: str | None = None, desc: str | None = None) -> Response:
        seen = _seen(request)

        def gather() -> dict[str, Any] | None:
            run = data.run_detail(store, name)
            if run is None:
                return None
            found = data.outputs(store, name, outputs_of)
            assert found is not None
            kids = data.children(store, name, data.RunFilter(), 1000, None)
            children = list(kids.items) if kids is not None else []
            context: dict[str, Any] = {
                "run": run,
                "outputs": found,
                "children": children,
                "metrics_data": found.model_dump(mode="json")["metrics"],
            }
            context.update(_log_context(control, name, seen.logs))
            if run.container == "matrix":
                objective = objective_of(run.spec, children)
                columns, ordered, points = trial_view(children, objective, sort, desc == "1")
                context.update(objective=objective, trial_columns=columns, trials=ordered, objective_points=points)
            elif run.container == "dag":
                context["dag"] = dag_layout(run.spec, children)
            return context

        context = await asyncio.to_thread(gather)
        if context is None:
            return _message(request, "Run not found", f"No run named {name}.", 404)
        run: RunDetailOut = context["run"]
        crumbs: list[tuple[str, str | None]] = [("Home", "/"), (run.op.rpartition("#")[2], f"/ops/{quote(run.op)}")]
        if run.parent:
            crumbs.append((run.parent, f"/runs/{quote(run.parent)}"))
        crumbs.append((name, None))
        return render(
            request, "run.html", title=f"Run {name}", run=run, live=not is_done(run.status), sort=sort,
            descending=desc == "1", crumbs=crumbs, token_configured=access is not None and access.token is not None,
            **{k: v for k, v in context.items() if k != "run"},
        )  # fmt: skip

    @router.get("/login")
    async def login_form(request: Request, next: str = "/") -> Response:
        configured = access is not None and access.token is not None
        return render(request, "login.html", title="Sign in", configured=configured, next=_local(next), signin=False)

    @router.post("/login")
    async def login(request: Request) -> Response:
        body = (await request.body()).decode("utf-8", errors="replace")
        form = {k: v[0] for k, v in parse_qs(body, max_num_fields=4).items() if v}
        target = _local(form.get("next", "/"))
        token = form.get("token", "")
        now = time.time()
        value = access.session_cookie(now) if access is not None else None
        if access is None or value is None or not access.bearer_ok(f"Bearer {token}"):
            configured = access is not None and access.token is not None
            return render(
                request, "login.html", 401, title="Sign in", configured=configured, next=target, failed=configured,
                signin=False,
            )  # fmt: skip
        response = RedirectResponse(target, status_code=303)
        secure = request.url.scheme == "https" or bool(access.public_url and access.public_url.startswith("https"))
        response.set_cookie(
            SESSION_COOKIE, value, max_age=SESSION_SECONDS, httponly=True, samesite="strict", secure=secure, path="/"
        )
        return response

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    return router


def _local(target: str) -> str:
    """Where to go after signing in: a path of this server, never another site."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target or len(target) > 2000:
        return "/"
    return target


def _log_context(control: Any, name: str, allowed: bool) -> dict[str, Any]:
    """The last lines of the run's log and where they end (the page follows from there)."""
    if not allowed or control is None:
        return {"logs_allowed": allowed and control is not None, "log_text": "", "log_offset": 0}
    try:
        size = control.read_log(name, 0, 0).size
        start = max(0, size - 256 * 1024)
        piece: LogSlice = control.read_log(name, start, size - start)
    except LookupError:
        return {"logs_allowed": True, "log_text": "", "log_offset": 0}
    text = piece.data.decode("utf-8", errors="replace")
    lines = text.split("\n")
    if start > 0:
        lines = lines[1:]  # the first line of the window may be cut
    tail = "\n".join(lines[-LOG_LINES - 1 :]) if text.endswith("\n") else "\n".join(lines[-LOG_LINES:])
    return {"logs_allowed": True, "log_text": tail, "log_offset": start + len(piece.data)}


def page_routes(store: Store, **options: Any) -> list[Any]:
    """The dashboard's routes, for an app built with `build_app(routes=...)`."""
    return list(page_router(store, **options).routes)


__all__ = ["dag_layout", "objective_of", "page_router", "page_routes", "trial_view"]
