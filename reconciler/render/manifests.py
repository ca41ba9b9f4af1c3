"""Manifests as multi-document YAML, the way `helm template` and `kubectl` print them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml


class _Dumper(yaml.SafeDumper):
    """Block style for multi-line strings, so scripts read as scripts."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _str)


def to_yaml(manifests: Iterable[dict[str, Any]], header: str | None = None) -> str:
    parts = []
    for manifest in manifests:
        text = yaml.dump(manifest, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=120)
        parts.append(f"---\n{f'# {header}' + chr(10) if header else ''}{text}")
    return "".join(parts)
