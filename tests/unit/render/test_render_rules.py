"""The renderer's rules, one by one: templates, normalisation, errors, and the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from reconciler.cli import app
from reconciler.model import Cause, OpKey, RunRequest
from reconciler.render import RenderError, render, run_uuid
from reconciler.render.objects import container, k8s_object
from reconciler.render.templates import fill

CASES = Path(__file__).parent / "cases"


def request(run: dict[str, Any], **extra: Any) -> RunRequest:
    effective = {"version": 1.1, "run": run, **extra.pop("effective", {})}
    return RunRequest(
        name="op-1234abcd-5678ef90",
        op=OpKey("repo", "ops/op.yaml", "op"),
        kind=run["kind"],
        spec_hash="ab" * 32,
        effective=effective,
        cause=Cause.MANUAL,
        cause_id="x",
        commit="c0ffee",
        **extra,
    )


def test_whole_template_keeps_the_value_type_and_partial_becomes_text() -> None:
    context = {"params": {"n": 3, "flag": True}, "globals": {"ports": [8080]}}
    assert fill("{{ n }}", context) == 3
    assert fill("{{ params.n }}", context) == 3
    assert fill("n={{ n }} flag={{ flag }}", context) == "n=3 flag=true"
    assert fill("{{ globals.ports[0] }}", context) == 8080
    # Unknown names and expressions stay as written, visible in `reconciler render`.
    assert fill("{{ globals.owner_name }}", context) == "{{ globals.owner_name }}"
    assert fill("{{ n | default(1) }}", context) == "{{ n | default(1) }}"


def test_run_params_override_op_params_override_input_defaults() -> None:
    run = request(
        {"kind": "job", "container": {"image": "x", "args": ["{{ a }}", "{{ b }}", "{{ c }}"]}},
        effective={
            "inputs": [{"name": n, "type": "int", "value": 0} for n in "abc"],
            "params": {"b": {"value": 2}, "c": {"value": 2}},
        },
        params={"c": 3},
    )
    args = render(run)[0]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args == ["0", "2", "3"]


def test_uuid_is_derived_from_the_run_name() -> None:
    assert run_uuid("a") == run_uuid("a") != run_uuid("b")
    run = request({"kind": "job", "container": {"image": "x", "args": ["{{ globals.uuid }}"]}})
    assert render(run)[0]["spec"]["template"]["spec"]["containers"][0]["args"] == [run_uuid(run.name)]


def test_container_shorthands() -> None:
    out = container(
        {"image": "x", "command": "run", "env": {"A": 1, "B": False}, "resources": {"limits": {"cpu": 2}}},
        "polyaxon-main",
    )
    assert out["name"] == "polyaxon-main"
    assert out["command"] == ["run"]
    assert out["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "false"}]
    assert out["resources"] == {"limits": {"cpu": "2"}}


def test_snake_case_fields_are_camelised_but_user_keys_are_not() -> None:
    value = {"node_affinity": {"x_y": 1}, "labels": {"my_label": "v"}, "limits": {"nvidia.com/gpu": 1}}
    expected = {"nodeAffinity": {"xY": 1}, "labels": {"my_label": "v"}, "limits": {"nvidia.com/gpu": "1"}}
    assert k8s_object(value) == expected


def test_ownership_labels_win_over_environment_labels() -> None:
    run = request(
        {
            "kind": "job",
            "environment": {"labels": {"app.kubernetes.io/managed-by": "me", "team": "a"}},
            "container": {"image": "x"},
        }
    )
    labels = render(run)[0]["spec"]["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/managed-by"] == "polyaxon-reconciler"
    assert labels["team"] == "a"


def test_a_job_never_restarts_always() -> None:
    run = request({"kind": "job", "environment": {"restartPolicy": "Always"}, "container": {"image": "x"}})
    assert render(run)[0]["spec"]["template"]["spec"]["restartPolicy"] == "Never"


def test_dag_is_not_rendered() -> None:
    with pytest.raises(RenderError, match="orchestrated by the reconciler"):
        render(request({"kind": "dag", "operations": []}))


def test_init_that_needs_the_artifacts_store_is_refused_with_a_reason() -> None:
    run = request({"kind": "job", "init": [{"artifacts": {"dirs": ["a"]}}], "container": {"image": "x"}})
    with pytest.raises(RenderError, match=r"repo:ops/op.yaml#op: init.artifacts needs Polyaxon's artifacts store"):
        render(run)


def test_cli_render_prints_multi_document_yaml(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["render", str(CASES / "service.yaml"), "--namespace", "prod"])
    assert result.exit_code == 0, result.output
    docs = list(yaml.safe_load_all(result.stdout))
    assert [d["kind"] for d in docs] == ["Deployment", "Service"]
    assert {d["metadata"]["namespace"] for d in docs} == {"prod"}


def test_cli_render_selects_an_op_and_reports_unknown_ones(tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(app, ["render", str(CASES), "--op", "train"])
    assert ok.exit_code == 0, ok.output
    assert [d["kind"] for d in yaml.safe_load_all(ok.stdout)] == ["Job"]
    missing = runner.invoke(app, ["render", str(CASES), "--op", "nope"])
    assert missing.exit_code == 2


def test_cli_render_renders_each_operation_of_a_dag(tmp_path: Path) -> None:
    dag = tmp_path / "pipeline.yaml"
    dag.write_text(
        """
version: 1.1
kind: component
run:
  kind: dag
  operations:
  - {name: a, dagRef: step}
  - {name: b, dagRef: step, dependencies: [a]}
  components:
  - name: step
    run: {kind: job, container: {image: busybox}}
"""
    )
    result = CliRunner().invoke(app, ["render", str(dag)])
    assert result.exit_code == 0, result.output
    docs = list(yaml.safe_load_all(result.stdout))
    assert [d["metadata"]["annotations"]["reconciler.polyaxon.io/op-key"].split("#")[1] for d in docs] == [
        "pipeline.a",
        "pipeline.b",
    ]


def test_cli_render_reports_invalid_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1.1\nkind: component\nrun: {kind: job, container: {image: x}, nope: 1}\n")
    result = CliRunner().invoke(app, ["render", str(bad)])
    assert result.exit_code == 1
    assert "bad.yaml:3" in result.output


def test_a_service_is_named_after_its_op_and_selects_the_current_runs_pods() -> None:
    """Its DNS name must not change with a new run of the op (a retry, a spec change after a
    failure): clients are configured with it."""
    import dataclasses
    import re

    spec = {"kind": "service", "ports": [8080], "container": {"image": "nginx"}}
    first = dataclasses.replace(request(spec), cause=Cause.COMMIT, name="op-11111111-22222222")
    retried = dataclasses.replace(first, cause=Cause.RETRY, name="op-33333333-44444444", spec_hash="cd" * 32)
    services = []
    for run in (first, retried):
        deployment, service = render(run)
        selector = {"reconciler.polyaxon.io/run": run.name}
        assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"] == selector
        services.append(service["metadata"]["name"])
    assert services[0] == services[1]
    assert re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", services[0]) and len(services[0]) <= 63
    # Unique per op: another file of the repo with an op of the same name, or a fork, differs.
    other_file = dataclasses.replace(first, op=OpKey("repo", "ops/other.yaml", "op"))
    fork = dataclasses.replace(first, op=OpKey("fork", "ops/op.yaml", "op"))
    assert len({services[0], render(other_file)[1]["metadata"]["name"], render(fork)[1]["metadata"]["name"]}) == 3
    # A preview (or a tick, an event...) never takes the op's Service: it keeps one of its own.
    preview = dataclasses.replace(first, cause=Cause.PREVIEW, name="pr-7-op-11111111-55555555")
    assert render(preview)[1]["metadata"]["name"] == "pr-7-op-11111111-55555555"
    # A Service name must start with a letter (DNS-1035), even for an op named "2fast".
    digits = dataclasses.replace(first, op=OpKey("repo", "ops/2fast.yaml", "2fast"))
    assert render(digits)[1]["metadata"]["name"].startswith("s-2fast-")


def test_finished_jobs_are_deleted_after_the_daemons_ttl_unless_the_spec_says_otherwise() -> None:
    from reconciler.render import RenderOptions

    spec = {"kind": "job", "container": {"image": "busybox"}}
    day = RenderOptions(job_ttl_seconds=86400)
    assert render(request(spec), day)[0]["spec"]["ttlSecondsAfterFinished"] == 86400
    assert "ttlSecondsAfterFinished" not in render(request(spec))[0]["spec"]  # no default: kept
    for own in (60, 0):
        run = request(spec, effective={"termination": {"ttl": own}})
        assert render(run, day)[0]["spec"]["ttlSecondsAfterFinished"] == own
    tf = {"kind": "tfjob", "chief": {"replicas": 1, "container": {"image": "tf"}}}
    assert render(request(tf), day)[0]["spec"]["runPolicy"]["ttlSecondsAfterFinished"] == 86400
