"""The production daemon (`tests.infra.daemon`) with a forge, in process, over real git, local
processes and the local forge API server, on SQLite and PostgreSQL: a repo and its fork get
their own runs and statuses; the forge down for minutes while commits land is reported (never
failing readiness) and measured per forge, and every latest status reaches it within 30 s of
its return, on the wall clock."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.daemon import Daemon
from reconciler.model import OpKey
from reconciler.statuses import Status
from tests.e2e.harness import job
from tests.infra.daemon import DaemonHarness, daemon_harness
from tests.infra.git_server import GitRepo, GitRepoFactory
from tests.infra.wait import wait_until

PROJECT = "acme/models"
FORK_PROJECT = "someone/models"


class ShiftedClock:
    """The wall clock plus an offset a test moves forward: minutes pass in seconds, and time
    still flows (the harness's `Clock` stops where it was set)."""

    def __init__(self) -> None:
        self._offset = dt.timedelta(0)
        self._lock = threading.Lock()

    def __call__(self) -> dt.datetime:
        with self._lock:
            return dt.datetime.now(dt.UTC) + self._offset

    def advance(self, delta: dt.timedelta) -> None:
        with self._lock:
            self._offset += delta


def forge_options(forge_server: Any, token: Path, project: str) -> dict[str, Any]:
    return {
        "forge": {
            "provider": "github",
            "project": project,
            "api_url": forge_server.url("github"),
            "token_file": str(token),
        }
    }


@pytest.fixture
def token(tmp_path: Path, forge_server: Any) -> Path:
    path = tmp_path / "forge-token"
    path.write_text(forge_server.tokens["github"] + "\n")
    path.chmod(0o600)  # the daemon refuses a secret others can read
    return path


@pytest.fixture
def harness(
    tmp_path: Path, db_url: str, git_repo_factory: GitRepoFactory, forge_server: Any, token: Path
) -> Iterator[DaemonHarness]:
    """`models` (project acme/models) and `models-fork` (someone/models) on the local backend."""
    options = {
        "models": forge_options(forge_server, token, PROJECT),
        "models-fork": forge_options(forge_server, token, FORK_PROJECT),
    }
    with daemon_harness(
        tmp_path, db_url, git_repo_factory, repos=("models", "models-fork"), backend="local", repo_options=options
    ) as h:
        yield h


def get(daemon: Daemon, path: str) -> tuple[int, str]:
    assert daemon.address is not None
    url = daemon.address + path
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def latest(forge: Any, project: str, sha: str) -> dict[str, str]:
    states: dict[str, str] = {}
    for s in forge.statuses("github", project, sha):  # oldest first
        states[s["context"]] = s["state"]
    return states


def posted_once(forge: Any, project: str, shas: list[str]) -> bool:
    """No status was posted twice: the same (commit, context, state, description) in a row."""
    for sha in shas:
        posted = [(s["context"], s["state"], s.get("description")) for s in forge.statuses("github", project, sha)]
        by_context: dict[str, list[tuple[str, str, Any]]] = {}
        for status in posted:
            by_context.setdefault(status[0], []).append(status)
        if any(a == b for seq in by_context.values() for a, b in itertools.pairwise(seq)):
            print(f"posted twice on {project}@{sha}: {posted}")
            return False
    return True


def done(sha: str) -> dict[str, str]:
    return {"polyaxon/validate": "success", "polyaxon/train": "success"}


def land(git: GitRepo, text: str) -> str:
    sha = git.commit(text, {"ops/train.yaml": job("train", f"echo {text}")})
    git.push()
    return sha


def same_commits(fork: GitRepo, origin: GitRepo) -> str:
    """`fork`'s remote gets exactly `origin`'s history (as a fork on a forge has)."""
    fork.git("fetch", "-q", str(origin.remote), "main")
    fork.git("reset", "-q", "--hard", "FETCH_HEAD")
    fork.push(force=True)
    return fork.head()


def test_a_repo_and_its_fork_in_one_daemon_get_their_own_runs_and_statuses(
    harness: DaemonHarness, forge_server: Any
) -> None:
    """Same commits, two repos: before, the fork's runs had the same names as the original's and
    were refused (`RunNameConflict`), and one outbox key served both."""
    origin, fork = harness.repos["models"], harness.repos["models-fork"]
    sha = land(origin, "trained")
    assert same_commits(fork, origin) == sha
    harness.start()

    for project in (PROJECT, FORK_PROJECT):
        wait_until(lambda p=project: latest(forge_server, p, sha) == done(sha), timeout=60, what=f"{project} statuses")
    runs = harness.store.runs_by_commit(sha)
    ops = {harness.store.op_key_by_id(r.operation_id): r for r in runs}
    assert set(ops) == {str(OpKey(repo, "ops/train.yaml", "train")) for repo in ("models", "models-fork")}
    assert len({r.name for r in runs}) == 2 and all(r.status == Status.SUCCEEDED for r in runs)
    for project in (PROJECT, FORK_PROJECT):
        assert posted_once(forge_server, project, [sha])
    # Each repo's statuses are its own rows in the outbox, posted to its own project.
    assert sorted((r.repo, r.context) for r in harness.store.outbox(sha) if r.state == "success") == [
        ("models", "polyaxon/train"),
        ("models", "polyaxon/validate"),
        ("models-fork", "polyaxon/train"),
        ("models-fork", "polyaxon/validate"),
    ]


def metric(daemon: Daemon, name: str, **labels: str) -> float:
    value = daemon.metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_forge_down_while_commits_land_then_every_latest_status_within_30s(
    tmp_path: Path, db_url: str, git_repo_factory: GitRepoFactory, forge_server: Any, token: Path
) -> None:
    """Six minutes down, compressed (the daemon's clock jumps 15 s after each try of the forge:
    past its longest backoff, so each jump is one refused try); the return is on the wall clock."""
    with daemon_harness(
        tmp_path,
        db_url,
        git_repo_factory,
        repos=("models",),
        backend="local",
        repo_options={"models": forge_options(forge_server, token, PROJECT)},
    ) as harness:
        forge_down_then_back(harness, forge_server)


def forge_down_then_back(harness: DaemonHarness, forge_server: Any) -> None:
    clock = ShiftedClock()
    git, store = harness.repos["models"], harness.store
    shas = [land(git, "first")]
    harness.daemon = daemon = harness.build(clock=clock)
    harness.start()
    forge = forge_server.url("github")

    def state() -> str:
        """What the outbox and the forge hold, for a failure's message."""
        rows = [
            f"{r.id} {r.sha[:7]} {r.context} {r.state} attempts={r.attempts} next={r.next_attempt_at:%T} "
            f"claimed={r.claimed_until and f'{r.claimed_until:%T}'} error={(r.last_error or '')[:80]}"
            for r in store.outbox()
            if r.posted_at is None and r.superseded_at is None
        ]
        return f"clock {clock():%T}; waiting rows:\n" + "\n".join(rows) + f"\nreadyz: {get(daemon, '/readyz')}"

    def wait(condition: Any, timeout: float, what: str) -> None:
        try:
            wait_until(condition, timeout=timeout, what=what)
        except TimeoutError as e:
            raise AssertionError(f"{e}\n{state()}") from e

    def drained() -> bool:
        return not [r for r in store.outbox() if r.posted_at is None and r.superseded_at is None]

    # The daemon's own record too, not just the forge's: a forge stopped between recording a
    # status and answering leaves that row waiting (the count below would be one more).
    wait(
        lambda: latest(forge_server, PROJECT, shas[0]) == done(shas[0]) and drained(),
        timeout=60,
        what="first statuses, posted and recorded as posted",
    )

    forge_server.stop()

    def tries() -> float:
        return metric(daemon, "reconciler_forge_post_errors_total", forge=forge, kind="unreachable")

    for minute in range(6):
        # A commit lands each minute: reconciled, run, finished, its statuses queued.
        shas.append(land(git, f"minute {minute}"))
        daemon.trigger("models")
        wait(
            lambda: any(r.status == Status.SUCCEEDED for r in store.runs_by_commit(shas[-1])),
            timeout=60,
            what=f"the run of the commit of minute {minute}",
        )
        for _ in range(4):  # 4 x 15 s: a minute
            before = tries()
            clock.advance(dt.timedelta(seconds=15))
            daemon.forge.wake()
            wait(lambda b=before: tries() > b, timeout=30, what="the next try of the forge")
        if minute == 2:  # three minutes down: measured, not reported yet
            status, body = get(daemon, "/readyz")
            assert status == 200 and "forges" not in json.loads(body)["warnings"], state()
    # Six minutes: /readyz names the forge, and stays 200 (webhooks must keep reaching us).
    status, body = get(daemon, "/readyz")
    answer = json.loads(body)
    assert status == 200 and answer["ready"], state()
    assert forge in answer["warnings"]["forges"] and "statuses waiting" in answer["warnings"]["forges"], state()
    waiting = 2 * 6  # validate and train of each commit landed meanwhile
    wait(
        lambda: metric(daemon, "reconciler_outbox_pending", forge=forge) == waiting,
        timeout=30,
        what="the pending gauge (refreshed every 15 s)",
    )
    assert metric(daemon, "reconciler_outbox_oldest_pending_seconds", forge=forge) > 5 * 60

    # The forge returns right after a refused try, so the daemon waits out its whole backoff (10 s).
    before = tries()
    clock.advance(dt.timedelta(seconds=15))
    daemon.forge.wake()
    wait(lambda: tries() > before, timeout=30, what="a last try of the forge")
    forge_server.start()
    back = time.monotonic()
    wait(
        lambda: all(latest(forge_server, PROJECT, sha) == done(sha) for sha in shas),
        timeout=30,
        what="every latest status within 30 s of the forge's return",
    )
    took = time.monotonic() - back
    print(f"\ndaemon: {waiting} statuses on the forge {took:.1f} s after a 6-minute outage ended")
    assert posted_once(forge_server, PROJECT, shas)
    # The rows are marked posted right after the forge's answers: then /readyz has nothing to say.
    wait(lambda: get(daemon, "/readyz") == (200, '{"ready":true,"failing":{},"warnings":{}}'), 10, "/readyz clear")
