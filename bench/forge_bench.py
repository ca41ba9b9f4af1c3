"""Forge benchmarks: how fast a push reaches the backend, and how fast the outbox drains.

1. Push latency: a signed GitHub push webhook is POSTed to the daemon's HTTP endpoint; the
   handler enqueues the repo on the work queue; a worker fetches the commit with git (from a
   real bare repository over file://), compiles the changed polyaxonfile and submits the run to
   the real local backend (a process is started). Measured from the moment the webhook is sent
   to the moment `submit()` returns, for 200 pushes, each a new commit with a new spec. The
   reference: other GitOps tools poll every 60-180 s by default, so a push waits 30-90 s on
   average before anything happens.
2. Outbox throughput: statuses queued in the tracking DB (SQLite, and PostgreSQL when its
   binaries are installed) and posted by one `OutboxWorker` to the local forge API server, which
   validates each request against GitHub's published API description.

`python -m bench.forge_bench [--pushes N] [--statuses N]`; prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path

from reconciler.backends.local import LocalBackend
from reconciler.config import ForgeConfig, RepoConfig
from reconciler.forge import OutboxWorker, webhook_routes, webhook_targets
from reconciler.forge.statuses import CommitStatus, GitHubClient
from reconciler.metrics import Metrics
from reconciler.model import Cause, OpKey, RunRequest, run_name, spec_hash
from reconciler.server import HttpServer, build_app
from reconciler.source.git import GitSource
from reconciler.spec import Resolver, validate_file
from reconciler.statuses import CommitState
from reconciler.tracking import Store, upgrade
from reconciler.workqueue import ShutDown, WorkQueue
from tests.infra.git_server import GitRepoFactory
from tests.infra.webhooks import WebhookSender

SECRET = "bench-secret"


def _op(i: int) -> str:
    return f"""version: 1.1
kind: operation
name: train
component:
  run:
    kind: job
    container:
      image: busybox
      command: [/bin/sh, -c, "exit 0 # {i}"]
"""


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def push_latency(pushes: int, work: Path) -> dict[str, float]:
    git = GitRepoFactory(work / "git").create("models", {"ops/train.yaml": _op(0)})
    source = GitSource("models", git.file_url, "main", work / "cache")
    backend = LocalBackend(work / "local", interval=0.2)
    store = Store.open(f"sqlite:///{work / 'bench.db'}")
    upgrade(f"sqlite:///{work / 'bench.db'}")
    queue = WorkQueue()
    submitted: dict[str, float] = {}
    done = threading.Condition()

    def reconcile(sha: str) -> None:
        revision = source.fetch()
        files = source.files_at(revision.sha, ["ops/*.yaml"]).files
        resolver = Resolver(read=files.get)
        for path, data in files.items():
            result = validate_file(path, data, resolver)
            assert result.checked is not None, result.errors
            key = OpKey("models", path, result.op_name)
            digest = spec_hash(result.checked.effective)
            name = run_name(key, digest, revision.sha)
            backend.submit(
                RunRequest(name, key, "job", digest, result.checked.effective, Cause.COMMIT, revision.sha, revision.sha)
            )
        with done:
            submitted[revision.sha] = time.perf_counter()
            done.notify_all()

    def worker() -> None:
        while True:
            try:
                key = queue.get()
            except ShutDown:
                return
            if key is None:
                continue
            try:
                reconcile(str(key))
            finally:
                queue.done(key)

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    secret_file = work / "secret"
    secret_file.write_text(SECRET)
    secret_file.chmod(0o600)
    repo = RepoConfig(
        name="models",
        url=git.file_url,
        forge=ForgeConfig(provider="github", project="acme/models", webhook_secret_file=secret_file),
    )
    routes = webhook_routes(
        webhook_targets([repo]),
        on_push=lambda name, sha: queue.add(sha or ""),
        on_pull_request=lambda *_: None,
        deliveries=store,
    )
    server = HttpServer(build_app(Metrics(), routes=routes), "127.0.0.1", 0)
    server.start()
    sender = WebhookSender(SECRET)
    url = f"http://127.0.0.1:{server.port}/webhooks/github"
    latencies: list[float] = []
    try:
        before = git.head()
        for i in range(1, pushes + 1):
            after = git.commit(f"push {i}", {"ops/train.yaml": _op(i)})
            git.push()
            sent = time.perf_counter()
            _, response = sender.push(
                "github", url, repo="acme/models", ref="refs/heads/main", before=before, after=after
            )
            assert response.status == 200, response.body
            with done:
                done.wait_for(lambda a=after: a in submitted, timeout=30)  # type: ignore[misc]
            latencies.append(submitted[after] - sent)
            before = after
    finally:
        server.stop()
        queue.shut_down()
        thread.join(10)
        for owned in backend.list_owned():
            backend.delete(owned.run)
        backend.close()
        source.close()
        store.close()
    ms = [x * 1000 for x in latencies]
    print(
        f"push webhook -> run submitted, {len(ms)} pushes: p50 {statistics.median(ms):.0f} ms, "
        f"p99 {_pct(ms, 99):.0f} ms, max {max(ms):.0f} ms "
        f"(a 60 s poll waits 30 000 ms on average; 180 s: 90 000 ms)"
    )
    return {"pushes": len(ms), "p50_ms": round(statistics.median(ms), 1), "p99_ms": round(_pct(ms, 99), 1)}


def outbox_throughput(statuses: int, url: str, label: str) -> dict[str, float]:
    from tests.infra.forge_server import ForgeServer

    upgrade(url)
    store = Store.open(url)
    forge = ForgeServer()
    client = GitHubClient("acme/models", forge.tokens["github"], forge.url("github"))
    try:
        now = dt.datetime.now(dt.UTC)
        for i in range(statuses):
            store.enqueue_commit_status(
                repo="models",
                sha=f"{i % 10:040x}",
                context=f"polyaxon/op{i}",
                state=CommitState.SUCCESS,
                now=now,
                description="Run succeeded",
                target_url=f"http://reconciler.test/runs/op{i}",
            )
        # The forge server's own cost per request (it validates each against GitHub's description),
        # measured with plain sequential posts, so the worker's figure can be read against it.
        probe = time.perf_counter()
        for i in range(20):
            client.post_status(CommitStatus("f" * 40, f"probe/{i}", CommitState.SUCCESS, "probe"))
        per_request_ms = (time.perf_counter() - probe) / 20 * 1000
        worker = OutboxWorker(store, {"models": client}, batch=100, concurrency=8)
        start = time.perf_counter()
        posted = 0
        while posted < statuses:
            step = worker.run_once(dt.datetime.now(dt.UTC))
            if step == 0:
                break
            posted += step
        elapsed = time.perf_counter() - start
        assert not forge.violations, forge.violations[:3]
        print(
            f"outbox -> local forge ({label}): {posted} statuses in {elapsed:.2f} s = {posted / elapsed:.0f}/s "
            f"(8 posts in flight; one sequential POST to this forge server takes {per_request_ms:.0f} ms)"
        )
        return {"statuses": posted, "per_s": round(posted / elapsed, 1), "forge_post_ms": round(per_request_ms, 1)}
    finally:
        client.close()
        forge.close()
        store.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pushes", type=int, default=200)
    parser.add_argument("--statuses", type=int, default=500)
    args = parser.parse_args(argv if argv is not None else [])
    figures: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="forge-bench-") as tmp:
        work = Path(tmp)
        figures["push_to_submit"] = push_latency(args.pushes, work / "push")
        figures["outbox_sqlite"] = outbox_throughput(args.statuses, f"sqlite:///{work / 'outbox.db'}", "SQLite")
    try:
        from tests.infra.postgres import start_postgres, stop_postgres

        server = start_postgres()
    except Exception as e:  # no PostgreSQL binaries here: say so, measure the rest
        print(f"outbox -> local forge (PostgreSQL): skipped ({e})")
        print(json.dumps(figures))
        return
    try:
        figures["outbox_postgresql"] = outbox_throughput(
            args.statuses, server.url(server.create_database()), "PostgreSQL"
        )
    finally:
        stop_postgres(server)
    print(json.dumps(figures))


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
