"""Three replicas sharing six repos, on the real control plane and a real PostgreSQL.

Three `reconciler run` processes with the Kubernetes backend share one tracking database, once
with `sharding.mode: kubernetes` (Leases) and once with `mode: database` (lease rows). Each repo
has a job and a schedule due every 10 s, and reports commit statuses to the fake GitHub. The test
does to them what production does:

1. start all three: every repo gets exactly one owner, the spread is rendezvous', every replica
   is ready (including one that owns little);
2. a push webhook and an API retry sent to a replica that does not own the repo reach its owner;
3. kill -9 the owner of a repo, commit to its repos: the survivors take them within the lease and
   run the new commits; the killed replica comes back and takes its share again;
4. SIGSTOP a replica past its lease, commit to its repos, SIGCONT it: the others ran the commits,
   and it wakes up acting on nothing it held;
5. cut a replica off from PostgreSQL (a TCP proxy closed between them): its repos move to the
   others; the proxy reopens and it rejoins.

After each step: one owner per repo, no duplicate run and one Kubernetes Job per run, every due
tick fired once (no tick instant twice, none missed), and every commit status posted once.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.model import LABEL_RUN
from reconciler.sharding import assign
from reconciler.tracking import Store
from tests.cluster.controlplane import ControlPlane
from tests.e2e.conftest import MakeDaemon
from tests.e2e.harness import DaemonProcess, job, metric, reconciler_argv
from tests.infra.forge_server import DEFAULT_TOKENS, ForgeServer
from tests.infra.git_server import GitRepo, GitRepoFactory
from tests.infra.postgres import PostgresServer, start_postgres, stop_postgres
from tests.infra.tcp_proxy import TcpProxy
from tests.infra.webhooks import WebhookSender

pytestmark = [pytest.mark.k8s, pytest.mark.postgres, pytest.mark.slow]

LEASE = 4.0  # seconds: short, so a failover is quick; a third of it is still 1.3 s between renewals
TICK = 10  # seconds between a schedule's ticks: longer than a failover, so no tick is ever missed
REPOS = [f"repo-{i}" for i in range(6)]
HOOKED = "repo-5"  # polled once an hour: only its webhook (to any replica) makes it move
SECRET = "ha-webhook-secret"
WAIT = 90.0


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    try:
        server = start_postgres()
    except Exception as e:  # pragma: no cover - the session fixture reports a missing install
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required in CI: {e}")
        pytest.skip(f"no PostgreSQL: {e}")
    try:
        yield server
    finally:
        stop_postgres(server)


def ticking(name: str) -> str:
    doc: dict[str, Any] = yaml.safe_load(job(name, "true"))
    doc["schedule"] = {"kind": "interval", "frequency": TICK}
    return yaml.safe_dump(doc, sort_keys=False)


def gauge(text: str, name: str) -> float:
    """An unlabelled sample's value (`metric` reads labelled ones)."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def secret_file(path: Path, value: str) -> Path:
    path.write_text(value)
    path.chmod(0o600)
    return path


class Fleet:
    """The three replicas, the repos, and the checks made after every step."""

    def __init__(
        self,
        replicas: list[DaemonProcess],
        git: dict[str, GitRepo],
        url: str,
        cluster: ControlPlane,
        namespace: str,
        forge: ForgeServer,
    ) -> None:
        self.replicas = replicas
        self.git = git
        self.url = url
        self.cluster = cluster
        self.namespace = namespace
        self.forge = forge
        self.stopped: set[int] = set()  # indexes of replicas under SIGSTOP
        self.version = dict.fromkeys(git, 1)

    def up(self) -> list[DaemonProcess]:
        return [r for i, r in enumerate(self.replicas) if r.running and i not in self.stopped]

    def owners(self) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {repo: [] for repo in REPOS}
        for replica in self.up():
            text = replica.metrics()
            for repo in REPOS:
                if metric(text, "reconciler_repo_owned", repo=repo) == 1:
                    found[repo].append(replica.base.name)
        return found

    def settled(self, live: list[DaemonProcess]) -> bool:
        """Each repo owned by exactly the replica rendezvous names among `live`."""
        want = assign(REPOS, [r.base.name for r in live])
        return self.owners() == {repo: [want[repo]] for repo in REPOS}

    def wait_settled(self, live: list[DaemonProcess], what: str) -> None:
        live[0].wait(lambda: self.settled(live), what, WAIT)

    def owner_of(self, repo: str) -> int:
        [name] = self.owners()[repo]
        return next(i for i, r in enumerate(self.replicas) if r.base.name == name)

    def commit(self, repos: list[str]) -> None:
        for repo in repos:
            self.version[repo] += 1
            self.git[repo].commit(
                f"v{self.version[repo]}", {"ops/train.yaml": job("train", f"echo v{self.version[repo]}")}
            )
            self.git[repo].push()

    def runs(self) -> list[tuple[Any, str]]:
        store = Store.open(self.url)
        try:
            return store.list_runs(limit=100_000)
        finally:
            store.close()

    def wait_trained(self, repos: list[str], what: str) -> None:
        """Every commit of these repos has its `train` run, succeeded."""

        def done() -> bool:
            by_commit = {
                (key.split(":")[0], run.commit_sha): str(run.status)
                for run, key in self.runs()
                if key.endswith("#train")
            }
            return all(by_commit.get((repo, self.git[repo].head())) == "succeeded" for repo in repos)

        self.up()[0].wait(done, what, WAIT)

    def check(self) -> None:
        """One owner per repo, no duplicate run, one Job per run, each tick once, statuses once."""
        owners = self.owners()
        assert all(len(names) == 1 for names in owners.values()), owners
        # Jobs first, then runs: a tick run recorded in between then shows in both, never as a Job
        # the database does not know.
        jobs = json.loads(self.cluster.kubectl("get", "jobs", "-n", self.namespace, "-o", "json").stdout)["items"]
        runs = self.runs()
        train = Counter(
            (key, run.commit_sha) for run, key in runs if key.endswith("#train") and str(run.cause) == "commit"
        )
        assert all(n == 1 for n in train.values()), train
        per_run = Counter(j["metadata"]["labels"][LABEL_RUN] for j in jobs)
        assert all(n == 1 for n in per_run.values()), per_run
        names = {run.name for run, _ in runs}
        assert set(per_run) <= names, set(per_run) - names  # no Job the database does not know
        store = Store.open(self.url)
        try:
            for repo in REPOS:
                ticks = store.ticks(f"{repo}:ops/tick.yaml#tick")
                assert [t.outcome for t in ticks if t.outcome != "fired"] == [], (repo, ticks)
                instants = [t.tick_at for t in ticks]
                assert len(instants) == len(set(instants)), (repo, instants)
                gaps = {(b - a).total_seconds() for a, b in itertools.pairwise(instants)}
                assert gaps <= {float(TICK)}, (repo, "a due tick was not fired", instants)
        finally:
            store.close()
        # Each transition of a run is posted at most once ("Run created", "Run running", ...).
        train_runs = Counter((key.split(":")[0], run.commit_sha) for run, key in runs if key.endswith("#train"))
        for repo in REPOS:
            for sha in self.git[repo].git("rev-list", "HEAD").split():
                posts = Counter(
                    r.json["description"]
                    for r in self.forge.requests("github", "POST", f"/repos/acme/{repo}/statuses/{sha}$")
                    if r.status == 201 and r.json["context"] == "polyaxon/train"
                )
                assert all(n <= train_runs[(repo, sha)] for n in posts.values()), (repo, sha, posts)

    def wait_posted(self) -> None:
        """Every commit's `train` status reached the forge as success."""

        def posted() -> bool:
            return all(
                any(
                    s["context"] == "polyaxon/train" and s["state"] == "success"
                    for s in self.forge.statuses("github", f"acme/{repo}", self.git[repo].head())
                )
                for repo in REPOS
            )

        self.up()[0].wait(posted, "every head's train status posted", WAIT)


@pytest.mark.parametrize("mode", ["kubernetes", "database"])
def test_three_replicas_share_repos_and_survive_the_loss_of_any_one(
    mode: str,
    daemons: MakeDaemon,
    own_postgres: PostgresServer,
    git_repo_factory: GitRepoFactory,
    k8s_cluster: ControlPlane,
    k8s_namespace: str,
    forge_server: ForgeServer,
    tmp_path: Path,
) -> None:
    url = own_postgres.url(own_postgres.create_database())
    done = subprocess.run([*reconciler_argv(), "db", "upgrade", "--db", url], capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr
    proxy = TcpProxy("127.0.0.1", own_postgres.port).start()
    token = secret_file(tmp_path / "forge-token", DEFAULT_TOKENS["github"])
    hook_secret = secret_file(tmp_path / "webhook-secret", SECRET)
    git = {
        repo: git_repo_factory.create(
            repo,
            {
                ".polyaxon-reconciler.yaml": f"namespace: {k8s_namespace}\n",
                "ops/train.yaml": job("train", "echo v1"),
                "ops/tick.yaml": ticking("tick"),
            },
        )
        for repo in REPOS
    }
    entries = [
        {
            "name": repo,
            "url": git[repo].file_url,
            "interval": 3600 if repo == HOOKED else 1,
            "forge": {
                "provider": "github",
                "project": f"acme/{repo}",
                "api_url": forge_server.url("github"),
                "token_file": str(token),
                "webhook_secret_file": str(hook_secret),
            },
        }
        for repo in REPOS
    ]
    replicas = []
    for i in range(3):
        # The third replica reaches PostgreSQL through the proxy, so the test can cut it off.
        database = url if i < 2 else url.replace(f":{own_postgres.port}/", f":{proxy.port}/")
        replicas.append(
            daemons(
                entries,
                database,
                name=f"r-{i}",
                extra={
                    "backend": "kubernetes",
                    "kubernetes": {"kubeconfig": str(k8s_cluster.kubeconfig), "namespace": k8s_namespace},
                    "sharding": {"mode": mode, "lease_seconds": LEASE, "identity": f"r-{i}"},
                },
            )
        )
    fleet = Fleet(replicas, git, url, k8s_cluster, k8s_namespace, forge_server)
    # Rendezvous over these names gives r-2 (behind the proxy) repos of its own to lose.
    assert sorted(r for r, o in assign(REPOS, ["r-0", "r-1", "r-2"]).items() if o == "r-2") == ["repo-1", "repo-4"]
    try:
        # -- 1. three replicas share the repos ------------------------------------------------------
        for replica in replicas:
            replica.start()
        fleet.wait_settled(replicas, "every repo owned once, as rendezvous says")
        for replica in replicas:
            replica.wait(lambda r=replica: gauge(r.metrics(), "reconciler_shard_members") == 3, "three members")
            replica.wait(lambda r=replica: (a := r.get("/readyz")) is not None and a[0] == 200, "ready")
        fleet.wait_trained(REPOS, "the first commits trained")
        fleet.wait_posted()
        fleet.check()

        # -- 2. a push webhook and an API retry reach the owner through any replica ---------------------
        owner = fleet.owner_of(HOOKED)
        other = replicas[(owner + 1) % 3]
        before = git[HOOKED].head()
        fleet.commit([HOOKED])
        _, answer = WebhookSender(SECRET).push(
            "github", f"{other.url}/webhooks/github", repo=f"acme/{HOOKED}", ref="refs/heads/main",
            before=before, after=git[HOOKED].head(),
        )  # fmt: skip
        assert answer.status == 200, answer
        fleet.wait_trained([HOOKED], "the pushed commit trained by its owner")
        [first] = [r for r, key in fleet.runs() if key == f"{HOOKED}:ops/train.yaml#train" and r.commit_sha == before]
        retried = other.get(f"/api/runs/{first.name}/retry", method="POST")
        assert retried is not None and retried[0] == 202, retried
        new = json.loads(retried[1])["retry"]
        other.wait(lambda: any(r.name == new for r, _ in fleet.runs()), "the retry created by the owner")
        fleet.check()

        # -- 3. kill -9 an owner ------------------------------------------------------------------------
        victim = fleet.owner_of("repo-0")
        lost = [repo for repo in REPOS if fleet.owner_of(repo) == victim and repo != HOOKED]
        replicas[victim].kill9()
        fleet.commit(lost)
        survivors = [r for i, r in enumerate(replicas) if i != victim]
        fleet.wait_settled(survivors, "the survivors to own the killed replica's repos")
        fleet.wait_trained(lost, "its repos' new commits trained by the survivors")
        replicas[victim].start()
        fleet.wait_settled(replicas, "the restarted replica to take its share again")
        fleet.wait_posted()
        fleet.check()

        # -- 4. SIGSTOP one past its lease, then SIGCONT ---------------------------------------------
        paused = fleet.owner_of("repo-2")
        held = [repo for repo in REPOS if fleet.owner_of(repo) == paused and repo != HOOKED]
        proc = replicas[paused].proc
        assert proc is not None
        proc.send_signal(signal.SIGSTOP)
        fleet.stopped.add(paused)
        stopped_at = time.monotonic()
        others = [r for i, r in enumerate(replicas) if i != paused]
        fleet.wait_settled(others, "the others to own the paused replica's repos")
        fleet.commit(held)
        fleet.wait_trained(held, "its repos' new commits trained by the others")
        assert time.monotonic() - stopped_at > LEASE
        proc.send_signal(signal.SIGCONT)
        fleet.stopped.discard(paused)
        replicas[paused].wait(
            lambda: "membership not renewed in time" in replicas[paused].log_text(), "the woken replica to let go"
        )
        fleet.wait_settled(replicas, "the woken replica to take its share again")
        fleet.wait_posted()
        fleet.check()

        # -- 5. cut one replica off from PostgreSQL ----------------------------------------------------------
        cut = 2
        held = [repo for repo in REPOS if fleet.owner_of(repo) == cut and repo != HOOKED]
        assert held
        proxy.close()
        others = replicas[:2]
        fleet.wait_settled(others, "the others to own the cut-off replica's repos")
        assert gauge(replicas[cut].metrics(), "reconciler_lease_renew_errors_total") >= 1
        fleet.commit(held)
        fleet.wait_trained(held, "its repos' new commits trained by the others")
        assert replicas[cut].running
        proxy.open()
        fleet.wait_settled(replicas, "the reconnected replica to take its share again")
        fleet.wait_trained(REPOS, "every head trained")
        fleet.wait_posted()
        fleet.check()
    finally:
        for i in list(fleet.stopped):
            proc = replicas[i].proc
            if proc is not None:
                proc.send_signal(signal.SIGCONT)
        for replica in replicas:
            if replica.running:
                replica.terminate()
        proxy.stop()
