"""`sharding` settings: the names are a contract; SQLite and the local backend are refused, with a
message that says why and what to do, and `reconciler run` exits 2 on them before starting."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError
from typer.testing import CliRunner

from reconciler.cli import app
from reconciler.config import Settings

PG = "postgresql+psycopg://reconciler@db.example/reconciler"


def test_the_defaults_are_the_issue_s() -> None:
    settings = Settings(backend="kubernetes", database=PG, sharding={"mode": "kubernetes"})
    assert settings.sharding is not None
    assert (settings.sharding.mode, settings.sharding.lease_seconds, settings.sharding.identity) == (
        "kubernetes",
        15,
        None,
    )
    assert Settings(backend="kubernetes", database=PG).sharding is None  # absent: one replica owns all


def test_database_mode_with_identity() -> None:
    settings = Settings(
        backend="kubernetes", database=PG, sharding={"mode": "database", "lease_seconds": 6, "identity": "pod-a"}
    )
    assert settings.sharding is not None and settings.sharding.identity == "pod-a"


@pytest.mark.parametrize("database", ["sqlite:////data/reconciler.db", "sqlite+pysqlite:///x.db"])
def test_sqlite_is_refused_with_the_reason(database: str) -> None:
    with pytest.raises(ValidationError, match="sharding needs PostgreSQL"):
        Settings(backend="kubernetes", database=database, sharding={"mode": "database"})


def test_the_default_database_is_sqlite_and_refused() -> None:
    with pytest.raises(ValidationError, match="SQLite is a file of one process"):
        Settings(backend="kubernetes", sharding={"mode": "kubernetes"})


def test_the_local_backend_is_refused() -> None:
    with pytest.raises(ValidationError, match="local runs are processes of one host"):
        Settings(backend="local", database=PG, sharding={"mode": "database"})


@pytest.mark.parametrize(
    "sharding",
    [
        {"mode": "zookeeper"},
        {"mode": "database", "lease_seconds": 1},  # renewing every third of a second is no lease
        {"mode": "database", "identity": "../etc"},
        {"mode": "database", "identity": ""},
        {"mode": "database", "identity": "a" * 129},
        {"mode": "database", "leases": 3},  # unknown keys are refused, not ignored
    ],
)
def test_bad_values_are_refused(sharding: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Settings(backend="kubernetes", database=PG, sharding=sharding)


def test_reconciler_run_exits_2_naming_the_problem(tmp_path: Path) -> None:
    config = tmp_path / "cfg.yaml"
    config.write_text(
        yaml.safe_dump(
            {"backend": "kubernetes", "database": f"sqlite:///{tmp_path}/db", "sharding": {"mode": "database"}}
        )
    )
    result = CliRunner().invoke(app, ["run", "--config", str(config)])
    assert result.exit_code == 2
    assert "sharding needs PostgreSQL" in result.output
    assert not (tmp_path / "db").exists()  # refused before anything was created


def test_reconciler_sync_refuses_to_act_outside_the_replicas_leases(tmp_path: Path) -> None:
    config = tmp_path / "cfg.yaml"
    config.write_text(yaml.safe_dump({"backend": "kubernetes", "database": PG, "sharding": {"mode": "database"}}))
    result = CliRunner().invoke(app, ["sync", "--config", str(config)])
    assert result.exit_code == 2
    assert "does not run with sharding" in result.output
