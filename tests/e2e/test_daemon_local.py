"""The daemon end to end on real parts: `reconciler run` as a subprocess, repos served by git's
own smart-HTTP server (and over file://), the local backend running real processes, and the
tracking database on SQLite and on PostgreSQL (created with `reconciler db upgrade`).

Everything is observed from outside, as a user would: the HTTP API, `/metrics`, `/readyz`, the
`reconciler runs|ops` commands, files the runs write, and the database the daemon wrote.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

from reconciler.tracking import Store
from tests.e2e.conftest import MakeDaemon
from tests.e2e.harness import FINAL, DaemonProcess, job, local_run_dir, metric, reconciler_argv, service
from tests.infra.git_server import GitRepoFactory

REPO = "models"
FAST = 0.5  # poll interval (s): changes are picked up quickly without webhooks
# What `reconciler run` promises on SIGTERM: stop taking work, let in-flight reconciles finish
# (the daemon's own deadline is 30 s), exit 0. An idle daemon takes about a second.
SHUTDOWN_DEADLINE = 15.0


def repo_entry(url: str, name: str = REPO, interval: float = FAST, **kw: Any) -> dict[str, Any]:
    return {"name": name, "url": url, "branch": "main", "interval": interval, **kw}


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def applied_commit(db: str, repo: str = REPO) -> str | None:
    """The last commit the daemon recorded for `repo` (written after its plan was applied)."""
    store = Store.open(db)
    try:
        last = store.last_commit(repo)
        return last.sha if last else None
    finally:
        store.close()


# --- (a) commit -> run -> succeeded; (b) new params -> second run, unrelated change -> none --------


def test_commit_runs_job_and_only_new_specs_run_again(
    daemons: MakeDaemon, migrated: str, git_repo_factory: GitRepoFactory, publish: Any, tmp_path: Path
) -> None:
    starts = tmp_path / "starts.log"
    command = f'echo "$POLYAXON_RUN_NAME {{{{ tag }}}}" >> {starts}'
    git = git_repo_factory.create("models", {"README.md": "models\n"})
    served = publish(git)
    daemon = daemons([repo_entry(served.url)], migrated).start()

    first = git.commit("train v1", {"ops/train.yaml": job("train", command, params={"tag": "v1"})})
    git.push()
    run = daemon.wait_run("#train", lambda r: r["status"] == "succeeded", "the first run to succeed")
    assert run["cause"] == "commit" and run["commit"] == first
    history = [h["status"] for h in daemon.api_run(run["name"])["history"]]
    assert history[0] == "created" and history[-1] == "succeeded", history
    assert lines(starts) == [f"{run['name']} v1"]

    # The CLI reads the same database the daemon writes.
    listed = daemon.cli_json("runs", "list")
    assert [(r["name"], r["op"], r["status"], r["cause"], r["commit"]) for r in listed] == [
        (run["name"], f"{REPO}:ops/train.yaml#train", "succeeded", "commit", first)
    ]

    second = git.commit("train v2", {"ops/train.yaml": job("train", command, params={"tag": "v2"})})
    git.push()
    run2 = daemon.wait_run("#train", lambda r: r["commit"] == second and r["status"] == "succeeded", "a second run")
    assert run2["name"] != run["name"]
    assert lines(starts) == [f"{run['name']} v1", f"{run2['name']} v2"]

    # Same operations, another file changed: the commit is applied and nothing runs.
    third = git.commit("docs", {"README.md": "models, v2\n"})
    git.push()
    daemon.wait(lambda: applied_commit(migrated) == third, "the unrelated commit to be applied")
    assert len(daemon.api_runs()) == 2
    assert len(lines(starts)) == 2

    # (f) SIGTERM: a clean exit (0) well within the shutdown deadline, and the server is gone.
    code, took = daemon.terminate(timeout=SHUTDOWN_DEADLINE)
    assert code == 0, daemon.log_tail()
    assert took < SHUTDOWN_DEADLINE
    assert daemon.get("/healthz") is None
    assert "shutting down" in daemon.log_text()


# --- (c) a service runs and is updated in place; (d) a broken commit stops nothing ---------------


def commit_row(db: str, sha: str) -> Any:
    store = Store.open(db)
    try:
        return store.commit(REPO, sha)
    finally:
        store.close()


def run_spec_hash(db: str, name: str) -> str:
    store = Store.open(db)
    try:
        run = store.run(name)
        assert run is not None
        return run.spec_hash
    finally:
        store.close()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def test_service_updated_in_place_and_broken_commit_stops_nothing(
    daemons: MakeDaemon, migrated: str, git_repo_factory: GitRepoFactory, publish: Any, tmp_path: Path
) -> None:
    versions = tmp_path / "web.log"

    def web(version: str) -> str:
        # `exec` keeps the shell's pid, so the pid written is the serving process.
        return service("web", f'echo "{version} $$" >> {versions}; exec sleep 600')

    git = git_repo_factory.create("models", {"ops/web.yaml": web("v1")})
    daemon = daemons([repo_entry(publish(git).url)], migrated).start()

    run = daemon.wait_run("#web", lambda r: r["status"] == "running", "the service to run")
    assert run["kind"] == "service"
    daemon.wait(lambda: len(lines(versions)) == 1, "the service to write its version")
    v1_hash = run_spec_hash(migrated, run["name"])

    git.commit("web v2", {"ops/web.yaml": web("v2")})
    git.push()
    daemon.wait(lambda: [line.split()[0] for line in lines(versions)] == ["v1", "v2"], "the service to restart as v2")
    runs = daemon.wait(
        lambda: (rs := daemon.api_runs()) and all(r["status"] == "running" for r in rs) and rs,
        "the updated service to be running",
    )
    assert [r["name"] for r in runs] == [run["name"]], "an update in place, not a new run"
    assert run_spec_hash(migrated, run["name"]) != v1_hash
    v2_pid = int(lines(versions)[-1].split()[1])
    assert alive(v2_pid)

    # A commit that breaks the service's own file and adds a broken one: nothing is stopped.
    broken_web = web("v3").replace("kind: service", "kind: servise")
    bad = git.commit("oops", {"ops/web.yaml": broken_web, "ops/broken.yaml": "kind: operation\nname: [unclosed\n"})
    git.push()
    row = daemon.wait(lambda: (c := commit_row(migrated, bad)) is not None and c, "the broken commit to be recorded")
    assert row.valid is False
    located = {f"{e['file']}:{e['line']}:{e['column']}" for e in row.errors}
    assert any(re.fullmatch(r"ops/web\.yaml:\d+:\d+", x) for x in located), row.errors
    assert any(re.fullmatch(r"ops/broken\.yaml:\d+:\d+", x) for x in located), row.errors

    ops = daemon.cli_json("ops", "list")
    [web_op] = [o for o in ops if o["op"].endswith("#web")]
    assert web_op["invalid_since"] is not None
    assert web_op["latest_run"] == run["name"] and web_op["latest_status"] == "running"
    metrics = daemon.metrics()
    invalid = re.search(rf'reconciler_reconcile_total\{{repo="{REPO}",result="invalid"\}} (\S+)', metrics)
    assert invalid and float(invalid.group(1)) >= 1, metrics

    # Still the same process, never asked to stop.
    assert alive(v2_pid)
    history = [h["status"] for h in daemon.api_run(run["name"])["history"]]
    assert "stopping" not in history and "stopped" not in history, history
    assert [line.split()[0] for line in lines(versions)] == ["v1", "v2"]


# --- (e) kill -9 at random points, restart: one run per (op, commit), one process per run ---------

KILL_LOOP_SECONDS = 12.0


def db_runs(db: str) -> list[tuple[Any, str]]:
    store = Store.open(db)
    try:
        return store.list_runs(limit=1000)
    finally:
        store.close()


def crash_point(daemon: DaemonProcess, db: str, sha: str) -> str:
    """Where the crash caught the run of `sha`: what the database and the backend's dir hold."""
    recorded = [r for r, _ in db_runs(db) if r.commit_sha == sha]
    if not recorded:
        return "before recording"
    if recorded[0].backend_ref is not None:
        return "submitted and recorded"
    if local_run_dir(daemon.data_dir, recorded[0].name).exists():
        return "submitted, reference not recorded"
    return "recorded, not submitted"


def test_kill_9_at_random_points_never_duplicates_a_run(
    daemons: MakeDaemon, migrated: str, git_repo_factory: GitRepoFactory, tmp_path: Path
) -> None:
    """Crash the daemon over and over while commits arrive; then let one daemon converge.

    Each round pushes a commit with new params (so a new run is due), starts the daemon, and
    SIGKILLs it either the moment the round's run shows up in the database (the window between
    recording a run and submitting it, which the applier's record-then-submit order must survive)
    or after a random delay (anywhere: startup, fetch, compile, submit, observing). Every process
    start of the job appends its run name to one file (O_APPEND), so a run started twice shows.
    """
    seed = int(os.environ.get("RECONCILER_E2E_SEED", time.time_ns() % 1_000_000))
    rng = random.Random(seed)
    starts = tmp_path / "starts.log"
    command = f'echo "$POLYAXON_RUN_NAME" >> {starts}; sleep 0.2'
    git = git_repo_factory.create("models", {"README.md": "models\n"})
    daemon = daemons([repo_entry(git.file_url, interval=0.2)], migrated)

    kills: list[str] = []
    commits: list[str] = []
    deadline = time.monotonic() + KILL_LOOP_SECONDS
    round_ = 0
    while time.monotonic() < deadline:
        round_ += 1
        sha = git.commit(f"round {round_}", {"ops/train.yaml": job("train", command, params={"round": str(round_)})})
        git.push()
        commits.append(sha)
        daemon.spawn()
        if round_ % 2:
            # Kill as soon as the run for this commit is recorded (polling as fast as the DB answers).
            limit = time.monotonic() + 15
            while time.monotonic() < limit and not any(r.commit_sha == sha for r, _ in db_runs(migrated)):
                if not daemon.running:
                    raise AssertionError(f"the daemon exited on its own:\n{daemon.log_tail()}")
            daemon.kill9()
            kills.append(crash_point(daemon, migrated, sha))
        else:
            # A random point of the daemon's life (this sleep injects the crash; it synchronises nothing).
            delay = rng.uniform(0.0, 2.5)
            time.sleep(delay)
            daemon.kill9()
            kills.append(f"after {delay:.2f}s")
    context = f"seed {seed}, kills: {kills}"
    # A commit the daemon never saw as the head (pushed and superseded while it was down) rightly
    # gets no run: the desired state is the head's. So: at most one run per commit, one for the head.

    daemon.start()
    head = commits[-1]

    def converged() -> list[dict[str, Any]] | None:
        runs = daemon.api_runs(limit="1000")
        if any(r["commit"] == head for r in runs) and all(r["status"] in FINAL for r in runs):
            return runs
        return None

    try:
        runs = daemon.wait(converged, f"every run to finish ({context})", timeout=30)
    finally:
        report = [(r["name"], r["commit"][:8], r["status"]) for r in daemon.api_runs(limit="1000")]
        context += f", runs: {report}, started: {lines(starts)}"
    per_commit: dict[str, list[str]] = {}
    for r in runs:
        assert r["op"] == f"{REPO}:ops/train.yaml#train" and r["cause"] == "commit"
        per_commit.setdefault(r["commit"], []).append(r["name"])
    assert all(len(names) == 1 for names in per_commit.values()), f"duplicate runs {per_commit} ({context})"
    assert set(per_commit) <= set(commits)
    started = lines(starts)
    assert sorted(started) == sorted(set(started)), f"a run's process started twice: {started} ({context})"
    assert set(started) <= {r["name"] for r in runs}, f"a process for a run nobody recorded ({context})"
    assert head in {r["commit"] for r in runs if r["name"] in started}, f"the head's run never ran ({context})"
    for r in runs:
        # Every recorded run ran once and finished, whatever instant the daemon was killed at: a
        # crash between record and submit is resubmitted, and an attempt whose wrapper never
        # started is launched again by the local backend (it tells that apart from "started").
        assert r["name"] in started, f"{r['name']} never ran ({context})"
        assert r["status"] == "succeeded", f"{r['name']} is {r['status']} ({context})"


# --- (g) /readyz follows each repo's reachability; (h) a broken repo blocks no other --------------


def readiness(daemon: DaemonProcess) -> tuple[int, dict[str, str]]:
    answer = daemon.get("/readyz")
    assert answer is not None
    return answer[0], json.loads(answer[1])["failing"]


def test_unreachable_repo_fails_readiness_and_blocks_no_other(
    daemons: MakeDaemon, git_repo_factory: GitRepoFactory, publish: Any, tmp_path: Path
) -> None:
    git = git_repo_factory.create("models", {"ops/hello.yaml": job("hello", "echo hello")})
    late_path = tmp_path / "late.git"  # nothing there yet: this repo's fetches fail from the start
    gone = tmp_path / "gone.git"  # never there
    # The broken repos come first, so they are the first work the daemon's workers pick up.
    daemon = daemons(
        [
            repo_entry(late_path.as_uri(), name="late"),
            repo_entry(gone.as_uri(), name="gone"),
            repo_entry(publish(git).url),
        ],
        f"sqlite:///{tmp_path / 'db.sqlite'}",
    ).start()

    # (h) The good repo reconciles at once, although the others fail every fetch. (Not the
    # generic deadline: a broken repo holding a worker for seconds would pass that.)
    started = time.monotonic()
    daemon.wait_run("models:ops/hello.yaml#hello", lambda r: r["status"] != "created", "the good repo's job", 5.0)
    delay = time.monotonic() - started
    daemon.wait_run("models:ops/hello.yaml#hello", lambda r: r["status"] == "succeeded", "the good repo's job")
    _, failing = daemon.wait(
        lambda: (r := readiness(daemon))[0] == 503 and "late" in r[1].get("repos", "") and r,
        "/readyz to name the broken repos",
    )
    assert "gone" in failing["repos"] and "models" not in failing["repos"], failing
    assert set(failing) == {"repos"}, "the database and the backend are fine"
    metrics = daemon.metrics()
    for broken in ("late", "gone"):
        assert metric(metrics, "reconciler_reconcile_total", repo=broken, result="error") >= 1, broken
        assert metric(metrics, "reconciler_git_fetch_errors_total", repo=broken) >= 1, broken
    assert metric(metrics, "reconciler_reconcile_total", repo="models", result="success") >= 1

    # (g) The good repo's remote goes away: /readyz names it; it comes back: it does not.
    moved = tmp_path / "moved-away.git"
    shutil.move(git.remote, moved)
    daemon.wait(lambda: "models" in readiness(daemon)[1].get("repos", ""), "/readyz to name the unreachable repo")
    shutil.move(moved, git.remote)
    daemon.wait(lambda: "models" not in readiness(daemon)[1].get("repos", ""), "/readyz to drop the repo again")

    # The late repo appears: its operations run, and only the one never there is still named.
    other = git_repo_factory.create("late", {"ops/late.yaml": job("late", "echo late")})
    shutil.move(other.remote, late_path)
    daemon.wait_run("late:ops/late.yaml#late", lambda r: r["status"] == "succeeded", "the late repo's job")
    daemon.wait(lambda: readiness(daemon)[1].get("repos", "").startswith("gone:"), "/readyz to name only gone")

    # The last one appears too, and an operator asks for a sync now rather than after its backoff.
    shutil.move(git_repo_factory.create("gone", {"README.md": "gone\n"}).remote, gone)
    answer = daemon.get("/api/repos/gone/sync", method="POST")
    assert answer is not None and answer[0] == 202
    daemon.wait(lambda: readiness(daemon) == (200, {}), "/readyz to answer 200")
    assert delay < 5.0


# --- (i) a signed push webhook reconciles now, and the commit gets its statuses -------------------

PROJECT = "acme/models"


def forge_states(forge: Any, sha: str) -> dict[str, str]:
    """The latest state per context GitHub would show for `sha`."""
    latest: dict[str, str] = {}
    for status in forge.statuses("github", PROJECT, sha):  # oldest first
        latest[status["context"]] = status["state"]
    return latest


def test_push_webhook_reconciles_before_the_poll_and_posts_statuses(
    migrated: str,
    daemons: MakeDaemon,
    git_repo_factory: GitRepoFactory,
    publish: Any,
    forge_server: Any,
    webhook_sender: Any,
    tmp_path: Path,
) -> None:
    token, secret = tmp_path / "forge-token", tmp_path / "webhook-secret"
    token.write_text(forge_server.tokens["github"] + "\n")
    secret.write_text("webhook-secret\n")
    token.chmod(0o600)
    secret.chmod(0o600)
    git = git_repo_factory.create("models", {"README.md": "models\n"})
    forge = {
        "provider": "github",
        "project": PROJECT,
        "api_url": forge_server.url("github"),
        "token_file": str(token),
        "webhook_secret_file": str(secret),
    }
    daemon = daemons([repo_entry(publish(git).url, interval=3600, forge=forge)], migrated).start()
    first = git.head()
    daemon.wait(lambda: applied_commit(migrated) == first, "the startup reconcile")
    daemon.wait(lambda: forge_states(forge_server, first).get("polyaxon/validate") == "success", "validate status")

    sha = git.commit("train", {"ops/train.yaml": job("train", "echo trained")})
    git.push()
    url = f"{daemon.url}/webhooks/github"
    unsigned = webhook_sender.push("github", url, repo=PROJECT, ref="refs/heads/main", before=first, after=sha)[0]
    assert webhook_sender.deliver(url, unsigned.tampered()).status == 401
    _, answer = webhook_sender.push("github", url, repo=PROJECT, ref="refs/heads/main", before=first, after=sha)
    assert answer.status == 200, answer.body

    # Well before the hour-long poll: the webhook's reconcile runs the job.
    run = daemon.wait_run("#train", lambda r: r["status"] == "succeeded", "the pushed job to succeed", 20.0)
    assert run["commit"] == sha
    states = daemon.wait(
        lambda: (s := forge_states(forge_server, sha)).get("polyaxon/train") == "success" and s,
        "polyaxon/train success on the forge",
    )
    assert states["polyaxon/validate"] == "success", states
    contexts = [s["context"] for s in forge_server.statuses("github", PROJECT, sha)]
    assert contexts.count("polyaxon/validate") == 1, "never posted twice for the same state"
    posted = forge_server.requests("github", "POST", rf"/repos/{PROJECT}/statuses/{sha}")
    assert posted and all(r.status == 201 for r in posted)


# --- the schema is an operator's step: the daemon refuses a database without it -------------------


def test_daemon_refuses_a_database_without_schema_until_db_upgrade(
    db_url: str, daemons: MakeDaemon, git_repo_factory: GitRepoFactory, tmp_path: Path
) -> None:
    if db_url.startswith("sqlite:///"):
        # A new SQLite file is created and migrated by the daemon itself; an existing one is not.
        with sqlite3.connect(db_url.removeprefix("sqlite:///")) as conn:
            conn.execute("CREATE TABLE unrelated (x INTEGER)")
    git = git_repo_factory.create("models", {"ops/hello.yaml": job("hello", "echo hello")})
    daemon = daemons([repo_entry(git.file_url)], db_url)

    refused = daemon.spawn()
    assert refused.wait(60) == 1
    log = daemon.log_text()
    assert "has no schema yet; run `reconciler db upgrade --config FILE` to create it" in log, log
    assert "Traceback" not in log
    assert daemon.get("/healthz") is None

    upgraded = subprocess.run(
        [*reconciler_argv(), "db", "upgrade", "--db", db_url], capture_output=True, text=True, timeout=120, check=False
    )
    assert upgraded.returncode == 0, upgraded.stderr
    daemon.start()
    daemon.wait_run("#hello", lambda r: r["status"] == "succeeded", "the job, once the schema exists")


# --- triggers (webhooks, `POST /api/repos/<repo>/sync`) do not multiply the polling ---------------


def test_triggers_do_not_multiply_the_poll(
    daemons: MakeDaemon, git_repo_factory: GitRepoFactory, tmp_path: Path
) -> None:
    """Every trigger is one extra reconcile, after which the repo polls at its interval again.

    Each reconcile re-arms the poll timer; if a trigger's reconcile armed a second timer beside
    the one already waiting, N triggers would leave N+1 timers and the repo would be fetched
    N+1 times per interval, for ever.
    """
    interval = 1.0
    git = git_repo_factory.create("models", {"README.md": "models\n"})
    daemon = daemons([repo_entry(git.file_url, interval=interval)], f"sqlite:///{tmp_path / 'db.sqlite'}").start()

    def reconciles() -> float:
        return metric(daemon.metrics(), "reconciler_reconcile_total", repo=REPO, result="success")

    daemon.wait(lambda: reconciles() >= 1, "the first reconcile")
    for _ in range(6):
        before = reconciles()
        answer = daemon.get(f"/api/repos/{REPO}/sync", method="POST")
        assert answer is not None and answer[0] == 202
        daemon.wait(lambda before=before: reconciles() > before, "the triggered reconcile")

    start, before = time.monotonic(), reconciles()
    daemon.wait(lambda: reconciles() >= before + 3, "three more polls")
    took = time.monotonic() - start
    # One timer: three polls take about two to three intervals. Seven timers: a fraction of one.
    assert took >= 1.5 * interval, f"3 polls in {took:.2f}s with a {interval}s interval"


# --- (f) SIGINT during a reconcile: the reconcile in flight ends before the daemon exits ----------


def test_sigint_lets_the_reconcile_in_flight_finish(
    daemons: MakeDaemon, git_repo_factory: GitRepoFactory, publish: Any, tmp_path: Path
) -> None:
    hang = 2.0
    git = git_repo_factory.create("models", {"README.md": "models\n"})
    served = publish(git)
    daemon = daemons([repo_entry(served.url)], f"sqlite:///{tmp_path / 'db.sqlite'}").start()
    polls = lambda: metric(daemon.metrics(), "reconciler_reconcile_total", repo=REPO, result="success")  # noqa: E731
    daemon.wait(lambda: polls() >= 1, "a poll")

    served.hang_next(1, seconds=hang)  # the next fetch gets no answer for a while
    daemon.wait(lambda: any(r.injected == "hang" for r in served.requests()), "a fetch to be in flight")
    assert daemon.proc is not None
    started = time.monotonic()
    daemon.proc.send_signal(signal.SIGINT)
    code = daemon.proc.wait(SHUTDOWN_DEADLINE)
    took = time.monotonic() - started
    assert code == 0, daemon.log_tail()
    log = daemon.log_text()
    # It waited for the fetch to end (here: fail when the connection dropped) instead of walking
    # away from it, and took no new work after the signal.
    assert took >= hang * 0.8, f"exited after {took:.2f}s, while a fetch hung for {hang}s"
    after = log[log.index("shutting down") :]
    assert "reconcile failed; retrying" in after, after
    assert "fetched refs/heads/main" not in after, "new work taken after the signal"
