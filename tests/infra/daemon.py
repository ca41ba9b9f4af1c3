"""The production daemon, in process, over real git repos and a real tracking DB.

`DaemonHarness` builds `Settings` (one or more repos whose URLs are real git repos made by
`git_repo_factory`, a data dir under the test's tmp dir, the test's database URL), migrates the
database, and calls `reconciler.wiring.build_daemon` with a `Clock` the test moves and no
APScheduler timer (unless asked), so every part is the one `reconciler run` uses: the `Daemon`,
its `Applier`, `Orchestrator`, forge wiring and git sources. A test drives it the way the world
does: commit files then reconcile (`apply_git`), let time pass and fire the due ticks
(`fire_ticks`), report a run's status (`record`, `finish`: through `Daemon.record_transition`),
restart (`restart`: a second `build_daemon` over the same store and backend), or run as
`reconciler run` does (`start`: workers, status observer, outbox, HTTP on port 0).

The backend is the test's choice: `ScriptedBackend` (a fake, named so, whose runs have the
statuses the test records) by default, or the real `LocalBackend` (`backend="local"`, in the data
dir under this database's instance, as `reconciler run` keeps it). Nothing here re-implements the
daemon; helpers only read back what it did (`submitted`, `stopped`, `status`, `notices`).
"""

from __future__ import annotations

import logging
import textwrap
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import yaml

from reconciler import repo_config as rc
from reconciler.backends import Backend
from reconciler.backends.local import LocalBackend
from reconciler.config import RepoConfig, Settings
from reconciler.daemon import Daemon, ReconcileResult
from reconciler.model import RunRequest, StatusTransition
from reconciler.tracking import Run, Store, upgrade
from reconciler.wiring import build_daemon
from tests.infra.git_server import GitRepo, GitRepoFactory
from tests.infra.scripted_backend import ScriptedBackend


class Clock:
    """The daemon's clock: it says what the test last set, and moves only when the test moves it.
    Made with `None`, it is the wall clock until a test sets it."""

    def __init__(self, now: datetime | None) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now if self.now is not None else datetime.now(UTC)

    def set(self, now: datetime) -> datetime:
        self.now = now
        return now

    def advance(self, delta: timedelta) -> datetime:
        return self.set(self() + delta)


def settings_for(
    repos: Mapping[str, GitRepo],
    *,
    database: str,
    data_dir: Path,
    interval: float = 3600.0,
    repo_options: Mapping[str, Mapping[str, Any]] | None = None,
    **extra: Any,
) -> Settings:
    """Settings with one entry per repo (its `file://` URL, branch main); `repo_options` adds keys
    per repo (e.g. `forge`), `extra` top-level keys (e.g. `server`)."""
    entries = [
        RepoConfig.model_validate(
            {"name": name, "url": repo.file_url, "interval": interval, **dict((repo_options or {}).get(name, {}))}
        )
        for name, repo in repos.items()
    ]
    extra.setdefault("server", {"host": "127.0.0.1", "port": 0})
    return Settings(repos=entries, database=database, data_dir=data_dir, **extra)


class _Notices(logging.Handler):
    """The applier logs each orchestration notice (`reason: message`, extra `subject`)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        subject = getattr(record, "subject", None)
        if subject is not None:
            self.seen.append(f"{subject}: {record.getMessage()}")


class DaemonHarness:
    """One production daemon (and its restarts) over real git repos; see the module docstring."""

    def __init__(
        self,
        base: Path,
        database: str,
        git: GitRepoFactory,
        *,
        start: datetime | None = None,
        repos: Sequence[str] = ("r",),
        backend: Backend | Literal["scripted", "local"] = "scripted",
        timer: bool = False,
        repo_options: Mapping[str, Mapping[str, Any]] | None = None,
        **settings: Any,
    ) -> None:
        self.base = base
        self.git = git
        self.clock = Clock(start)
        self.timer = timer
        self.repos: dict[str, GitRepo] = {name: git.create(name) for name in repos}
        # The repo config committed with each `apply_git` (None: no `.polyaxon-reconciler.yaml`).
        self.config: dict[str, dict[str, Any] | None] = {name: None for name in repos}
        self.settings = settings_for(
            self.repos, database=database, data_dir=base / "data", repo_options=repo_options, **settings
        )
        upgrade(database)
        self.store = Store.open(database)
        self.backend: Backend
        if backend == "scripted":
            self.backend = ScriptedBackend()
        elif backend == "local":
            # Where `reconciler run` keeps this database's runs, supervised often so tests wait little.
            instance = self.store.instance_id(datetime.now(UTC))
            self.backend = LocalBackend.in_data_dir(
                self.settings.data_dir, instance=instance, interval=0.05, stop_grace=2.0
            )
        else:
            self.backend = backend
        self._notices = _Notices()
        logging.getLogger("reconciler.apply").addHandler(self._notices)
        self._daemons: list[Daemon] = []
        self._started: list[Daemon] = []
        self._stores: list[Store] = [self.store]
        self.daemon = self.build()

    # --- building daemons ----------------------------------------------------------------------

    def build(
        self,
        *,
        store: Store | None = None,
        backend: Backend | None = None,
        clock: Callable[[], datetime] | None = None,
        timer: bool | None = None,
        settings: Settings | None = None,
    ) -> Daemon:
        """Another daemon over this harness's settings (another replica, when given its own store)."""
        daemon = build_daemon(
            settings or self.settings,
            store or self.store,
            backend or self.backend,
            clock=clock or self.clock,
            timer=self.timer if timer is None else timer,
        )
        self._daemons.append(daemon)
        return daemon

    def restart(self) -> Daemon:
        """The daemon dies and starts again: a new daemon (nothing in memory) over the same store,
        backend and data dir; it becomes `self.daemon`."""
        self.daemon = self.build()
        return self.daemon

    def open_store(self) -> Store:
        """Another connection pool to the same database (another process's view); closed at the end."""
        store = Store.open(self.settings.database)
        self._stores.append(store)
        return store

    def start(self, workers: int = 2) -> str:
        """Run `self.daemon` as `reconciler run` does (workers, status observer, outbox, HTTP server
        on the settings' address; port 0 picks a free one); returns its base URL."""
        self.daemon.start(workers=workers, serve=True)
        self._started.append(self.daemon)
        assert self.daemon.address is not None
        return self.daemon.address

    def close(self) -> None:
        logging.getLogger("reconciler.apply").removeHandler(self._notices)
        for daemon in self._started:
            daemon.stop(deadline=10.0)
        for daemon in self._daemons:
            if daemon.orchestration.timer is not None:
                daemon.orchestration.timer.stop()
            for state in daemon.repos.values():
                state.source.close()
        self.backend.close()
        if isinstance(self.backend, LocalBackend):
            # Local runs outlive their daemon by design: end what the test left running.
            sweeper = LocalBackend(self.backend.state_dir, supervise=False)
            for owned in sweeper.list_owned():
                sweeper.delete(owned.run)
            sweeper.close()
        for store in self._stores:
            store.close()

    # --- Git ------------------------------------------------------------------------------------

    def commit(self, files: Mapping[str, str | None], *, repo: str = "r", message: str = "change") -> str:
        """Change `files` (dedented; None deletes) in a new commit pushed to the remote; its sha."""
        git = self.repos[repo]
        sha = git.commit(message, {p: _text(c) for p, c in files.items()}, allow_empty=True)
        git.push()
        return sha

    def set_tree(self, files: Mapping[str, str], *, repo: str = "r", message: str = "change") -> str:
        """A new commit whose tree is exactly `files` plus the repo config of `self.config[repo]`."""
        git = self.repos[repo]
        wanted: dict[str, str | None] = {p: _text(c) for p, c in files.items()}
        config = self.config[repo]
        if config is not None:
            wanted[rc.FILENAME] = yaml.safe_dump(config, sort_keys=False)
        tracked = git.git("ls-files").splitlines()
        for path in tracked:
            wanted.setdefault(path, None)
        sha = git.commit(message, wanted, allow_empty=True)
        git.push()
        return sha

    def apply_git(self, files: Mapping[str, str], at: datetime | None = None, *, repo: str = "r") -> ReconcileResult:
        """Git now holds exactly `files` (and the repo config): commit, push, reconcile at `at`."""
        sha = self.set_tree(files, repo=repo)
        result = self.reconcile(repo, at)
        assert result.commit == sha, (result.commit, sha, result.skipped)
        return result

    def reconcile(self, repo: str = "r", at: datetime | None = None) -> ReconcileResult:
        """One poll of `repo` by the daemon (fetch, load, plan, apply), at `at` (default: now)."""
        if at is not None:
            self.clock.set(at)
        return self.daemon.reconcile_repo(repo)

    # --- time -----------------------------------------------------------------------------------

    def fire_ticks(self, at: datetime) -> None:
        """The timer woke the daemon at `at`: due schedules fire, skip or are recorded missed."""
        self.clock.set(at)
        self.daemon.fire_ticks()

    def resume(self, at: datetime | None = None) -> None:
        """The daemon's resume pass (at start-up and every minute) at `at`."""
        if at is not None:
            self.clock.set(at)
        self.daemon.resume()

    # --- statuses -------------------------------------------------------------------------------

    def record(self, run: str, status: str, at: datetime | None = None, reason: str = "", message: str = "") -> None:
        """The backend reports `run` in `status` at `at` (default: the clock), through the daemon."""
        when = self.clock.set(at) if at is not None else self.clock()
        if isinstance(self.backend, ScriptedBackend):
            self.backend.set_status(run, status)
        self.daemon.record_transition(StatusTransition(run, status, when, reason, message))

    def finish(
        self, run: str, status: str, at: datetime | None = None, outputs: Mapping[str, Any] | None = None
    ) -> None:
        """The run starts, writes `outputs`, and ends in `status`."""
        self.set_outputs(run, outputs or {})
        self.record(run, "running", at)
        self.record(run, status, at)

    def set_outputs(self, run: str, outputs: Mapping[str, Any]) -> None:
        assert isinstance(self.backend, ScriptedBackend), "outputs are set on the scripted backend"
        self.backend.outputs_by_run[run] = dict(outputs)

    # --- reading back -------------------------------------------------------------------------

    @property
    def scripted(self) -> ScriptedBackend:
        assert isinstance(self.backend, ScriptedBackend)
        return self.backend

    @property
    def submitted(self) -> list[RunRequest]:
        """Every run the daemon submitted to the (scripted) backend, in order."""
        return list(self.scripted.submits)

    def names(self) -> list[str]:
        return [r.name for r in self.submitted]

    def by_op(self, op_name: str) -> list[RunRequest]:
        return [r for r in self.submitted if r.op.name == op_name]

    @property
    def stopped(self) -> list[str]:
        return list(self.scripted.stops)

    @property
    def notices(self) -> list[str]:
        """Orchestration notices the daemon logged (`<subject>: <reason>: <message>`)."""
        return list(self._notices.seen)

    def run(self, name: str) -> Run:
        found = self.store.run(name)
        assert found is not None, f"no run {name!r} recorded"
        return found

    def status(self, name: str) -> str:
        return str(self.run(name).status)

    def parent(self, name: str) -> str | None:
        return self.run(name).parent


def _text(content: str | None) -> str | None:
    return None if content is None else textwrap.dedent(content).lstrip("\n")


@contextmanager
def daemon_harness(base: Path, database: str, git: GitRepoFactory, **options: Any) -> Iterator[DaemonHarness]:
    harness = DaemonHarness(base, database, git, **options)
    try:
        yield harness
    finally:
        harness.close()


__all__ = ["Clock", "DaemonHarness", "daemon_harness", "settings_for"]
