"""Side by side with the CronJob controller: 10,000 schedules firing every minute, on the same API
server, by our daemon and by the kube-controller-manager the test control plane builds.

    python -m bench.cron_bench [--schedules 10000] [--minutes 3]          (make bench-cron)

The CronJob controller runs alone in a kube-controller-manager of its own
(`--controllers=cronjob`, its own API user), so its CPU, memory and requests are its own; the
control plane's controller-manager runs every other controller except the Job controller: the
Jobs either side creates are never run, since 20,000 pods a minute would measure the machine,
not the schedulers. Each contender runs alone, the CronJob controller first:

- CronJob controller: 10,000 CronJobs `* * * * *` (concurrency Allow) in their own namespace;
- ours: `reconciler run` (Kubernetes backend) on a repo of 10,000 operations, half `cron:
  "* * * * *"` and half `interval` of 60 s aligned on the minute, so both fire the same 10,000
  ticks at the start of every minute.

After a warm-up (every schedule registered, one minute boundary passed), `--minutes` minutes of
ticks are measured. A tick's lag is from its scheduled time to the moment a watch on the namespace
sees its Job (the scheduled time is the CronJob controller's `cronjob-scheduled-timestamp`
annotation, and our run's cause). A tick whose Job has not appeared 59 s after it was due is
counted as missed (and as a lag of 59 s in the percentiles, a lower bound). API requests are the
API server's own count for the contender's user (bench/_cluster.py); CPU and RSS are read from
/proc. The last line printed is JSON with the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import shutil
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bench._cluster import (
    BenchUser,
    Process,
    Requests,
    Watch,
    bench_user,
    cpu_seconds,
    create_namespace,
    free_port,
    http_ok,
    peak_rss_mb,
    percentile,
    rss_mb,
    wait_until,
    watching,
)
from bench.flux_bench import RECONCILER, metric
from reconciler.backends.kubernetes.client import Client
from tests.cluster import binaries
from tests.cluster.controlplane import ControlPlane
from tests.infra.git_server import GitHttpServer, GitRepo, GitRepoFactory

STANDALONE = True  # minutes long: `make bench-cron`, not part of `make bench`
KCM_NS, OURS_NS = "bench-kcm", "bench-ours"
SCHEDULED = "batch.kubernetes.io/cronjob-scheduled-timestamp"
GRACE = 59.0  # a tick not seen this long after it was due is missed
IMAGE = "busybox:1.36"
# The CronJob controller's settings: its documented flags, raised so that neither its worker
# count nor its client-side rate limit (20 requests/s by default) is what is measured.
KCM_FLAGS = ["--concurrent-cron-job-syncs=10", "--kube-api-qps=1000", "--kube-api-burst=2000"]


def cronjob(i: int) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": f"tick-{i:05d}", "namespace": KCM_NS},
        "spec": {
            "schedule": "* * * * *",
            "concurrencyPolicy": "Allow",
            "jobTemplate": {
                "spec": {
                    "backoffLimit": 0,
                    "template": {
                        "spec": {
                            "restartPolicy": "Never",
                            "containers": [{"name": "main", "image": IMAGE, "command": ["sh", "-c", f"echo {i}"]}],
                        }
                    },
                }
            },
        },
    }


def polyaxonfile(i: int, start: dt.datetime) -> str:
    if i % 2:
        schedule = f"  kind: interval\n  frequency: 60\n  startAt: {start.isoformat()}\n"
    else:
        schedule = '  kind: cron\n  cron: "* * * * *"\n'
    return (
        "version: 1.1\n"
        "kind: operation\n"
        f"name: tick-{i:05d}\n"
        f"schedule:\n{schedule}"
        "run:\n"
        "  kind: job\n"
        "  container:\n"
        f"    image: {IMAGE}\n"
        f'    command: [sh, -c, "echo {i}"]\n'
    )


def next_minute(after: float) -> float:
    return (int(after) // 60 + 1) * 60.0


@dataclass
class Result:
    lag_p50: float
    lag_p99: float
    lag_max: float
    ticks: int
    missed: int
    requests_per_minute: float
    cpu_seconds_per_minute: float
    rss_mb: float
    peak_rss_mb: float


def measure(
    name: str,
    admin: Client,
    watch: Watch,
    user: str,
    pid: int,
    alive: Callable[[], None],
    scheduled_of: Callable[[str, Any], float | None],
    ready_at: float,
    schedules: int,
    minutes: int,
) -> Result:
    """Measure the ticks of `minutes` minute boundaries after `ready_at` (wall time)."""
    first = next_minute(ready_at + 5.0)
    last = first + 60.0 * (minutes - 1)
    window_end = last + GRACE
    print(
        f"{name}: measuring ticks {time.strftime('%H:%M:%S', time.gmtime(first))}"
        f"..{time.strftime('%H:%M:%S', time.gmtime(last))} UTC",
        flush=True,
    )
    requests = Requests(admin, [user])
    while time.time() < first - 1.0:
        alive()
        time.sleep(min(1.0, first - 1.0 - time.time()))
    requests.start()
    cpu_before = cpu_seconds(pid)
    while time.time() < window_end:
        alive()
        time.sleep(min(1.0, max(0.0, window_end - time.time())))
    cpu = cpu_seconds(pid) - cpu_before
    counts = requests.stop()
    rss_now, peak = rss_mb(pid), peak_rss_mb(pid)
    lags: list[float] = []
    for job, kept in list(watch.objects.items()):
        at = scheduled_of(job, kept)
        if at is None or not (first - 0.5 <= at <= last + 0.5):
            continue
        lags.append(watch.first_seen_wall[job] - at)
    expected = schedules * minutes
    missed = max(0, expected - len(lags))
    lags += [GRACE] * missed
    span = minutes  # minutes of ticks, each followed by up to GRACE seconds of work
    return Result(
        lag_p50=percentile(lags, 0.50),
        lag_p99=percentile(lags, 0.99),
        lag_max=max(lags, default=0.0),
        ticks=expected - missed,
        missed=missed,
        requests_per_minute=sum(counts.values()) / span,
        cpu_seconds_per_minute=cpu / span,
        rss_mb=rss_now,
        peak_rss_mb=peak,
    )


def _kcm_scheduled(_job: str, kept: Any) -> float | None:
    stamp = kept
    if not stamp:
        return None
    return dt.datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp()


def run_kcm(
    bin_dir: Path, plane: ControlPlane, admin: Client, user: BenchUser, work: Path, schedules: int, minutes: int
) -> Result:
    kcm = Process(
        "kube-controller-manager (cronjob)",
        [
            str(bin_dir / "kube-controller-manager"),
            f"--kubeconfig={user.kubeconfig}",
            "--controllers=cronjob",
            "--bind-address=127.0.0.1",
            f"--secure-port={(port := free_port())}",
            f"--cert-dir={work / 'kcm-cronjob-certs'}",
            "--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics",
            "--leader-elect=false",
            "--profiling=false",
            *KCM_FLAGS,
        ],
        work / "kcm-cronjob.log",
    ).start()
    try:
        import ssl

        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE

        def healthy() -> bool:
            with urllib.request.urlopen(f"https://127.0.0.1:{port}/healthz", timeout=5, context=insecure) as resp:
                return bool(resp.status == 200)

        wait_until("the CronJob controller healthy", healthy, 120, kcm.check_alive)
        with watching(
            admin,
            f"/apis/batch/v1/namespaces/{KCM_NS}/jobs",
            lambda o: o["metadata"].get("annotations", {}).get(SCHEDULED),
        ) as watch:
            started = time.monotonic()
            path = f"/apis/batch/v1/namespaces/{KCM_NS}/cronjobs"
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda i: admin.request("POST", path, verb="CREATE", body=cronjob(i)), range(schedules)))
            print(f"kcm: {schedules} CronJobs created in {time.monotonic() - started:.1f}s", flush=True)
            return measure(
                "kcm",
                admin,
                watch,
                user.name,
                kcm.pid,
                kcm.check_alive,
                _kcm_scheduled,
                time.time(),
                schedules,
                minutes,
            )
    finally:
        kcm.stop()


def run_ours(admin: Client, user: BenchUser, work: Path, git: GitHttpServer, schedules: int, minutes: int) -> Result:
    start = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0) - dt.timedelta(hours=1)
    factory = GitRepoFactory(work / "git")
    repo: GitRepo = factory.create("ours", {".polyaxon-reconciler.yaml": f"namespace: {OURS_NS}\n"})
    url = git.publish(repo.remote).url
    port = free_port()
    data = work / "reconciler-data"
    config = work / "reconciler.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "repos": [{"name": "bench", "url": url, "branch": "main", "interval": 60}],
                "backend": "kubernetes",
                "kubernetes": {"kubeconfig": str(user.kubeconfig), "namespace": OURS_NS},
                "database": f"sqlite:///{data / 'reconciler.db'}",
                "data_dir": str(data),
                "server": {"host": "127.0.0.1", "port": port},
                "log_level": "warning",
            }
        )
    )
    daemon = Process("reconciler", [str(RECONCILER), "run", "--config", str(config)], work / "reconciler.log").start()
    try:
        wait_until("our daemon ready", lambda: http_ok(f"http://127.0.0.1:{port}/readyz"), 120, daemon.check_alive)
        with watching(
            admin, f"/apis/batch/v1/namespaces/{OURS_NS}/jobs", lambda o: o["metadata"].get("labels", {})
        ) as watch:
            started = time.monotonic()
            repo.commit(
                "10,000 schedules", {f"ops/tick-{i:05d}.yaml": polyaxonfile(i, start) for i in range(schedules)}
            )
            repo.push()
            success = 'repo="bench",result="success"'
            seen = metric(port, "reconciler_reconcile_total", success)
            request = urllib.request.Request(f"http://127.0.0.1:{port}/api/repos/bench/sync", method="POST")
            with urllib.request.urlopen(request, timeout=10) as resp:
                assert resp.status == 202
            wait_until(
                "our daemon to register the schedules",
                lambda: metric(port, "reconciler_reconcile_total", success) > seen,
                900,
                daemon.check_alive,
            )
            print(f"ours: {schedules} schedules registered in {time.monotonic() - started:.1f}s", flush=True)
            causes: dict[str, float] = {}

            def scheduled_of(job: str, _labels: Any) -> float | None:
                if not causes:
                    causes.update(_tick_causes(port))
                return causes.get(job)

            return measure(
                "ours",
                admin,
                watch,
                user.name,
                daemon.pid,
                daemon.check_alive,
                scheduled_of,
                time.time(),
                schedules,
                minutes,
            )
    finally:
        daemon.stop()


def _tick_causes(port: int) -> dict[str, float]:
    """Run name -> scheduled time of its tick, from the daemon's API (`cause_id` of the run), page
    after page (the API gives at most 1,000 runs a page)."""
    rows: list[dict[str, Any]] = []
    query = urllib.parse.urlencode({"repo": "bench", "cause": "schedule", "limit": 1000})
    while True:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/runs?{query}", timeout=300) as resp:
            rows += json.loads(resp.read())
            cursor = resp.headers.get("X-Next-Cursor")
        if not cursor:
            break
        query = urllib.parse.urlencode({"repo": "bench", "cause": "schedule", "limit": 1000, "cursor": cursor})
    out: dict[str, float] = {}
    for row in rows:
        cause = str(row.get("cause_id") or "")
        if cause.startswith("schedule:"):
            out[row["name"]] = (
                dt.datetime.strptime(cause[len("schedule:") :], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC).timestamp()
            )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--schedules", type=int, default=10_000)
    parser.add_argument("--minutes", type=int, default=3, help="minute boundaries measured per contender")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs) and print where it is")
    parser.add_argument("--only", choices=("ours", "kcm"), help="run one contender (for profiling); no JSON line")
    args = parser.parse_args()
    located = binaries.locate()
    if located.bin_dir is None:
        print(f"control plane binaries unavailable: {located.reason} (run `make k8s-binaries`)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="bench-cron-"))
    git = GitHttpServer(work / "git-http")
    try:
        with (
            ControlPlane(
                located.bin_dir, watch_cache=True, controller_manager_args=["--controllers=*,-cronjob,-job"]
            ) as plane,
            contextlib.closing(plane.api_client()) as api,
        ):
            admin = Client(api)
            for ns in (KCM_NS, OURS_NS):
                create_namespace(admin, ns)
            assert plane.dir is not None
            ca = plane.dir / "pki" / "ca.crt"
            users = {name: bench_user(admin, plane.server, ca, work, name) for name in ("kcm-cronjob", "reconciler")}
            results: dict[str, Result] = {}
            if args.only in (None, "kcm"):
                results["kcm"] = run_kcm(
                    located.bin_dir, plane, admin, users["kcm-cronjob"], work, args.schedules, args.minutes
                )
            if args.only in (None, "ours"):
                results["ours"] = run_ours(admin, users["reconciler"], work, git, args.schedules, args.minutes)
    finally:
        git.close()
        if args.keep:
            print(f"work dir kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    if args.only is not None:
        print(f"{args.only}: {results[args.only]}")
        return 0
    report(args.schedules, args.minutes, results["ours"], results["kcm"])
    return 0


def report(schedules: int, minutes: int, ours: Result, kcm: Result) -> None:
    print(f"schedules:                 {schedules}, every minute; {minutes} minutes measured each")
    for name, r in (("ours", ours), ("CronJob controller", kcm)):
        print(
            f"{name + ':':<27}tick lag p50 {r.lag_p50:.2f}s, p99 {r.lag_p99:.2f}s, max {r.lag_max:.2f}s; "
            f"{r.ticks} ticks, {r.missed} missed; {r.requests_per_minute:.0f} API requests/min; "
            f"CPU {r.cpu_seconds_per_minute:.1f} s/min; RSS {r.rss_mb:.0f} MB (peak {r.peak_rss_mb:.0f} MB)"
        )
    print(
        json.dumps(
            {
                "schedules": schedules,
                "minutes": minutes,
                "ours_lag_p50_seconds": round(ours.lag_p50, 3),
                "ours_lag_p99_seconds": round(ours.lag_p99, 3),
                "kcm_lag_p50_seconds": round(kcm.lag_p50, 3),
                "kcm_lag_p99_seconds": round(kcm.lag_p99, 3),
                "ours_missed": ours.missed,
                "kcm_missed": kcm.missed,
                "ours_requests_per_minute": round(ours.requests_per_minute),
                "kcm_requests_per_minute": round(kcm.requests_per_minute),
                "ours_cpu_seconds_per_minute": round(ours.cpu_seconds_per_minute, 2),
                "kcm_cpu_seconds_per_minute": round(kcm.cpu_seconds_per_minute, 2),
                "ours_rss_mb": round(ours.rss_mb, 1),
                "kcm_rss_mb": round(kcm.rss_mb, 1),
                "ours_peak_rss_mb": round(ours.peak_rss_mb, 1),
                "kcm_peak_rss_mb": round(kcm.peak_rss_mb, 1),
            }
        )
    )


if __name__ == "__main__":
    sys.exit(main())
