"""The API over real HTTP from the production daemon: every list pages and filters, details say
what the dashboard shows, runs report with their own tokens, and errors are `{error, detail}`."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import httpx

from tests.integration.server.world import World


def get(world: Any, path: str, **kw: Any) -> httpx.Response:
    return httpx.get(world.url + path, timeout=10, **kw)


def test_repos_commits_and_what_a_commit_did(served: Any) -> None:
    w: World = served
    [repo] = get(w, "/api/repos").json()
    assert repo["name"] == "r" and repo["last_applied"]["sha"] == w.bad and repo["last_applied"]["valid"] is False
    commits = get(w, "/api/repos/r/commits").json()
    assert [c["sha"] for c in commits] == [w.bad, w.good]
    error = commits[0]["errors"][0]
    assert error["file"] == "ops/broken.yaml" and error["location"] == "ops/broken.yaml:4:41"
    assert [c["sha"] for c in get(w, "/api/repos/r/commits?valid=true").json()] == [w.good]

    detail = get(w, f"/api/repos/r/commits/{w.good[:10]}").json()  # a short sha will do
    assert detail["sha"] == w.good and detail["valid"] is True
    planned = {(p["action"], p["op"]) for p in detail["plan"]}
    assert ("create", "r:ops/train.yaml#train") in planned and (
        "register_schedule",
        "r:ops/nightly.yaml#nightly",
    ) in planned
    caused = {r["name"] for r in detail["runs"]}
    assert {w.train, w.sweep, w.flow} <= caused
    assert detail["statuses"] == []  # no forge configured for this repo

    assert get(w, "/api/repos/r/commits/" + "f" * 40).status_code == 404
    assert get(w, "/api/repos/nope/commits").json() == {"error": "no repo named nope", "detail": {"repo": "nope"}}


def test_ops_schedules_and_what_an_op_is(served: Any) -> None:
    w: World = served
    ops = {o["op"]: o for o in get(w, "/api/ops").json()}
    assert set(ops) >= {"r:ops/train.yaml#train", "r:ops/sweep.yaml#sweep", "r:ops/nightly.yaml#nightly"}
    assert not any("." in key.rpartition("#")[2] for key in ops)  # DAG steps and trials are under their run
    assert ops["r:ops/train.yaml#train"]["latest"]["status"] == "succeeded"
    assert ops["r:ops/nightly.yaml#nightly"]["next_tick"] is not None
    assert [o["op"] for o in get(w, "/api/ops?status=succeeded&repo=r").json()] == [
        k for k, o in sorted(ops.items()) if o["latest"] and o["latest"]["status"] == "succeeded"
    ]

    nightly = get(w, "/api/ops/" + quote("r:ops/nightly.yaml#nightly", safe="")).json()
    assert nightly["mode"] and nightly["spec"]["schedule"]["cron"] == "0 2 * * *"
    assert len(nightly["schedule"]["next_ticks"]) == 3 and nightly["schedule"]["timezone"] == "UTC"
    [missed] = nightly["ticks"]
    assert missed["outcome"] == "missed" and missed["count"] == 2
    assert nightly["schedule"]["missed"] == 2

    train = get(w, "/api/ops/" + quote("r:ops/train.yaml#train", safe="")).json()
    assert train["subscriptions"] == [
        {"op": "r:ops/report.yaml#report", "source": "r:ops/train.yaml#train", "kinds": ["succeeded"]}
    ]
    assert [r["name"] for r in train["runs"]] == [w.train]

    [schedule] = get(w, "/api/schedules").json()
    assert schedule["op"] == "r:ops/nightly.yaml#nightly" and schedule["kind"] == "cron" and schedule["runs"] == 0
    assert get(w, "/api/ops/" + quote("r:nope#x", safe="")).status_code == 404


def test_runs_page_with_cursors_and_filter(served: Any) -> None:
    w: World = served
    everything = get(w, "/api/runs?limit=1000").json()
    seen, url = [], "/api/runs?limit=2"
    while url:
        answer = get(w, url)
        page = answer.json()
        assert len(page) <= 2
        seen += [r["name"] for r in page]
        assert ("X-Next-Cursor" in answer.headers) == ("Link" in answer.headers)
        url = answer.headers["Link"].split(">")[0].lstrip("<") if "Link" in answer.headers else ""
    assert seen == [r["name"] for r in everything] and len(seen) == len(set(seen))
    assert set(everything[0]) == {
        "name",
        "op",
        "kind",
        "status",
        "cause",
        "cause_id",
        "commit",
        "parent",
        "backend",
        "created_at",
        "started_at",
        "finished_at",
    }  # fmt: skip  (runs list --format json's fields, exactly)
    matrix = get(w, "/api/runs?cause=matrix").json()
    assert sorted(r["name"] for r in matrix) == sorted(w.trials)
    assert get(w, "/api/runs?since=2099-01-01T00:00:00Z").json() == []
    assert {r["status"] for r in get(w, "/api/runs?status=stopped").json()} <= {"stopped"}


def test_a_matrix_shows_its_trials_and_early_stopping_on_intermediate_values(served: Any) -> None:
    w: World = served
    trials = get(w, f"/api/runs/{w.sweep}/children").json()
    assert [t["trial_index"] for t in trials] == [0, 1, 2]
    assert [t["params"]["lr"] for t in trials] == [0.01, 0.05, 0.1]
    assert trials[0]["status"] == "succeeded" and trials[0]["metrics"]["loss"] == 0.8
    stopped = [t for t in trials if t["status"] == "stopped"]
    assert stopped, trials
    for trial in stopped:
        history = get(w, f"/api/runs/{trial['name']}").json()["history"]
        assert any(h["reason"] == "EarlyStoppingMedian" and "median" in h["message"] for h in history), history
    outputs = get(w, f"/api/runs/{w.trials[0]}/outputs").json()
    assert [p["value"] for p in outputs["metrics"]["loss"]] == [1.0, 0.8]
    assert [p["step"] for p in outputs["metrics"]["loss"]] == [0, 1]
    assert outputs["params"] == {"lr": 0.01} and outputs["outputs"] == {"loss": 0.8, "model": "s3://trial-0"}
    dag = get(w, f"/api/runs/{w.flow}/children").json()
    assert [(s["node"], s["status"]) for s in dag] == [("prepare", "succeeded"), ("fit", "running")]
    assert get(w, f"/api/runs/{w.flow}").json()["container"] == "dag"
    assert get(w, "/api/runs/nope/children").status_code == 404


def test_a_run_reports_with_its_token_and_nothing_else(served: Any) -> None:
    w: World = served
    tokens = w.h.daemon.applier.run_tokens
    assert tokens is not None
    fit = w.steps[1]

    def post(run: str, what: str, body: Any, token: str | None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return httpx.post(
            f"{w.url}/api/runs/{run}/{what}", content=content, headers={**headers, "Content-Type": "application/json"}
        )

    ok = post(fit, "metrics", {"metrics": {"loss": 0.5, "acc": 0.7}, "step": 4}, tokens.token(fit))
    assert ok.status_code == 202 and ok.json() == {"run": fit, "metrics": 2, "outputs": 2}
    ok = post(fit, "outputs", {"outputs": {"model": "s3://m", "loss": 0.4}}, tokens.token(fit))
    assert ok.status_code == 202 and ok.json()["metrics"] == 1
    reported = get(w, f"/api/runs/{fit}/outputs").json()
    assert reported["outputs"] == {"acc": 0.7, "loss": 0.4, "model": "s3://m"}
    assert [(p["step"], p["value"]) for p in reported["metrics"]["loss"]] == [(4, 0.5), (5, 0.4)]

    wrong = [
        (post(fit, "metrics", {"metrics": {"loss": 1}}, None), 401),
        (post(fit, "metrics", {"metrics": {"loss": 1}}, tokens.token(w.train)), 401),  # another run's
        (post(fit, "metrics", {"metrics": {"loss": 1}}, "prt_forged"), 401),
        (post(w.train, "metrics", {"metrics": {"loss": 1}}, tokens.token(w.train)), 409),  # done
        (post(fit, "metrics", {"metrics": {}}, tokens.token(fit)), 400),
        (post(fit, "metrics", b'{"metrics": {"loss": NaN}}', tokens.token(fit)), 400),
        (post(fit, "metrics", {"metrics": {"loss": "high"}}, tokens.token(fit)), 400),
        (post(fit, "metrics", {"metrics": {"a b": 1}}, tokens.token(fit)), 400),
        (post(fit, "metrics", {"metrics": {"loss": 1}, "extra": 1}, tokens.token(fit)), 400),
        (post(fit, "outputs", b'{"outputs": {"x": ' + b"[" * 100 + b"]" * 100 + b"}}", tokens.token(fit)), 400),
        (post(fit, "outputs", b'{"outputs": {"x": "' + b"y" * 2_000_000 + b'"}}', tokens.token(fit)), 413),
        (post(fit, "outputs", b"not json", tokens.token(fit)), 400),
    ]
    problems = [
        f"{r.request.content[:60]!r}: {r.status_code} {r.text[:200]}" for r, want in wrong if r.status_code != want
    ]
    assert not problems, "\n".join(problems)
    for answer, _ in wrong:
        body = answer.json()
        assert set(body) == {"error", "detail"} and body["error"], body
    before = get(w, f"/api/runs/{fit}/outputs").json()
    assert before == reported or before["metrics"] == reported["metrics"]  # nothing refused was recorded
