"""The digest of the Kubernetes client's models that `reconciler validate` reads instead of the
client: it must say what the installed client says, and catch what the client's models catch."""

from __future__ import annotations

import json
from typing import Any

import pytest

from reconciler.spec import k8s
from scripts.gen_k8s_schema import digest


def test_the_digest_matches_the_installed_kubernetes_client() -> None:
    committed = json.loads(k8s.SCHEMA_FILE.read_text())
    assert committed == json.loads(json.dumps(digest())), (
        "reconciler/spec/k8s_schema.json is out of date: run `.venv/bin/python scripts/gen_k8s_schema.py`"
    )


CASES: list[tuple[str, dict[str, Any], str | None]] = [
    ("V1Container", {"name": "main", "image": "busybox"}, None),
    ("V1Container", {"name": "main", "ports": [{"containerPort": "80"}]}, "Input should be a valid integer"),
    ("V1Container", {"name": "main", "ports": [{"protocol": "TCP"}]}, "Field required"),
    ("V1Container", {"name": "main", "env": [{"name": "A", "valu": "1"}]}, "Extra inputs are not permitted"),
    ("V1Container", {"name": "main", "stdin": "yes"}, "Input should be a valid boolean"),
    ("V1Volume", {"name": "v", "configMap": {"name": "c", "itemz": []}}, "Extra inputs are not permitted"),
    ("V1Volume", {"name": "v", "config_map": {"name": "c", "default_mode": 420}}, None),
    ("V1Affinity", {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": "x"}}, "valid list"),
]


@pytest.mark.parametrize(("model", "value", "error"), CASES)
def test_the_digest_flags_what_the_clients_models_flag(model: str, value: dict[str, Any], error: str | None) -> None:
    import kubernetes.client
    from pydantic import ValidationError

    ours = k8s._first_error(model, value)
    try:
        getattr(kubernetes.client, model).model_validate(value)
        theirs = None
    except ValidationError as e:
        theirs = e.errors()[0]["msg"]
    assert (ours is None) == (theirs is None), (ours, theirs)
    if error is not None:
        assert ours is not None and error in ours[1]
