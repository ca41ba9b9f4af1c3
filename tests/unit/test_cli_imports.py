"""Each command imports only what it needs: the CLI's speed is its imports, so hold each command
to the heavy libraries it may load (deterministic: modules, not seconds). Measured figures are in
`make bench` (bench/cli_bench.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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
import json, sys
from reconciler.cli import main
sys.argv = ["reconciler", *json.loads(sys.argv[1])]
try:
    main()
except SystemExit:
    pass
print("\\n" + json.dumps(sorted({m.split(".")[0] for m in sys.modules})))
"""


def imported(*argv: str, cwd: Path | None = None) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(list(argv))], capture_output=True, text=True, timeout=120, cwd=cwd
    )
    return set(json.loads(done.stdout.strip().splitlines()[-1])) & HEAVY


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
