"""The daemon as a process, on the bugs of the one-reconcile-path issue: each of these failed before.

- a change held back by a bad `.polyaxon-reconciler.yaml` is applied once the config is fixed;
- a pruned service is recorded `stopped` (reason Deleted) and not deleted again at every poll, and
  its operation leaves `ops list`;
- repos named like the daemon's internal work (`ticks`, `resume`, `gauges`) are reconciled;
- success -> failure -> success of one context on one commit ends on success at the forge
  (the outbox posts the newest state, whatever came before);
- a read command run before the first daemon start creates no database.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reconciler.tracking import Store
from tests.e2e.conftest import MakeDaemon
from tests.e2e.harness import job, service
from tests.infra.git_server import GitRepoFactory

FAST = 0.5


def entry(url: str, name: str = "models") -> dict[str, Any]:
    return {"name": name, "url": url, "branch": "main", "interval": FAST}


def history(db: str, run: str) -> list[tuple[str, str | None]]:
    store = Store.open(db)
    try:
        return [(str(h.status), h.reason) for h in store.history(run)]
    finally:
        store.close()


def test_a_change_held_back_by_a_bad_repo_config_is_applied_when_the_config_is_fixed(
    daemons: MakeDaemon, migrated: str, git_repo_factory: GitRepoFactory, publish: Any, tmp_path: Path
) -> None:
    git = git_repo_factory.create("models", {"ops/train.yaml": job("train", "echo v1")})
    daemon = daemons([entry(publish(git).url)], migrated).start()
    daemon.wait_run("#train", lambda r: r["status"] == "succeeded", "the first run")

    # One commit changes the op and breaks the repo config: nothing of it applies.
    git.commit(
        "v2 and a typo",
        {".polyaxon-reconciler.yaml": "watchh: ['**/*.yaml']\n", "ops/train.yaml": job("train", "echo v2")},
    )
    git.push()
    daemon.wait(lambda: "invalid repo config" in daemon.log_text(), "the bad repo config to be reported")
    assert len(daemon.api_runs()) == 1

    # The next commit fixes only the config: the op change of the commit before is applied now.
    fixed = git.commit("fix the config", {".polyaxon-reconciler.yaml": "watch: ['**/*.yaml']\n"})
    git.push()
    run = daemon.wait_run("#train", lambda r: r["commit"] == fixed and r["status"] == "succeeded", "the v2 run")
    assert "v2" in (daemon.cli("runs", "logs", run["name"]).stdout)


def test_a_pruned_service_is_recorded_stopped_once_and_leaves_ops_list(
    daemons: MakeDaemon, migrated: str, git_repo_factory: GitRepoFactory, publish: Any
) -> None:
    git = git_repo_factory.create(
        "models", {"ops/web.yaml": service("web", "exec sleep 600"), "ops/train.yaml": job("train", "true")}
    )
    daemon = daemons([entry(publish(git).url)], migrated).start()
    web = daemon.wait_run("#web", lambda r: r["status"] == "running", "the service to run")

    git.delete("ops/web.yaml")
    removed = git.commit("remove the service")
    git.push()
    daemon.wait(lambda: daemon.api_run(web["name"])["status"] == "stopped", "the pruned service to be stopped")
    assert history(migrated, web["name"])[-1] == ("stopped", "Deleted")
    # Polls after the prune find nothing to do: the delete is not repeated at each of them.
    store = Store.open(migrated)
    try:
        daemon.wait(lambda: (c := store.last_commit("models")) is not None and c.sha == removed, "the removal applied")
    finally:
        store.close()
    polls = daemon.log_text().count("reconciled")
    daemon.wait(lambda: daemon.log_text().count("reconciled") >= polls + 3, "three more polls")
    assert daemon.log_text().count("'delete': 1") == 1, daemon.log_tail()
    ops = {o["op"] for o in daemon.cli_json("ops", "list")}
    assert ops == {"models:ops/train.yaml#train"}
    removed_ops = daemon.cli_json("ops", "list", "--removed")
    assert {o["op"]: bool(o["removed_at"]) for o in removed_ops} == {
        "models:ops/train.yaml#train": False,
        "models:ops/web.yaml#web": True,
    }


def test_repos_named_like_internal_work_are_reconciled(
    daemons: MakeDaemon, migrated: str, git_repo_factory: GitRepoFactory, publish: Any
) -> None:
    names = ("ticks", "resume", "gauges")
    repos = [entry(publish(git_repo_factory.create(n, {"ops/a.yaml": job("a", "true")})).url, n) for n in names]
    daemon = daemons(repos, migrated).start()
    for name in names:
        daemon.wait_run(f"{name}:ops/a.yaml#a", lambda r: r["status"] == "succeeded", f"repo {name} to run")


def test_read_commands_before_the_first_start_create_no_database(
    daemons: MakeDaemon, git_repo_factory: GitRepoFactory, publish: Any, tmp_path: Path
) -> None:
    db_file = tmp_path / "fresh" / "reconciler.db"
    git = git_repo_factory.create("models", {"ops/train.yaml": job("train", "true")})
    daemon = daemons([entry(publish(git).url)], f"sqlite:///{db_file}")
    for command in (("runs", "list"), ("ops", "list"), ("schedules", "list")):
        done = daemon.cli(*command)
        assert done.returncode != 0 and "no tracking database" in done.stderr, (command, done.stderr)
    assert not db_file.exists()
    daemon.start()  # and the daemon then creates and migrates it on its first start
    daemon.wait_run("#train", lambda r: r["status"] == "succeeded", "the first run")
