"""Write reconciler/spec/k8s_schema.json from the installed Kubernetes client's models.

The spec checks Kubernetes objects in polyaxonfiles (containers, volumes, affinity, ...) against
the client's own models. Importing the client costs more than half a second (it loads ~900 models
and every API class), so `reconciler validate` reads this generated digest instead: per model, its
fields (JSON key, Python name, type, required). Run it again when the `kubernetes` pin changes; a
unit test fails when the file and the installed client disagree.

    .venv/bin/python scripts/gen_k8s_schema.py
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import kubernetes.client as k8s

ROOTS = (
    "V1Container",
    "V1Volume",
    "V1Affinity",
    "V1Toleration",
    "V1HostAlias",
    "V1SecurityContext",
    "V1PodDNSConfig",
    "V1ResourceRequirements",
    "V1PodFailurePolicy",
    "V1ExecAction",
    "V1HTTPGetAction",
)
TARGET = Path(__file__).resolve().parent.parent / "reconciler" / "spec" / "k8s_schema.json"


def digest() -> dict[str, Any]:
    models: dict[str, Any] = {}
    stack = list(ROOTS)
    while stack:
        name = stack.pop()
        if name in models:
            continue
        cls = getattr(k8s, name)
        fields = []
        for attr, kind in cls.openapi_types.items():
            # Python keywords are mangled: `_exec` in the type map is the field `var_exec`.
            info = cls.model_fields.get(attr) or cls.model_fields["var" + attr]
            fields.append([cls.attribute_map[attr], attr.lstrip("_"), kind, info.is_required()])
            stack += [ref for ref in re.findall(r"\b[A-Z]\w*V\d\w*|\bV\d\w+", kind) if hasattr(k8s, ref)]
        models[name] = fields
    version = getattr(k8s, "__version__", None) or __import__("kubernetes").__version__
    return {"kubernetes": version, "roots": list(ROOTS), "models": dict(sorted(models.items()))}


def main() -> int:
    text = json.dumps(digest(), indent=0, sort_keys=False, separators=(",", ":")) + "\n"
    TARGET.write_text(text)
    print(f"wrote {TARGET} ({len(text)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
