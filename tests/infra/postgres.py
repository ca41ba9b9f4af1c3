"""A real, throw-away PostgreSQL server for tests and benchmarks, plus the `db_url` fixture.

The server is Debian's PostgreSQL (installed by `scripts/ensure-postgres.sh` from `make test`),
started with `initdb` + `pg_ctl` in a temp dir, listening on a free port on 127.0.0.1 with its
unix socket inside that dir, so nothing on the machine is touched or shared. PostgreSQL refuses
to run as root, so as root the server runs as the `postgres` (or `nobody`) user, owning its dir.

`db_url` gives each test an empty database, once on SQLite and once on PostgreSQL.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

START_TIMEOUT_S = 60.0


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries on this machine (run scripts/ensure-postgres.sh)."""


def find_bin_dir() -> Path:
    """The newest /usr/lib/postgresql/<major>/bin that has pg_ctl and initdb."""
    env = os.environ.get("RECONCILER_PG_BIN")
    candidates = (
        [env]
        if env
        else sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True)
    )
    for candidate in candidates:
        if (Path(candidate) / "pg_ctl").exists() and (Path(candidate) / "initdb").exists():
            return Path(candidate)
    raise PostgresUnavailable(
        "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin "
        "(install them with scripts/ensure-postgres.sh, which `make test` runs)"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_as() -> pwd.struct_passwd | None:
    """The unprivileged user to run the server as, or None when we are not root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise PostgresUnavailable("running as root and neither a 'postgres' nor a 'nobody' user exists")


def _wait_until(condition: object, deadline: float, what: str) -> None:
    assert callable(condition)
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except Exception as exc:  # the server is not up yet: keep polling until the deadline
            last = exc
        time.sleep(0.05)
    raise TimeoutError(f"{what} within {START_TIMEOUT_S}s (last error: {last})")


@dataclass
class PostgresServer:
    """A running server; `url(db)` gives a SQLAlchemy URL for one of its databases."""

    bin_dir: Path
    base_dir: Path
    port: int
    user: pwd.struct_passwd | None
    superuser: str = "postgres"
    log_file: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_file = self.base_dir / "server.log"

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.superuser}@127.0.0.1:{self.port}/{database}"

    def _cmd(self, *args: str) -> list[str]:
        if self.user is None:
            return list(args)
        return ["runuser", "-u", self.user.pw_name, "--", *args]

    def _run(self, *args: str, timeout: float = START_TIMEOUT_S) -> None:
        result = subprocess.run(self._cmd(*args), capture_output=True, text=True, timeout=timeout, check=False)
        if result.returncode != 0:
            log = self.log_file.read_text(errors="replace")[-3000:] if self.log_file.exists() else ""
            raise RuntimeError(
                f"{shlex.join(args)} exited {result.returncode}\n{result.stdout}\n{result.stderr}\n{log}"
            )

    def start(self, durable: bool = False) -> None:
        """initdb (first time) and start; `durable=False` trades crash safety for test speed."""
        if not self.data_dir.exists():
            self._run(
                str(self.bin_dir / "initdb"),
                "-D", str(self.data_dir),
                "-U", self.superuser,
                "--auth=trust",
                "--encoding=UTF8",
                "--no-locale",
            )  # fmt: skip
        options = [
            "-c", "listen_addresses=127.0.0.1",
            "-p", str(self.port),
            "-k", str(self.base_dir),
            "-c", "max_connections=200",
        ]  # fmt: skip
        if not durable:
            options += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        self._run(
            str(self.bin_dir / "pg_ctl"),
            "-D", str(self.data_dir),
            "-l", str(self.log_file),
            "-o", shlex.join(options),
            "-w", "-t", str(int(START_TIMEOUT_S)),
            "start",
        )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT_S
        _wait_until(self._accepts_queries, deadline, f"PostgreSQL on port {self.port} did not answer")

    def _accepts_queries(self) -> bool:
        import psycopg

        with psycopg.connect(self.url().replace("+psycopg", ""), connect_timeout=2) as conn:
            return conn.execute("SELECT 1").fetchone() == (1,)

    def stop(self) -> None:
        if (self.data_dir / "postmaster.pid").exists():
            self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop")

    def execute_autocommit(self, sql: str) -> None:
        """Run one statement outside a transaction (CREATE/DROP DATABASE need that)."""
        import psycopg

        with psycopg.connect(self.url().replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute(sql.encode())

    def create_database(self, prefix: str = "t") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:16]}"
        self.execute_autocommit(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        self.execute_autocommit(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def start_postgres(durable: bool = False, attempts: int = 3) -> PostgresServer:
    """Start a fresh server in a new temp dir; the caller must `stop_postgres` it."""
    bin_dir = find_bin_dir()
    user = _run_as()
    # Not under pytest's per-user 0700 tmp: the server user must be able to reach its dir.
    base_dir = Path(tempfile.mkdtemp(prefix="reconciler-pg-"))
    if user is not None:
        os.chown(base_dir, user.pw_uid, user.pw_gid)
    error: Exception | None = None
    for _ in range(attempts):
        server = PostgresServer(bin_dir=bin_dir, base_dir=base_dir, port=_free_port(), user=user)
        try:
            server.start(durable=durable)
            return server
        except (RuntimeError, TimeoutError) as exc:  # most likely the port was taken meanwhile
            error = exc
            with contextlib.suppress(Exception):
                server.stop()
    shutil.rmtree(base_dir, ignore_errors=True)
    raise RuntimeError(f"could not start PostgreSQL after {attempts} attempts: {error}")


def stop_postgres(server: PostgresServer) -> None:
    try:
        server.stop()
    finally:
        shutil.rmtree(server.base_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    try:
        find_bin_dir()
    except PostgresUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required in CI: {exc}")
        pytest.skip(f"SKIPPING PostgreSQL tests: {exc}")
    server = start_postgres()
    try:
        yield server
    finally:
        stop_postgres(server)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database for this test: a SQLite file, or a new database on the PG server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'tracking.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = server.create_database()
    try:
        yield server.url(name)
    finally:
        server.drop_database(name)
