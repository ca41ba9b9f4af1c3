"""Golden files: each run kind's polyaxonfile in cases/ renders to exactly golden/<kind>.yaml.

The golden files were read by eye once; any change to them shows up in review as a diff.
Regenerate after an intended change with `UPDATE_GOLDEN=1 pytest tests/unit/render`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from reconciler.model import Cause, OpKey, RunRequest, run_name, spec_hash
from reconciler.render import RenderOptions, render, to_yaml
from reconciler.render.service import service_name
from reconciler.spec import Resolver, validate_file

HERE = Path(__file__).parent
CASES = HERE / "cases"
GOLDEN = HERE / "golden"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
KINDS = sorted(p.stem for p in CASES.glob("*.yaml"))


def run_for(case: Path, namespace: str = "ml") -> RunRequest:
    result = validate_file(str(case), case.read_bytes(), Resolver())
    assert result.checked is not None, result.errors
    effective = result.checked.effective
    key = OpKey("golden-repo", f"cases/{case.name}", result.op_name)
    digest = spec_hash(effective)
    return RunRequest(
        name=run_name(key, digest, COMMIT),
        op=key,
        kind=effective["run"]["kind"],
        spec_hash=digest,
        effective=effective,
        cause=Cause.COMMIT,
        cause_id=COMMIT,
        commit=COMMIT,
        namespace=namespace,
    )


OPTIONS = RenderOptions(connection_secrets={"s3-data": "s3-data-credentials"})


def test_every_run_kind_has_a_case() -> None:
    from reconciler.render import NOT_RENDERED, RENDERERS

    assert set(KINDS) == set(RENDERERS)
    assert set(NOT_RENDERED) == {"dag"}


@pytest.mark.parametrize("kind", KINDS)
def test_golden(kind: str) -> None:
    text = to_yaml(render(run_for(CASES / f"{kind}.yaml"), OPTIONS))
    golden = GOLDEN / f"{kind}.yaml"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.write_text(text)
    assert golden.exists(), f"no golden file for {kind}; run with UPDATE_GOLDEN=1 and review it"
    assert text == golden.read_text()


@pytest.mark.parametrize("kind", KINDS)
def test_every_object_carries_ownership(kind: str) -> None:
    run = run_for(CASES / f"{kind}.yaml")
    for manifest in render(run, OPTIONS):
        meta = manifest["metadata"]
        # A Service is named after its op (stable across the op's runs); everything else after the run.
        expected = service_name(run) if manifest["kind"] == "Service" else run.name
        assert meta["name"] == expected and meta["namespace"] == "ml"
        assert run.labels().items() <= meta["labels"].items()
        assert run.annotations().items() <= meta["annotations"].items()
        # The golden text round-trips: what `reconciler render` prints is what is applied.
        assert yaml.safe_load(to_yaml([manifest])) == manifest
