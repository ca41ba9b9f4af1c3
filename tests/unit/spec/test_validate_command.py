"""`reconciler validate`: output formats, exit codes, directory walking (the CLI contract)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from reconciler.cli import app

GOOD = "kind: component\nname: train\nrun:\n  kind: job\n  container: {image: python:3.11, command: [python, -V]}\n"
BAD = "kind: component\nrun:\n  kind: job\n  container: {image: x}\ntermination: {maxRetries: '3'}\n"


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["validate", *args])
    return result.exit_code, result.stdout, result.stderr


def test_valid_file_exits_zero(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(GOOD)
    code, out, err = invoke(str(tmp_path / "a.yaml"))
    assert code == 0
    assert "1 file(s) checked, 0 invalid" in out + err


def test_text_errors_are_compiler_style(tmp_path: Path) -> None:
    path = tmp_path / "b.yaml"
    path.write_text(BAD)
    code, out, _ = invoke(str(path))
    assert code == 1
    assert out.splitlines()[0].startswith(f"{path}:5:27: termination.maxRetries:")


def test_json_rows_have_exactly_the_contract_fields(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(GOOD)
    (tmp_path / "b.yaml").write_text(BAD)
    code, out, _ = invoke("--format", "json", str(tmp_path / "a.yaml"), str(tmp_path / "b.yaml"))
    assert code == 1
    rows = [json.loads(line) for line in out.splitlines()]
    assert [set(r) for r in rows] == [{"path", "valid", "errors"}] * 2
    assert rows[0] == {"path": str(tmp_path / "a.yaml"), "valid": True, "errors": []}
    assert rows[1]["valid"] is False
    [error] = rows[1]["errors"]
    assert set(error) == {"line", "column", "message"}
    assert (error["line"], error["column"]) == (5, 27)


def test_usage_errors_exit_two(tmp_path: Path) -> None:
    assert invoke(str(tmp_path / "missing.yaml"))[0] == 2
    (tmp_path / "a.yaml").write_text(GOOD)
    assert invoke("--format", "xml", str(tmp_path / "a.yaml"))[0] == 2
    assert invoke("--url-map", "no-equals-sign", str(tmp_path / "a.yaml"))[0] == 2


def test_directory_walk_skips_other_yaml_and_says_so_with_v(tmp_path: Path) -> None:
    (tmp_path / "ops").mkdir()
    (tmp_path / "ops" / "train.yaml").write_text(GOOD)
    (tmp_path / "deploy.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    (tmp_path / "notes.txt").write_text("not yaml")
    code, out, err = invoke("-v", str(tmp_path))
    assert code == 0
    assert f"{tmp_path / 'deploy.yaml'}: skipped (not a polyaxonfile)" in out
    assert "1 skipped" in out + err
    code, out, _ = invoke("--format", "json", str(tmp_path))
    assert [json.loads(line)["path"] for line in out.splitlines()] == [str(tmp_path / "ops" / "train.yaml")]


def test_url_refs_are_refused_unless_mirrored(tmp_path: Path) -> None:
    (tmp_path / "mirror").mkdir()
    (tmp_path / "mirror" / "c.yaml").write_text(GOOD)
    op = tmp_path / "op.yaml"
    op.write_text("kind: operation\nurlRef: https://example.com/c.yaml\n")
    code, out, _ = invoke(str(op))
    assert code == 1 and "op.yaml:2:9:" in out and "--url-map" in out
    code, _, _ = invoke("--url-map", f"https://example.com/={tmp_path / 'mirror'}/", str(op))
    assert code == 0


def test_hub_refs_from_hub_dir(tmp_path: Path) -> None:
    (tmp_path / "hub" / "trainer").mkdir(parents=True)
    (tmp_path / "hub" / "trainer" / "v1.yaml").write_text(GOOD)
    op = tmp_path / "op.yaml"
    op.write_text("kind: operation\nhubRef: acme/trainer:v1\n")
    assert invoke("--hub-dir", str(tmp_path / "hub"), str(op))[0] == 0
    op.write_text("kind: operation\nhubRef: trainer:v2\n")
    code, out, _ = invoke("--hub-dir", str(tmp_path / "hub"), str(op))
    assert code == 1 and "does not exist" in out


def test_unchecked_event_ref_warning_prints_without_v_and_keeps_exit_zero(tmp_path: Path) -> None:
    path = tmp_path / "evaluate.yaml"
    subscriber = GOOD.replace("name: train", "name: evaluate")
    path.write_text(subscriber + "events:\n- {kinds: [run_status_done], ref: ops.train}\n")
    code, out, _ = invoke(str(path))
    assert code == 0
    [line] = [line for line in out.splitlines() if line.endswith("[warning]")]
    assert line.startswith(f"{path}:7:") and "'train'" in line
    code, out, _ = invoke("--format", "json", str(path))
    assert code == 0
    assert json.loads(out) == {"path": str(path), "valid": True, "errors": []}
