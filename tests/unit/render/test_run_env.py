"""What the backend adds to every main container (a run's report token and the daemon's URL):
in every replica of every kind, over the spec's own values of those names, and never in what
`reconciler render` shows (rendered without it)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from reconciler.render import render
from tests.unit.render.test_golden import CASES, KINDS, run_for

ENV = {"POLYAXON_RUN_TOKEN": "prt_for-this-run", "POLYAXON_RECONCILER_URL": "http://reconciler.svc"}


def env_lists(node: Any) -> list[list[dict[str, Any]]]:
    """Every `env` list of containers (and of Spark's driver and executor), anywhere."""
    found: list[list[dict[str, Any]]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "env" and isinstance(value, list):
                found.append([e for e in value if isinstance(e, dict)])
            else:
                found += env_lists(value)
    elif isinstance(node, list):
        for item in node:
            found += env_lists(item)
    return found


def tokens(manifests: Any) -> list[str]:
    return [str(e.get("value")) for env in env_lists(manifests) for e in env if e.get("name") == "POLYAXON_RUN_TOKEN"]


@pytest.mark.parametrize("kind", KINDS)
def test_the_main_containers_get_the_run_env_and_render_alone_shows_none(kind: str) -> None:
    run = run_for(CASES / f"{kind}.yaml")
    found = tokens(render(run, run_env=ENV))
    assert found and set(found) == {"prt_for-this-run"}, kind
    assert tokens(render(run)) == []


def test_the_specs_own_value_of_a_name_is_replaced() -> None:
    run = run_for(CASES / "job.yaml")
    spec = dict(run.effective)
    main = dict(spec["run"]["container"])
    main["env"] = [*main.get("env", []), {"name": "POLYAXON_RUN_TOKEN", "value": "someone-elses"}]
    spec["run"] = {**spec["run"], "container": main}
    assert tokens(render(replace(run, effective=spec), run_env=ENV)) == ["prt_for-this-run"]
