"""`reconciler plan` against real git repositories (temp dirs, the git CLI, file:// URLs)."""

from __future__ import annotations

import json
import os
import pwd
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reconciler.cli import app
from reconciler.commands.plan import open_repo
from reconciler.loader import LoadedCommit, load_commit
from reconciler.model import ObservedObject
from reconciler.plan import Action, PlanOptions, TrackedState, apply_effects, changes, plan

NOW = "2024-06-01T12:00:00+00:00"
GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}

JOB = "kind: operation\nname: train\nrun: {kind: job, container: {image: 'python:3.11', command: [python, t.py]}}\n"
SERVICE = "kind: operation\nrun: {kind: service, ports: [80], container: {image: 'nginx:1'}}\n"
CRON = "kind: operation\nschedule: {kind: cron, cron: '0 2 * * *'}\nrun: {kind: job, container: {image: busybox}}\n"
NOTIFY = (
    "kind: operation\nevents: [{kinds: [run_status_succeeded], ref: ops.train}]\n"
    "run: {kind: job, container: {image: busybox}}\n"
)
BROKEN = "kind: operation\nrun:\n  kind: job\n  container: {imag: busybox}\n"


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, env={**os.environ, **GIT_ENV}, capture_output=True, text=True, check=True, timeout=60
    )
    return done.stdout.strip()


Commit = Callable[..., str]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "demo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    return path


def commit(repo: Path, files: dict[str, str | None], message: str = "change") -> str:
    for name, text in files.items():
        target = repo / name
        if text is None:
            git(repo, "rm", "-q", name)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        git(repo, "add", name)
    git(repo, "commit", "-q", "--allow-empty", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def run_plan(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["plan", *args, "--now", NOW])
    return result.exit_code, result.stdout, result.stderr


def test_plan_of_a_valid_repo_lists_creates_schedules_subscriptions_and_a_summary(repo: Path) -> None:
    sha = commit(
        repo,
        {"ops/train.yaml": JOB, "ops/web.yaml": SERVICE, "ops/nightly.yaml": CRON, "ops/notify.yaml": NOTIFY},
    )
    code, out, _ = run_plan("--repo", str(repo))
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0] == f"commit {sha}"
    assert lines[1].startswith("+ create demo:ops/web.yaml#web (service) -> web-")  # services first
    assert lines[2] == "+ schedule demo:ops/nightly.yaml#nightly (job): new cron schedule"
    assert lines[3] == "    next: 2024-06-02T02:00:00+00:00, 2024-06-03T02:00:00+00:00, 2024-06-04T02:00:00+00:00"
    assert lines[4] == "+ subscribe demo:ops/notify.yaml#notify (job): subscribe to ops.train"
    assert lines[5].startswith("+ create demo:ops/train.yaml#train (job) -> train-")
    assert lines[-1].startswith("Plan: 2 to create, 0 to update, 0 to stop/delete/prune, 1 schedule change(s)")


def test_json_output_has_commit_actions_and_located_errors(repo: Path) -> None:
    sha = commit(repo, {"ops/train.yaml": JOB, "ops/bad.yaml": BROKEN})
    code, out, _ = run_plan("--repo", str(repo), "--format", "json")
    assert code == 1
    report = json.loads(out)
    assert report["commit"] == sha
    assert [(a["action"], a["op"]) for a in report["actions"]] == [
        ("invalid", "demo:ops/bad.yaml#bad"),
        ("create", "demo:ops/train.yaml#train"),
    ]
    assert all({"action", "op", "kind", "reason"} <= set(a) for a in report["actions"])
    (error,) = report["errors"]
    assert (error["path"], error["line"]) == ("ops/bad.yaml", 4)
    assert "imag" in error["message"]


def test_invalid_file_is_printed_like_a_compiler_error_and_exits_1(repo: Path) -> None:
    commit(repo, {"ops/bad.yaml": BROKEN})
    code, out, _ = run_plan("--repo", str(repo))
    assert code == 1
    assert out.splitlines()[1].startswith("! invalid ops/bad.yaml:4:")


def test_refs_branches_old_commits_deleted_and_renamed_files(repo: Path) -> None:
    first = commit(repo, {"ops/train.yaml": JOB, "ops/web.yaml": SERVICE})
    git(repo, "checkout", "-q", "-b", "feature")
    commit(repo, {"ops/nightly.yaml": CRON})
    git(repo, "checkout", "-q", "main")
    git(repo, "mv", "ops/web.yaml", "ops/frontend.yaml")
    commit(repo, {"ops/train.yaml": None})

    def ops(*args: str) -> set[str]:
        code, out, _ = run_plan("--repo", str(repo), "--format", "json", *args)
        assert code == 0, out
        return {a["op"] for a in json.loads(out)["actions"]}

    assert ops() == {"demo:ops/frontend.yaml#frontend"}
    assert ops("--ref", "feature") == {
        "demo:ops/train.yaml#train",
        "demo:ops/web.yaml#web",
        "demo:ops/nightly.yaml#nightly",
    }
    assert ops("--ref", first) == {"demo:ops/train.yaml#train", "demo:ops/web.yaml#web"}
    assert ops("--ref", "main~1") == {"demo:ops/train.yaml#train", "demo:ops/web.yaml#web"}


def test_urls_are_cloned_and_a_force_push_is_seen(repo: Path, tmp_path: Path) -> None:
    commit(repo, {"ops/train.yaml": JOB})
    remote = tmp_path / "remote.git"
    git(tmp_path, "clone", "-q", "--bare", str(repo), str(remote))
    url = remote.as_uri()
    code, out, _ = run_plan("--repo", url, "--format", "json")
    assert code == 0
    assert json.loads(out)["actions"][0]["op"] == "remote:ops/train.yaml#train"  # name from the URL, less .git
    # Rewrite history and force-push: the plan follows the new tip.
    (repo / "ops/train.yaml").write_text(JOB.replace("train", "fit"))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--amend", "-m", "rewritten")
    new = git(repo, "rev-parse", "HEAD")
    git(repo, "push", "-q", "--force", str(remote), "main")
    code, out, _ = run_plan("--repo", url, "--format", "json", "--name", "ml")
    report = json.loads(out)
    assert report["commit"] == new
    assert report["actions"][0]["op"] == "ml:ops/train.yaml#fit"
    # A commit sha cannot be cloned shallowly by name; the full clone fallback reads it.
    code, out, _ = run_plan("--repo", url, "--ref", new, "--format", "json")
    assert code == 0 and json.loads(out)["commit"] == new


def test_unreadable_repos_exit_2(repo: Path, tmp_path: Path) -> None:
    commit(repo, {"ops/train.yaml": JOB})
    code, _, err = run_plan("--repo", str(tmp_path / "missing"))
    assert code == 2 and "no such directory" in err
    code, _, err = run_plan("--repo", str(repo), "--ref", "no-such-branch")
    assert code == 2 and "cannot read" in err
    code, _, err = run_plan("--repo", (tmp_path / "nowhere.git").as_uri())
    assert code == 2
    plain = tmp_path / "plain"
    (plain / "ops").mkdir(parents=True)
    (plain / "ops/train.yaml").write_text(JOB)
    code, _, err = run_plan("--repo", str(plain), "--ref", "main")
    assert code == 2 and "not a git repository" in err
    code, out, _ = run_plan("--repo", str(plain))
    assert code == 0 and out.startswith("commit worktree")


def test_db_option_plans_against_what_the_daemon_recorded(repo: Path, tmp_path: Path) -> None:
    from reconciler.model import Cause
    from reconciler.tracking import Store, upgrade

    sha = commit(repo, {"ops/train.yaml": JOB})
    db = f"sqlite:///{tmp_path / 'tracking.db'}"
    upgrade(db)
    code, out, _ = run_plan("--repo", str(repo), "--db", db, "--name", "demo")
    assert code == 0 and "+ create demo:ops/train.yaml#train" in out

    with open_repo(str(repo), None, "demo") as (reader, head):
        loaded = load_commit(reader, "demo", head)
    assert isinstance(loaded, LoadedCommit)
    desired = loaded.desired
    [op] = desired.ops.values()
    store = Store.open(db)
    try:
        at = datetime.fromisoformat(NOW)
        store.ensure_repo("demo", str(repo), "main", at)
        store.upsert_operation(str(op.key), "demo", op.mode.value, at, spec_hash=op.spec_hash, commit_sha=sha)
        store.create_run(
            op_key=str(op.key),
            cause=Cause.COMMIT,
            cause_id=sha,
            name="train-1",
            spec_hash=op.spec_hash,
            backend="local",
            now=at,
            commit_sha=sha,
            kind="job",
            spec=op.effective,
        )
    finally:
        store.close()
    code, out, _ = run_plan("--repo", str(repo), "--db", db, "--name", "demo")
    assert code == 0
    assert "+ create" not in out, "the run the database knows is not created again"
    # No database yet: planned as if nothing ran, and none is created by asking.
    code, out, err = run_plan("--repo", str(repo), "--db", f"sqlite:///{tmp_path / 'missing.db'}")
    assert code == 0 and "no tracking database yet" in err and "+ create" in out
    assert not (tmp_path / "missing.db").exists()
    # A database that exists but was never migrated is an error that names the fix.
    import sqlite3

    sqlite3.connect(tmp_path / "foreign.db").execute("CREATE TABLE t (x)").connection.close()
    code, _, err = run_plan("--repo", str(repo), "--db", f"sqlite:///{tmp_path / 'foreign.db'}")
    assert code == 2 and "reconciler db upgrade" in err


def _sync(repo: Path, state: dict[str, object], now: datetime, options: PlanOptions | None = None) -> list[Action]:
    """One daemon cycle over real git: read HEAD, compile (incrementally), plan, apply the effects."""
    with open_repo(str(repo), None, "demo") as (reader, head):
        loaded = load_commit(reader, "demo", head, previous=state.get("loaded"))  # type: ignore[arg-type]
    assert isinstance(loaded, LoadedCommit)
    result = loaded.compiled
    observed: list[ObservedObject] = state.get("observed", [])  # type: ignore[assignment]
    tracked: TrackedState = state.get("tracked", TrackedState())  # type: ignore[assignment]
    actions = plan(result.desired, observed, tracked, now, options)
    state["observed"], state["tracked"] = apply_effects(actions, observed, tracked, now)
    state["loaded"] = loaded
    return actions


def summary_of(actions: list[Action]) -> list[tuple[str, str]]:
    return [(a.action.value, a.op.name) for a in changes(actions)]


def test_history_follows_the_semantics_table_and_converges(repo: Path) -> None:
    """Each design.md §4 row across real commits, applying each plan's effects before the next."""
    state: dict[str, object] = {}
    t = datetime(2024, 6, 1, tzinfo=UTC)
    commit(repo, {"ops/train.yaml": JOB, "ops/web.yaml": SERVICE, "ops/nightly.yaml": CRON, "ops/notify.yaml": NOTIFY})
    assert summary_of(_sync(repo, state, t)) == [
        ("create", "web"),
        ("register_schedule", "nightly"),
        ("subscribe", "notify"),
        ("create", "train"),
    ]
    assert changes(_sync(repo, state, t)) == []  # converged

    # On change in Git: new job hash -> new run; service updated in place; schedule re-registered.
    commit(
        repo,
        {
            "ops/train.yaml": JOB.replace("t.py", "t2.py"),
            "ops/web.yaml": SERVICE.replace("nginx:1", "nginx:2"),
            "ops/nightly.yaml": CRON.replace("0 2", "0 3"),
            "ops/notify.yaml": NOTIFY.replace("succeeded", "done"),
        },
    )
    actions = _sync(repo, state, t)
    assert summary_of(actions) == [
        ("update", "web"),
        ("update_schedule", "nightly"),
        ("subscribe", "notify"),
        ("create", "train"),
    ]
    update = next(a for a in actions if a.action.value == "update")
    assert [str(c) for c in update.diff] == ['~ run.container.image: "nginx:1" -> "nginx:2"']

    # A broken file never stops what it had: the service keeps running, marked invalid.
    commit(repo, {"ops/web.yaml": BROKEN})
    actions = _sync(repo, state, t)
    assert summary_of(actions) == []
    assert [a.action.value for a in actions if a.op.name == "web"] == ["invalid", "noop"]

    # Fixed, then removed from Git: service deleted (prune on by default), schedule and
    # subscription removed, the job's finished runs left alone (prune off for jobs).
    commit(repo, {"ops/web.yaml": SERVICE.replace("nginx:1", "nginx:2")})
    assert changes(_sync(repo, state, t)) == []
    commit(repo, {"ops/web.yaml": None, "ops/nightly.yaml": None, "ops/notify.yaml": None, "ops/train.yaml": None})
    assert summary_of(_sync(repo, state, t)) == [
        ("remove_schedule", "nightly"),
        ("unsubscribe", "notify"),
        ("delete", "web"),
    ]
    assert changes(_sync(repo, state, t)) == []


def test_plan_of_a_configured_repo_is_what_the_daemon_does(repo: Path, tmp_path: Path) -> None:
    """`plan --config FILE --name REPO` reads the commit as the daemon does (its repo config
    included: `ignore` hides a file, `namespace` is used) and plans against its database; after
    the daemon applied that commit, the plan has nothing left to do."""
    from reconciler.commands.daemon import build_daemon
    from reconciler.config import load_settings

    commit(
        repo,
        {
            ".polyaxon-reconciler.yaml": "ignore: ['drafts/**']\nnamespace: ml\n",
            "ops/train.yaml": JOB,
            "drafts/wip.yaml": BROKEN,
            "ops/nightly.yaml": CRON,
        },
    )
    config = tmp_path / "reconciler.yaml"
    db = tmp_path / "db.sqlite"
    config.write_text(
        f"repos: [{{name: demo, url: '{repo.as_uri()}', branch: main}}]\n"
        f"database: sqlite:///{db}\ndata_dir: {tmp_path / 'data'}\n"
        f"local: {{run_as: {pwd.getpwuid(os.geteuid()).pw_name}}}\n"  # the runs stay on this test's user
    )
    code, out, err = run_plan("--config", str(config), "--name", "demo", "--format", "json")
    assert code == 0, err  # the broken draft is ignored, as the daemon ignores it
    planned = {(a["action"], a["op"]) for a in json.loads(out)["actions"] if a["action"] != "noop"}
    assert planned == {("create", "demo:ops/train.yaml#train"), ("register_schedule", "demo:ops/nightly.yaml#nightly")}
    assert not db.exists(), "planning created no database"

    daemon = build_daemon(load_settings(config), timer=False)
    try:
        result = daemon.reconcile_repo("demo")
    finally:
        daemon.close_without_serving()
    applied = {(a.action.value, str(a.op)) for a in result.plan if a.changes_something}
    assert applied == planned
    code, out, _ = run_plan("--config", str(config), "--name", "demo", "--format", "json")
    assert code == 0
    assert [a for a in json.loads(out)["actions"] if a["action"] != "noop"] == []
