"""What Polyaxon 2.18's own models declare: run with the oracle venv (`make oracle`), never ours.

    .oracle-venv/bin/python tests/oracle/fields.py

Prints one JSON object: every numeric field of the polyaxonfile models (`Model.field`), the
top-level sections of a file with a kind, the aliases of the polyaxonfile's own fields, and the
models that do not populate by field name. tests/oracle/test_rule_tables.py holds the rule tables
of tests/unit/spec/rules.py to it, so a field Polyaxon adds is a failing test, not a silent gap.
"""

from __future__ import annotations

import datetime
import json
import os
import typing
import warnings

warnings.filterwarnings("ignore")
os.environ.setdefault("POLYAXON_NO_OP", "true")

NUMERIC = (int, float, datetime.timedelta)


def _leaves(annotation: typing.Any) -> list[typing.Any]:
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is typing.Annotated:
        return _leaves(args[0])
    if not args:
        return [annotation]
    out: list[typing.Any] = []
    for arg in args:
        out += _leaves(arg)
    return out


def main() -> None:
    from polyaxon._flow.polyaxonfile import V1Polyaxonfile
    from polyaxon._polyaxonfile.specs.sections import Sections
    from pydantic import BaseModel

    seen: set[type] = set()
    numeric: list[str] = []
    by_alias_only: list[str] = []

    def walk(model: type) -> None:
        if model in seen or not model.__module__.startswith("polyaxon"):
            return  # Kubernetes objects are checked elsewhere (top-level keys only)
        seen.add(model)
        if not model.model_config.get("populate_by_name"):
            by_alias_only.append(model.__name__)
        for name, info in model.model_fields.items():
            leaves = _leaves(info.annotation)
            if any(leaf in NUMERIC for leaf in leaves):
                numeric.append(f"{model.__name__}.{name}")
            for leaf in leaves:
                if isinstance(leaf, type) and issubclass(leaf, BaseModel):
                    walk(leaf)

    walk(V1Polyaxonfile)
    aliases = {name: info.alias for name, info in V1Polyaxonfile.model_fields.items() if info.alias}
    print(
        json.dumps(
            {
                "numeric": sorted(numeric),
                "sections": sorted(Sections.SECTIONS),
                "aliases": aliases,
                "by_alias_only": sorted(by_alias_only),
                "models": len(seen),
            }
        )
    )


if __name__ == "__main__":
    main()
