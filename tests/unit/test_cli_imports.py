"""Each command imports only what it needs: the CLI's speed is its imports, so hold each command
to the heavy libraries it may load (deterministic: modules, not seconds). Measured figures are in
`make bench` (bench/cli_bench.py)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

HEAVY = {
    "kubernetes",  # the client's ~900 models: half a second
    "sqlalchemy",
    "sqlmodel",
    "alembic",
    "git",  # gitpython
    "optuna",
    "sklearn",
    "bayes_opt",
    "starlette",
    "uvicorn",
    "httpx",
    "apscheduler",
    "rich",
    "pydantic_settings",
}
PROBE = """
import gc, json, sys
from reconciler.cli import main
sys.argv = ["reconciler", *json.loads(sys.argv[1])]
try:
    main()
except SystemExit:
    pass
state = {"modules": sorted(sys.modules), "collecting": gc.isenabled(), "frozen": gc.get_freeze_count()}
print("\\n" + json.dumps(state))
"""


def probe(*argv: str, cwd: Path | None = None) -> tuple[str, dict[str, Any]]:
    """What `reconciler *argv` printed, and, as it ended: every module it had imported, whether
    the garbage collector was on and how many objects were frozen out of its reach."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(list(argv))], capture_output=True, text=True, timeout=120, cwd=cwd
    )
    *printed, state = done.stdout.strip().splitlines()
    return "\n".join(printed), json.loads(state)


def imported(*argv: str, cwd: Path | None = None) -> set[str]:
    """The heavy libraries among the modules `reconciler *argv` imports."""
    return {m.split(".")[0] for m in probe(*argv, cwd=cwd)[1]["modules"]} & HEAVY


GOOD = """version: 1.1
kind: component
run: {kind: job, container: {image: busybox, command: [echo, hi]}}
"""


@pytest.mark.parametrize(
    ("argv", "allowed"),
    [
        ((), set()),
        (("--help",), set()),
        (("version",), set()),
        (("validate", "{file}"), set()),
        (("runs", "list", "--config", "{config}"), {"sqlalchemy", "sqlmodel", "alembic", "pydantic_settings"}),
    ],
    ids=["bare", "help", "version", "validate", "runs-list"],
)
def test_each_command_imports_only_what_it_needs(argv: tuple[str, ...], allowed: set[str], tmp_path: Path) -> None:
    (tmp_path / "op.yaml").write_text(GOOD)
    (tmp_path / "cfg.yaml").write_text(f"database: sqlite:///{tmp_path / 'none.db'}\n")
    args = [a.format(file=tmp_path / "op.yaml", config=tmp_path / "cfg.yaml") for a in argv]
    heavy = imported(*args)
    assert heavy <= allowed, f"reconciler {' '.join(argv)} imports {sorted(heavy - allowed)}"


def test_the_listed_help_is_each_commands_own() -> None:
    """`reconciler --help` lists commands without importing them: its lines are written in cli.py
    and must stay what each command says of itself."""
    from reconciler.cli import COMMANDS, load

    for name, entry in COMMANDS.items():
        command = load(name)
        own = (command.help or "").strip().splitlines()[0]
        assert own == entry.help, name


# What listing runs must not import: the daemon's wiring, the tracking store's aggregates a read
# never touches, the migration tool (the schema revision is one SELECT), the HTTP client the
# other `runs` commands use to reach the daemon, and the PostgreSQL dialect on a SQLite database.
NOT_FOR_A_LISTING = {
    "reconciler.commands.daemon",
    "reconciler.tracking.store",
    "reconciler.tracking.outbox",
    "reconciler.tracking.leases",
    "reconciler.tracking.handoffs",
    "reconciler.tracking.subscriptions",
    "reconciler.tracking.webhooks",
    "reconciler.tracking.instance",
    "reconciler.tracking.reports",
    "reconciler.tracking.tables",  # all 20 tables; a listing declares the 8 of tables_runs
    "sqlalchemy.dialects.postgresql",
    "alembic",
    "urllib.request",
}


def test_listing_runs_imports_the_read_side_only(tmp_path: Path) -> None:
    from reconciler.tracking import upgrade

    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    upgrade(url)
    (tmp_path / "cfg.yaml").write_text(f"database: {url}\n")
    printed, state = probe("runs", "list", "--config", str(tmp_path / "cfg.yaml"))
    assert printed.strip() == "no runs"  # it read the (empty) database
    loaded = set(state["modules"])
    assert not loaded & NOT_FOR_A_LISTING, sorted(loaded & NOT_FOR_A_LISTING)
    # A read runs without the cyclic collector and leaves nothing for its last pass at exit.
    assert not state["collecting"]
    assert state["frozen"] > 0


def test_other_commands_keep_the_collector() -> None:
    _, state = probe("version")
    assert state["collecting"]
    assert state["frozen"] > 0  # the exit pass is skipped for every command


def test_the_tracking_package_exports_what_its_modules_define() -> None:
    """`reconciler.tracking` imports its names when first used (so a listing skips the rest):
    each one in `__all__` must resolve to the object its module defines, and nothing else does."""
    import importlib

    import reconciler.tracking as tracking

    exports = tracking._EXPORTS
    assert sorted(exports) == sorted(tracking.__all__)
    for name, (module, attribute) in exports.items():
        assert getattr(tracking, name) is getattr(importlib.import_module(f"reconciler.tracking.{module}"), attribute)
    with pytest.raises(AttributeError):
        _ = tracking.NoSuchName  # type: ignore[attr-defined]


def test_following_a_log_turns_the_collector_back_on(tmp_path: Path) -> None:
    # A follow may last for hours: cyclic garbage must not pile up for that long. No daemon
    # answers on the closed port, so the follow ends at once, after the collector is back.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "cfg.yaml").write_text(f"database: sqlite:///{tmp_path / 'db.sqlite'}\nserver: {{port: {port}}}\n")
    _, state = probe("runs", "logs", "some-run", "--follow", "--config", str(tmp_path / "cfg.yaml"))
    assert state["collecting"]
    listing = probe("runs", "list", "--config", str(tmp_path / "cfg.yaml"))[1]
    assert not listing["collecting"]
