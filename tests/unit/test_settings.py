"""Daemon settings: the namespaces a repo may use follow the backend."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from reconciler.cli import app
from reconciler.config import ForgeConfig, Settings, SettingsError, load_settings


def test_kubernetes_namespaces_are_the_daemons_first_then_the_others_once() -> None:
    settings = Settings(backend="kubernetes", kubernetes={"namespace": "a", "namespaces": ["b", "a", "c"]})  # type: ignore[arg-type]
    assert settings.run_namespaces == ("a", "b", "c")


def test_local_runs_have_no_namespace_to_restrict() -> None:
    assert Settings(backend="local", kubernetes={"namespaces": ["b"]}).run_namespaces is None  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["Upper", "under_score", "-dash", "x" * 64, ""])
def test_namespace_names_are_dns_labels(bad: str) -> None:
    with pytest.raises(ValidationError, match="not a Kubernetes namespace name"):
        Settings(kubernetes={"namespaces": [bad]})  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="not a Kubernetes namespace name"):
        Settings(kubernetes={"namespace": bad})  # type: ignore[arg-type]


def test_a_bad_settings_file_names_each_problem_where_it_is(tmp_path: Path) -> None:
    """An operator's typo is the first thing they meet: `file:line:col`, and the keys allowed there."""
    config = tmp_path / "reconciler.yaml"
    config.write_text(
        "database: sqlite:///x.db\n"
        "repos:\n"
        "  - name: a\n"
        "    url: /tmp/a\n"
        "    forge:\n"
        "      provider: github\n"
        "      project: o/a\n"
        "      tokn_file: /t\n"
        "server:\n"
        "  port: many\n"
        "database_url: x\n"
    )
    with pytest.raises(SettingsError) as caught:
        load_settings(config)
    assert [str(e) for e in caught.value.errors] == [
        f"{config}:8:7: unknown key 'tokn_file' (allowed: {', '.join(ForgeConfig.model_fields)})",
        f"{config}:10:9: server.port: Input should be a valid integer, unable to parse string as an integer",
        f"{config}:11:1: unknown key 'database_url' (allowed: {', '.join(Settings.model_fields)})",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [("- a\n", "1:1: the settings file must be a mapping"), ("a: [\n", "2:1: while parsing a flow node")],
)
def test_a_settings_file_not_a_mapping_is_refused_with_its_place(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "reconciler.yaml"
    config.write_text(text)
    with pytest.raises(SettingsError, match=message):
        load_settings(config)


def test_the_cli_prints_one_error_line_per_problem_and_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "reconciler.yaml"
    config.write_text("database: sqlite:///x.db\npoll: 3\nlog_level: loud\n")
    done = CliRunner().invoke(app, ["runs", "list", "--config", str(config)])
    assert done.exit_code == 2
    assert done.stderr.splitlines()[:2] == [
        f"error: {config}:2:1: unknown key 'poll' (allowed: {', '.join(Settings.model_fields)})",
        f"error: {config}:3:12: log_level: Input should be 'debug', 'info', 'warning' or 'error'",
    ]
