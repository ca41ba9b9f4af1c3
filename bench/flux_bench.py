"""Side by side with Flux: a commit of 1,000 job operations, then one changed file, on the same
API server, by our daemon and by Flux's source-controller + kustomize-controller.

    python -m bench.flux_bench [--objects 1000] [--idle-seconds 60]     (make bench-flux)

The same 1,000 operations are written twice: as polyaxonfiles for us, and as the manifests
`reconciler render` makes of them for Flux. Each contender gets its own git repo (smart HTTP, git's
own `git http-backend`), its own namespace and its own API user, and runs alone: Flux first, then
it is stopped and our daemon (`reconciler run`, Kubernetes backend) is started. For each:

1. warm: the controllers run and have reconciled a first commit with nothing in it;
2. commit the 1,000 operations, then ask for a reconcile the way each documents it without a
   webhook (Flux: the `reconcile.fluxcd.io/requestedAt` annotation on the GitRepository, which is
   what `flux reconcile source git` writes; ours: `POST /api/repos/<name>/sync`), and time from
   that request until a watch on the namespace has seen all 1,000 Jobs;
3. change one operation (its spec hash, so its Job name, changes), commit, request a reconcile
   right after the contender finished a periodic reconcile (so it never waits for one under way),
   and time until the watch sees the new Job;
4. count the contender's API requests in steps 2 and 3 (the API server's own count per user, see
   bench/_cluster.py), then its requests over an idle period, and read its peak RSS (VmHWM; for
   Flux, both controllers summed).

Between the contenders the Job controller finishes the first one's Jobs, so the second does not
pay for the first's pods. The last line printed is JSON with the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from bench._cluster import (
    BenchUser,
    Process,
    Requests,
    Watch,
    bench_user,
    create_namespace,
    free_port,
    http_ok,
    peak_rss_mb,
    wait_until,
    watching,
)
from reconciler.backends.kubernetes.client import Client
from tests.cluster import binaries
from tests.cluster.controlplane import ControlPlane, install_crds, wait_service_account
from tests.infra.git_server import GitHttpServer, GitRepo, GitRepoFactory

STANDALONE = True  # minutes long: `make bench-flux`, not part of `make bench`
ROOT = Path(__file__).resolve().parent.parent
FLUX_BUILD = ROOT / "bench" / "flux" / "build.sh"
RECONCILER = Path(sys.executable).parent / "reconciler"
FLUX_NS, OURS_NS, FLUX_SYSTEM = "bench-flux", "bench-ours", "flux-system"
CHANGED = 500  # the operation changed in step 3

# Flux's settings (README, "Side by side with Flux"). Interval 1m for both objects, no webhook
# receiver; a reconcile asked for with the annotation is not delayed by the interval. The client
# rate limits are raised far above what either contender uses (ours has none; Flux's default of
# 50 requests/s would make it wait most of the time), and server-side applies run 12 at a time
# (default 4): the fastest of 4, 12 and 24 here (20.9 s, 16.3 s, 18.4 s for 1,000 Jobs).
FLUX_INTERVAL = "1m"
SOURCE_FLAGS = ["--concurrent=2", "--kube-api-qps=1000", "--kube-api-burst=2000"]
KUSTOMIZE_FLAGS = ["--concurrent=4", "--concurrent-ssa=12", "--kube-api-qps=1000", "--kube-api-burst=2000"]


def polyaxonfile(i: int, variant: str = "") -> str:
    return (
        "version: 1.1\n"
        "kind: operation\n"
        f"name: job-{i:04d}\n"
        "run:\n"
        "  kind: job\n"
        "  container:\n"
        "    image: busybox:1.36\n"
        f'    command: [sh, -c, "echo {i}{variant}"]\n'
    )


def operations(count: int) -> dict[str, str]:
    return {f"ops/job-{i:04d}.yaml": polyaxonfile(i) for i in range(count)}


_SOURCE = re.compile(r"^---\n# Source: [^\n]*?:(?P<file>[^:#\n]+)#[^\n]*\n", re.M)


def render(ops: dict[str, str], namespace: str, work: Path) -> dict[str, str]:
    """The manifests `reconciler render` makes of `ops`, one file per operation file."""
    folder = work / "render"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for path, text in ops.items():
        (folder / Path(path).name).write_text(text)
    done = subprocess.run(
        [str(RECONCILER), "render", str(folder), "--namespace", namespace],
        capture_output=True,
        text=True,
        check=True,
        cwd=folder,
        timeout=600,
    )
    out: dict[str, str] = {}
    starts = list(_SOURCE.finditer(done.stdout))
    for n, match in enumerate(starts):
        end = starts[n + 1].start() if n + 1 < len(starts) else len(done.stdout)
        name = Path(match.group("file")).stem
        out[f"manifests/{name}.yaml"] = out.get(f"manifests/{name}.yaml", "") + done.stdout[match.start() : end]
    if len(out) != len(ops):
        raise RuntimeError(f"render gave manifests for {len(out)} of {len(ops)} files")
    return out


def jobs_path(namespace: str) -> str:
    return f"/apis/batch/v1/namespaces/{namespace}/jobs"


def all_done(watch: Watch, count: int) -> bool:
    finished = 0
    for obj in watch.objects.values():
        status = obj.get("status") or {}
        if status.get("completionTime") or status.get("failed") or status.get("succeeded"):
            finished += 1
    return finished >= count


@dataclass
class Result:
    seconds: float
    one_change_seconds: float
    requests: float
    idle_requests_per_minute: float
    rss_mb: float


@dataclass
class Contender:
    """What differs between Flux and us; the measuring is shared (measure())."""

    name: str
    namespace: str
    repo: GitRepo
    publish: Callable[[dict[str, str | None]], str]  # commit + push the files, return the sha
    trigger: Callable[[], None]
    reconciled: Callable[[str], bool]  # has the contender finished reconciling this sha?
    users: list[str]
    pids: Callable[[], list[int]]
    alive: Callable[[], None]
    # How many periodic (or any) reconciles the contender has finished so far: step 3 starts
    # right after one, so that neither ever waits for a periodic reconcile already under way.
    finished: Callable[[], int]


def measure(
    contender: Contender, admin: Client, count: int, first: dict[str, str], change: dict[str, str | None], idle: float
) -> Result:
    requests = Requests(admin, contender.users)
    with watching(admin, jobs_path(contender.namespace)) as watch:
        # Step 2: the commit of every operation.
        sha = contender.publish(dict(first))
        requests.start()
        started = time.monotonic()
        contender.trigger()
        watch.wait(f"{count} Jobs in {contender.namespace}", lambda w: len(w.first_seen) >= count, timeout=900)
        seconds = max(watch.first_seen.values()) - started
        wait_until(f"{contender.name} to finish reconciling {sha[:12]}", lambda: contender.reconciled(sha), 600)
        requests.stop()
        print(f"{contender.name}: {count} Jobs in {seconds:.2f}s", flush=True)
        # Let the Job controller finish with these, so the next step and contender do not pay for it.
        watch.wait(f"{count} Jobs finished in {contender.namespace}", lambda w: all_done(w, count), timeout=1200)

        # Step 3: one changed operation, asked for right after a periodic reconcile has finished.
        before = set(watch.first_seen)
        done = contender.finished()
        wait_until(f"{contender.name} to finish a periodic reconcile", lambda: contender.finished() > done, 150)
        sha = contender.publish(change)
        requests.start()
        started = time.monotonic()
        contender.trigger()
        watch.wait("the changed operation's Job", lambda w: len(set(w.first_seen) - before) >= 1, timeout=600)
        one = min(t for name, t in watch.first_seen.items() if name not in before) - started
        wait_until(f"{contender.name} to finish reconciling {sha[:12]}", lambda: contender.reconciled(sha), 600)
        counts = requests.stop()
        print(f"{contender.name}: one changed operation in {one:.2f}s", flush=True)
        contender.alive()

    # Step 4: an idle period with everything applied.
    quiet = Requests(admin, contender.users)
    quiet.start()
    deadline = time.monotonic() + idle
    while time.monotonic() < deadline:
        contender.alive()
        time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
    idle_counts = quiet.stop()
    rss = sum(peak_rss_mb(pid) for pid in contender.pids())
    return Result(
        seconds=seconds,
        one_change_seconds=one,
        requests=sum(counts.values()),
        idle_requests_per_minute=sum(idle_counts.values()) * 60.0 / idle if idle else 0.0,
        rss_mb=rss,
    )


# --- Flux ---------------------------------------------------------------------------------------


def locate_flux() -> Path | None:
    done = subprocess.run(["bash", str(FLUX_BUILD), "--check"], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        print(done.stderr.strip(), file=sys.stderr)
        return None
    return Path(done.stdout.strip().splitlines()[-1])


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == kind:
            return dict(c)
    return {}


@contextlib.contextmanager
def flux(
    flux_dir: Path,
    plane: ControlPlane,
    admin: Client,
    users: dict[str, BenchUser],
    work: Path,
    repo_url: str,
    extra_flags: list[str],
) -> Iterator[tuple[Callable[[], None], Callable[[str], bool], Callable[[], int], list[Process]]]:
    storage = work / "flux-storage"
    storage.mkdir()
    port = free_port()
    common = ["--log-level=info", "--events-addr="]  # leader election is off by default
    source = Process(
        "source-controller",
        [
            str(flux_dir / "bin" / "source-controller"),
            f"--storage-path={storage}",
            f"--storage-addr=127.0.0.1:{port}",
            f"--storage-adv-addr=127.0.0.1:{port}",
            f"--metrics-addr=127.0.0.1:{free_port()}",
            f"--health-addr=127.0.0.1:{(source_health := free_port())}",
            *common,
            *SOURCE_FLAGS,
        ],
        work / "source-controller.log",
        env={"RUNTIME_NAMESPACE": FLUX_SYSTEM, "KUBECONFIG": str(users["flux-source"].kubeconfig)},
        cwd=work,
    )
    kustomize = Process(
        "kustomize-controller",
        [
            str(flux_dir / "bin" / "kustomize-controller"),
            f"--metrics-addr=127.0.0.1:{free_port()}",
            f"--health-addr=127.0.0.1:{(kustomize_health := free_port())}",
            *common,
            *KUSTOMIZE_FLAGS,
            *extra_flags,
        ],
        work / "kustomize-controller.log",
        env={"RUNTIME_NAMESPACE": FLUX_SYSTEM, "KUBECONFIG": str(users["flux-kustomize"].kubeconfig)},
        cwd=work,
    )
    processes = [source.start(), kustomize.start()]

    def alive() -> None:
        for p in processes:
            p.check_alive()

    try:
        for p, health in ((source, source_health), (kustomize, kustomize_health)):
            wait_until(f"{p.name} healthy", lambda h=health: http_ok(f"http://127.0.0.1:{h}/readyz"), 120, alive)
        group = "/apis/source.toolkit.fluxcd.io/v1/namespaces/flux-system/gitrepositories"
        ks = "/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/flux-system/kustomizations"
        admin.request(
            "POST",
            group,
            verb="CREATE",
            body={
                "apiVersion": "source.toolkit.fluxcd.io/v1",
                "kind": "GitRepository",
                "metadata": {"name": "bench", "namespace": FLUX_SYSTEM},
                "spec": {"interval": FLUX_INTERVAL, "url": repo_url, "ref": {"branch": "main"}, "timeout": "60s"},
            },
        )
        admin.request(
            "POST",
            ks,
            verb="CREATE",
            body={
                "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
                "kind": "Kustomization",
                "metadata": {"name": "bench", "namespace": FLUX_SYSTEM},
                "spec": {
                    "interval": FLUX_INTERVAL,
                    "path": "./",
                    "prune": True,
                    "wait": False,
                    "timeout": "5m",
                    "sourceRef": {"kind": "GitRepository", "name": "bench"},
                },
            },
        )

        def trigger() -> None:
            stamp = datetime.now(UTC).isoformat()
            admin.request(
                "PATCH",
                f"{group}/bench",
                verb="PATCH",
                body={"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": stamp}}},
                content_type="application/merge-patch+json",
            )

        def finished() -> int:
            text = kustomize.log.read_text(errors="replace")
            return sum(1 for line in text.splitlines() if '"msg":"Reconciliation finished' in line)

        def reconciled(sha: str) -> bool:
            obj = admin.request("GET", f"{ks}/bench", verb="GET")
            applied = str((obj.get("status") or {}).get("lastAppliedRevision") or "")
            return applied.endswith(sha) and condition(obj, "Ready").get("status") == "True"

        yield trigger, reconciled, finished, processes
    finally:
        for p in reversed(processes):
            p.stop()


# --- ours ---------------------------------------------------------------------------------------


def metric(port: int, name: str, labels: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    pattern = re.compile(rf"^{re.escape(name)}\{{(?P<l>[^}}]*)\}}\s+(?P<v>\S+)$", re.M)
    total = 0.0
    for m in pattern.finditer(text):
        if all(part in m.group("l") for part in labels.split(",")):
            total += float(m.group("v"))
    return total


@contextlib.contextmanager
def ours(
    user: BenchUser, work: Path, repo_url: str
) -> Iterator[tuple[Callable[[], None], Callable[[str], bool], Callable[[], int], Process]]:
    port = free_port()
    data = work / "reconciler-data"
    config = work / "reconciler.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "repos": [{"name": "bench", "url": repo_url, "branch": "main", "interval": 60}],
                "backend": "kubernetes",
                "kubernetes": {"kubeconfig": str(user.kubeconfig), "namespace": OURS_NS},
                "database": f"sqlite:///{data / 'reconciler.db'}",
                "data_dir": str(data),
                "server": {"host": "127.0.0.1", "port": port},
                "log_level": "info",
            }
        )
    )
    daemon = Process("reconciler", [str(RECONCILER), "run", "--config", str(config)], work / "reconciler.log").start()
    success = 'repo="bench",result="success"'
    try:
        wait_until("our daemon ready", lambda: http_ok(f"http://127.0.0.1:{port}/readyz"), 120, daemon.check_alive)
        reconciles = {"seen": 0.0}

        def trigger() -> None:
            reconciles["seen"] = metric(port, "reconciler_reconcile_total", success)
            request = urllib.request.Request(f"http://127.0.0.1:{port}/api/repos/bench/sync", method="POST")
            with urllib.request.urlopen(request, timeout=10) as resp:
                assert resp.status == 202, resp.status

        def reconciled(_sha: str) -> bool:
            # The reconcile the trigger queued has finished (a poll in between finishes later).
            return metric(port, "reconciler_reconcile_total", success) > reconciles["seen"]

        def finished() -> int:
            return int(metric(port, "reconciler_reconcile_total", 'repo="bench"'))

        yield trigger, reconciled, finished, daemon
    finally:
        daemon.stop()


# --- the run ------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=1000)
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs) and print where it is")
    parser.add_argument("--only", choices=("ours", "flux"), help="run one contender (for profiling); no JSON line")
    parser.add_argument(
        "--flux-flag", action="append", default=[], help="extra kustomize-controller flag, e.g. --concurrent-ssa=8"
    )
    args = parser.parse_args()
    located = binaries.locate()
    if located.bin_dir is None:
        print(f"control plane binaries unavailable: {located.reason} (run `make k8s-binaries`)", file=sys.stderr)
        return 2
    flux_dir = locate_flux() if args.only != "ours" else Path()
    if flux_dir is None:
        return 2

    work = Path(tempfile.mkdtemp(prefix="bench-flux-"))
    count = args.objects
    ops = operations(count)
    changed_path = f"ops/job-{CHANGED % count:04d}.yaml"
    changed_ops: dict[str, str | None] = {changed_path: polyaxonfile(CHANGED % count, " changed")}
    print(f"rendering {count} operations with `reconciler render`", flush=True)
    manifests = render(ops, FLUX_NS, work)
    changed_manifests: dict[str, str | None] = dict(
        render({changed_path: str(changed_ops[changed_path])}, FLUX_NS, work)
    )

    git = GitHttpServer(work / "git-http")
    factory = GitRepoFactory(work / "git")
    try:
        with ControlPlane(located.bin_dir, watch_cache=True) as plane, contextlib.closing(plane.api_client()) as api:
            admin = Client(api)
            for ns in (FLUX_NS, OURS_NS, FLUX_SYSTEM):
                create_namespace(admin, ns)
                wait_service_account(api, ns)
            if args.only != "ours":
                install_crds(api, sorted((flux_dir / "crds").glob("*.yaml")))
            ca = plane.dir / "pki" / "ca.crt" if plane.dir else Path()
            users = {
                name: bench_user(admin, plane.server, ca, work, name)
                for name in ("flux-source", "flux-kustomize", "reconciler")
            }

            results: dict[str, Result] = {}
            if args.only in (None, "flux"):
                results["flux"] = run_flux(
                    flux_dir, plane, admin, users, work, git, factory, count, manifests, changed_manifests, args
                )
            if args.only in (None, "ours"):
                results["ours"] = run_ours(
                    admin, users["reconciler"], work, git, factory, count, ops, changed_ops, args
                )
    finally:
        git.close()
        if args.keep:
            print(f"work dir kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)

    if args.only is not None:
        print(f"{args.only}: {results[args.only]}")
        return 0
    report(count, results["ours"], results["flux"], args.idle_seconds)
    return 0


def run_flux(
    flux_dir: Path,
    plane: ControlPlane,
    admin: Client,
    users: dict[str, BenchUser],
    work: Path,
    git: GitHttpServer,
    factory: GitRepoFactory,
    count: int,
    manifests: dict[str, str],
    changed: dict[str, str | None],
    args: argparse.Namespace,
) -> Result:
    """Flux on a repo of manifests (its first commit: a README, nothing to apply)."""
    repo = factory.create("flux", {"README.md": "manifests rendered by `reconciler render`\n"})
    url = git.publish(repo.remote).url
    with flux(flux_dir, plane, admin, users, work, url, args.flux_flag) as (trigger, reconciled, finished, processes):
        wait_until("Flux to apply the first commit", lambda: reconciled(repo.head()), 300)
        contender = Contender(
            "flux",
            FLUX_NS,
            repo,
            lambda files: _push(repo, files),
            trigger,
            reconciled,
            ["flux-source", "flux-kustomize"],
            lambda: [p.pid for p in processes],
            lambda: _all_alive(processes),
            finished,
        )
        return measure(contender, admin, count, manifests, changed, args.idle_seconds)


def run_ours(
    admin: Client,
    user: BenchUser,
    work: Path,
    git: GitHttpServer,
    factory: GitRepoFactory,
    count: int,
    ops: dict[str, str],
    changed: dict[str, str | None],
    args: argparse.Namespace,
) -> Result:
    """Our daemon on a repo of polyaxonfiles, in its own namespace."""
    repo = factory.create(
        "ours", {".polyaxon-reconciler.yaml": f"namespace: {OURS_NS}\n", "README.md": "polyaxonfiles\n"}
    )
    url = git.publish(repo.remote).url
    with ours(user, work, url) as (trigger, reconciled, finished, daemon):
        contender = Contender(
            "ours",
            OURS_NS,
            repo,
            lambda files: _push(repo, files),
            trigger,
            reconciled,
            ["reconciler"],
            lambda: [daemon.pid],
            daemon.check_alive,
            finished,
        )
        return measure(contender, admin, count, ops, changed, args.idle_seconds)


def _all_alive(processes: list[Process]) -> None:
    for p in processes:
        p.check_alive()


def _push(repo: GitRepo, files: dict[str, str | None]) -> str:
    sha = repo.commit(f"bench: {len(files)} file(s)", dict(files))
    repo.push()
    return sha


def report(count: int, ours: Result, flux: Result, idle: float) -> None:
    ratio = ours.seconds / flux.seconds
    print(f"objects:                        {count}")
    print(
        f"commit -> all Jobs:             ours {ours.seconds:.2f}s, Flux {flux.seconds:.2f}s, "
        f"ratio {ratio:.2f} (target <= 0.5)"
    )
    print(f"one changed file -> its Job:    ours {ours.one_change_seconds:.2f}s, Flux {flux.one_change_seconds:.2f}s")
    print(
        f"peak RSS:                       ours {ours.rss_mb:.0f} MB, Flux {flux.rss_mb:.0f} MB "
        "(both controllers summed; target ours <= Flux)"
    )
    print(f"API requests (both commits):    ours {ours.requests:.0f}, Flux {flux.requests:.0f}")
    print(
        f"API requests per idle minute:   ours {ours.idle_requests_per_minute:.0f}, "
        f"Flux {flux.idle_requests_per_minute:.0f} (over {idle:.0f}s)"
    )
    print(
        json.dumps(
            {
                "objects": count,
                "ours_seconds": round(ours.seconds, 3),
                "flux_seconds": round(flux.seconds, 3),
                "ratio": round(ratio, 3),
                "ours_rss_mb": round(ours.rss_mb, 1),
                "flux_rss_mb": round(flux.rss_mb, 1),
                "ours_one_change_seconds": round(ours.one_change_seconds, 3),
                "flux_one_change_seconds": round(flux.one_change_seconds, 3),
                "ours_requests": round(ours.requests),
                "flux_requests": round(flux.requests),
            }
        )
    )


if __name__ == "__main__":
    sys.exit(main())
