"""Threat: a pull request makes the daemon run code of its author's choosing.

On a real Gitea (built by `make gitea`), with the daemon as a process receiving Gitea's own
signed webhooks and fetching from Gitea over HTTP:

- a fork of another user, whose pull request rewrites the repo config to `previews: ["*"]`,
  `previews_from_forks: true` and adds a `preview`-tagged op: runs nothing;
- a same-repository pull request that rewrites `previews` and adds a tagged op: runs only what
  the base branch lists (that is the opted-in same-repo case, which keeps working);
- with `previews_require_label` on the base branch: nothing until a maintainer adds the label on
  Gitea, then the base branch's list runs.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import DaemonProcess, job
from tests.infra.gitea_server import USER, GiteaServer

from .conftest import secret_file

SECRET = "gitea-webhook-secret"
LABEL = "ok-to-preview"

# What a pull request's author writes to opt everything in.
GREEDY = {
    ".polyaxon-reconciler.yaml": 'previews: ["*"]\npreviews_from_forks: true\n',
    "ops/smoke.yaml": job("smoke", "echo smoke of the pull request"),
    "ops/evil.yaml": job("evil", "id; env").replace("kind: operation\n", "kind: operation\ntags: [preview]\n"),
}


def comments(gitea: GiteaServer, repo: str, number: int) -> str:
    found = gitea.api("GET", f"/repos/{USER}/{repo}/issues/{number}/comments") or []
    return "\n".join(str(c.get("body") or "") for c in found)


def previews(daemon: DaemonProcess, repo: str, number: int) -> list[str]:
    """The operations that ran as previews of pull request `number` of `repo`."""
    return sorted(
        r["op"].rsplit("#", 1)[1]
        for r in daemon.api_runs()
        if r["op"].startswith(f"{repo}:") and r["name"].startswith(f"pr-{number}-")
    )


def preview_of(repo: str, number: int) -> Any:
    return lambda r: (
        r["op"].startswith(f"{repo}:") and r["name"].startswith(f"pr-{number}-") and r["status"] == "succeeded"
    )


def open_pull(gitea: GiteaServer, repo: str, head: str, *, sudo: str | None = None) -> int:
    pull = gitea.api("POST", f"/repos/{USER}/{repo}/pulls", {"head": head, "base": "main", "title": head}, sudo=sudo)
    return int(pull["number"])


@pytest.mark.slow
def test_forks_and_self_opt_ins_run_nothing_and_a_label_lets_the_base_list_run(
    gitea_server: GiteaServer, daemons: Any, tmp_path: Path
) -> None:
    gitea = gitea_server
    tag = uuid.uuid4().hex[:8]
    open_repo, labelled_repo, mallory = f"trust-open-{tag}", f"trust-label-{tag}", f"mallory-{tag}"
    base_ops = {"ops/smoke.yaml": job("smoke", "echo smoke of the base branch")}
    for name, config in (
        (open_repo, "previews: [smoke]\n"),
        (labelled_repo, f"previews: [smoke]\npreviews_require_label: {LABEL}\n"),
    ):
        gitea.create_repo(name)
        gitea.commit_files(USER, name, {".polyaxon-reconciler.yaml": config, **base_ops}, message="base")
    label_id = gitea.api("POST", f"/repos/{USER}/{labelled_repo}/labels", {"name": LABEL, "color": "#00aa00"})["id"]
    gitea.create_user(mallory)

    token = secret_file(tmp_path / "gitea-token", gitea.token)
    hook_secret = secret_file(tmp_path / "webhook-secret", SECRET)

    def repo(name: str) -> dict[str, Any]:
        forge = {
            "provider": "gitea",
            "project": f"{USER}/{name}",
            "api_url": gitea.api_url,
            "token_file": str(token),
            "webhook_secret_file": str(hook_secret),
        }
        return {
            "name": name,
            "url": f"{gitea.root_url}/{USER}/{name}.git",
            "branch": "main",
            "interval": 2,
            "forge": forge,
        }

    daemon = daemons([repo(open_repo), repo(labelled_repo)], f"sqlite:///{tmp_path / 'reconciler.db'}").start()
    for name in (open_repo, labelled_repo):
        hook = {"url": f"{daemon.url}/webhooks/gitea", "content_type": "json", "secret": SECRET}
        gitea.api(
            "POST",
            f"/repos/{USER}/{name}/hooks",
            {"type": "gitea", "config": hook, "events": ["push", "pull_request"], "active": True},
        )
        daemon.wait_run(
            "ops/smoke.yaml#smoke", lambda r, n=name: r["op"].startswith(f"{n}:") and r["cause"] == "commit", "base job"
        )

    # -- a fork's pull request that opts itself in every way: nothing runs ---------------------
    gitea.api("POST", f"/repos/{USER}/{open_repo}/forks", {}, sudo=mallory)
    gitea.commit_files(mallory, open_repo, GREEDY, new_branch="attack", message="opt in", sudo=mallory)
    fork_pr = open_pull(gitea, open_repo, f"{mallory}:attack", sudo=mallory)

    # -- the same, from a branch of the repository: the base branch's list (smoke) runs, only ---
    gitea.commit_files(USER, open_repo, GREEDY, new_branch="greedy", message="opt in")
    same_pr = open_pull(gitea, open_repo, "greedy")

    daemon.wait(lambda: "pull request from a fork" in comments(gitea, open_repo, fork_pr), "the fork PR's comment")
    run = daemon.wait_run("ops/smoke.yaml#smoke", preview_of(open_repo, same_pr), "the same-repo PR's smoke preview")
    assert run["cause"] == "preview"
    assert previews(daemon, open_repo, same_pr) == ["smoke"]  # not evil: its tag and the PR's config count for nothing
    assert previews(daemon, open_repo, fork_pr) == []

    def printed() -> str:  # a run found "running" may not have printed yet: wait for its line
        logs = daemon.get(f"/api/runs/{run['name']}/logs")
        return logs[1] if logs is not None else ""

    daemon.wait(lambda: "smoke of the pull request" in printed(), "the preview's log")  # it runs the PR's spec
    assert "smoke of the base branch" not in printed()

    # -- a label required: nothing until a maintainer adds it on the forge -----------------------
    gitea.commit_files(
        USER,
        labelled_repo,
        {"ops/smoke.yaml": job("smoke", "echo labelled smoke")},
        new_branch="change",
        message="change smoke",
    )
    labelled_pr = open_pull(gitea, labelled_repo, "change")
    daemon.wait(
        lambda: f"add the label `{LABEL}`" in comments(gitea, labelled_repo, labelled_pr), "the waiting comment"
    )
    assert previews(daemon, labelled_repo, labelled_pr) == []
    gitea.api("POST", f"/repos/{USER}/{labelled_repo}/issues/{labelled_pr}/labels", {"labels": [label_id]})
    daemon.wait_run("ops/smoke.yaml#smoke", preview_of(labelled_repo, labelled_pr), "the preview after the label")
    assert previews(daemon, open_repo, fork_pr) == [] and previews(daemon, open_repo, same_pr) == ["smoke"]
    assert "Traceback" not in daemon.log_text()
