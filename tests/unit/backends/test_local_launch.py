"""From a run request to argv/env/cwd: kinds, command shapes, templates, env, working dir."""

from pathlib import Path
from typing import Any

import pytest

from reconciler.backends.base import PermanentBackendError
from reconciler.backends.local.launch import RunPaths, build_launch, run_uuid
from reconciler.backends.local.outputs import parse_outputs
from reconciler.backends.local.templates import TemplateError, render
from reconciler.model import Cause, OpKey, RunRequest

PATHS = RunPaths(run_dir=Path("/state/r1"), outputs_file=Path("/state/r1/outputs.jsonl"))


def request(container: dict[str, Any] | None = None, kind: str = "job", **extra: Any) -> RunRequest:
    run: dict[str, Any] = {"kind": kind}
    if container is not None:
        run["container"] = container
    params = extra.pop("request_params", {})
    return RunRequest(
        name="r1",
        op=OpKey("repo", "train.yaml", "train"),
        kind=kind,
        spec_hash="h",
        effective={"run": run, **extra},
        cause=Cause.COMMIT,
        cause_id="c",
        commit="c",
        params=params,
    )


def test_command_and_args_concatenate_like_kubernetes() -> None:
    spec = build_launch(request({"command": ["python", "-c"], "args": ["print(1)"]}), PATHS)
    assert spec.argv == ("python", "-c", "print(1)")


def test_cmd_shortcut_shape_runs_as_written() -> None:
    spec = build_launch(request({"command": ["/bin/sh", "-c"], "args": ["set -e\necho hi"]}), PATHS)
    assert spec.argv == ("/bin/sh", "-c", "set -e\necho hi")


def test_string_command_is_a_shell_line_with_quoted_args() -> None:
    spec = build_launch(request({"command": "python train.py", "args": ["--name", "a b"]}), PATHS)
    assert spec.argv == ("/bin/sh", "-c", "python train.py --name 'a b'")


def test_args_alone_are_the_argv() -> None:
    assert build_launch(request({"args": ["echo", "x"]}), PATHS).argv == ("echo", "x")


def test_no_command_is_a_permanent_failure() -> None:
    with pytest.raises(PermanentBackendError) as error:
        build_launch(request({"image": "busybox"}), PATHS)
    assert error.value.status == "failed"


@pytest.mark.parametrize("kind", ["tfjob", "pytorchjob", "mpijob", "raycluster", "daskcluster", "sparkjob", "rayjob"])
def test_operator_kinds_are_unschedulable_pointing_to_kubernetes(kind: str) -> None:
    with pytest.raises(PermanentBackendError) as error:
        build_launch(request(kind=kind), PATHS)
    assert error.value.status == "unschedulable"
    assert "kubernetes backend" in str(error.value)


def test_dags_are_not_for_backends() -> None:
    with pytest.raises(PermanentBackendError) as error:
        build_launch(request(kind="dag"), PATHS)
    assert error.value.status == "unschedulable"
    assert "orchestrated by the reconciler" in str(error.value)


def test_params_and_globals_are_substituted_with_request_params_winning() -> None:
    run = request(
        {
            "image": "python:3.11",
            "command": ["train"],
            "args": [
                "--lr={{ lr }}",
                "{{ params.epochs.as_arg }}",
                "{{ params.lr }}",
                "{{ params.flag.as_arg }}",
                "{{ globals.uuid }}",
                "{{ globals.run_outputs_path }}",
            ],
            "env": [{"name": "RUN", "value": "{{ globals.name }}"}, {"name": "N", "value": 3}],
        },
        inputs=[
            {"name": "lr", "type": "float"},
            {"name": "epochs", "type": "int", "value": 3, "isOptional": True},
            {"name": "flag", "type": "bool", "value": True, "isOptional": True},
        ],
        params={"lr": {"value": 0.1}},
        request_params={"lr": 0.5},
    )
    spec = build_launch(run, PATHS)
    assert spec.argv == (
        "train",
        "--lr=0.5",
        "--epochs=3",
        "0.5",
        "--flag",
        run_uuid("r1"),
        "/state/r1/artifacts/outputs",
    )
    assert spec.env["RUN"] == "r1" and spec.env["N"] == "3"
    assert spec.env["POLYAXON_RUN_OUTPUTS_PATH"] == "/state/r1/outputs.jsonl"
    assert spec.image == "python:3.11"
    assert "image python:3.11 not pulled; running the command on this machine" in spec.note()


def test_param_values_may_use_globals() -> None:
    run = request({"command": ["echo", "{{ out }}"]}, params={"out": {"value": "{{ globals.artifacts_path }}/m"}})
    assert build_launch(run, PATHS).argv == ("echo", "/state/r1/artifacts/m")


def test_unknown_template_variable_fails_permanently() -> None:
    with pytest.raises(PermanentBackendError, match="unknown template variable 'nope'"):
        build_launch(request({"command": ["echo", "{{ nope }}"]}), PATHS)


def test_unsupported_expression_is_reported() -> None:
    with pytest.raises(TemplateError, match="unsupported"):
        render("{{ a + 1 }}", {"a": 1})
    assert render("{{ connections['s3'].url }}", {"connections": {"s3": {"url": "u"}}}) == "u"


def test_value_from_is_skipped_with_a_warning_and_missing_workdir_falls_back() -> None:
    run = request(
        {
            "command": ["true"],
            "env": [{"name": "S", "valueFrom": {"secretKeyRef": {"name": "x", "key": "y"}}}],
            "workingDir": "/code",
        }
    )
    spec = build_launch(run, PATHS, is_dir=lambda p: False)
    assert "S" not in spec.env
    assert spec.cwd == "/state/r1/home"
    assert any("valueFrom" in w and "S" in w for w in spec.warnings)
    assert any("/code does not exist" in w for w in spec.warnings)
    assert build_launch(run, PATHS, is_dir=lambda p: p == "/code").cwd == "/code"


def test_termination_is_read() -> None:
    spec = build_launch(request({"command": ["true"]}, termination={"maxRetries": 2, "timeout": 30}), PATHS)
    assert (spec.max_retries, spec.timeout) == (2, 30.0)
    with pytest.raises(PermanentBackendError):
        build_launch(request({"command": ["true"]}, termination={"timeout": -1}), PATHS)


def test_service_is_long_running() -> None:
    assert build_launch(request({"command": ["serve"]}, kind="service"), PATHS).long_running


def test_outputs_as_object_or_json_lines_later_wins_and_partial_line_ignored() -> None:
    assert parse_outputs('{"loss": 0.1, "acc": 0.9}') == {"loss": 0.1, "acc": 0.9}
    text = '{"name": "loss", "value": 0.5}\n{"name": "loss", "value": 0.2}\n{"acc": 0.7}\n{"name": "lo'
    assert parse_outputs(text) == {"loss": 0.2, "acc": 0.7}
    assert parse_outputs("") == {}


def test_the_environment_is_built_never_the_daemons(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_daemon_secret")
    declared = [{"name": "EPOCHS", "value": 3}, {"name": "TZ", "value": "Europe/Paris"}]
    run = request({"command": ["env"], "env": declared})
    env = build_launch(run, PATHS).env
    assert sorted(env) == [
        "EPOCHS",
        "HOME",
        "LANG",
        "PATH",
        "POLYAXON_RUN_ARTIFACTS_PATH",
        "POLYAXON_RUN_NAME",
        "POLYAXON_RUN_OUTPUTS_PATH",
        "POLYAXON_RUN_UUID",
        "TZ",
    ]
    assert env["HOME"] == "/state/r1/home" and env["LANG"] == "C.UTF-8"
    assert env["PATH"].split(":")[-1] == "/bin" and env["TZ"] == "Europe/Paris"  # the op's env wins
