"""Real git repositories in temp dirs, driven with the git CLI, as remotes for GitSource."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reconciler.source import Backoff, GitSource

# Fixed identity and no user/system config, so the tests behave the same on every machine.
_GIT_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.invalid",
}


class Remote:
    """A non-bare repository used as the remote; `url` is its file:// URL."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._tick = 1_700_000_000
        path.mkdir(parents=True)
        self.git("init", "-q", "-b", "main")

    @property
    def url(self) -> str:
        return self.path.as_uri()

    def git(self, *args: str, env: dict[str, str] | None = None) -> str:
        env = {**os.environ, **_GIT_ENV, "HOME": str(self.path.parent), **(env or {})}
        done = subprocess.run(
            ["git", *args], cwd=self.path, env=env, check=True, capture_output=True, text=True, timeout=60
        )
        return done.stdout.strip()

    def commit(self, files: dict[str, bytes | str | None], message: str = "change") -> str:
        """Write (or delete, for None) the given files and commit; returns the commit sha."""
        for name, content in files.items():
            target = self.path / name
            if content is None:
                self.git("rm", "-q", "--", name)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content.encode() if isinstance(content, str) else content)
            self.git("add", "--", name)
        self._tick += 60
        date = f"@{self._tick} +0000"
        self.git(
            "commit", "-q", "--allow-empty", "-m", message,
            env={"GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date},
        )  # fmt: skip
        return self.head()

    @property
    def last_tick(self) -> int:
        return self._tick

    def head(self, ref: str = "HEAD") -> str:
        return self.git("rev-parse", f"{ref}^{{commit}}")


@pytest.fixture
def remote(tmp_path: Path) -> Remote:
    return Remote(tmp_path / "remote")


class Sleeps:
    """An injected sleep: records the delays, waits for nothing, can run a hook per call."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self.hooks: dict[int, object] = {}

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        hook = self.hooks.get(len(self.delays))
        if callable(hook):
            hook()


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def make_source(tmp_path: Path, sleeps: Sleeps) -> Iterator[Callable[..., GitSource]]:
    made: list[GitSource] = []

    def make(url: str, ref: str = "main", **kwargs: object) -> GitSource:
        kwargs.setdefault("backoff", Backoff(attempts=3, initial=1, factor=2, cap=30))
        kwargs.setdefault("timeout_s", 30.0)
        source = GitSource("demo", url, ref, tmp_path / "cache", sleep=sleeps, **kwargs)  # type: ignore[arg-type]
        made.append(source)
        return source

    yield make
    for source in made:
        source.close()
