"""Polyaxon's own verdict on polyaxonfiles: run with the oracle venv (`make oracle`), never ours.

    .oracle-venv/bin/python tests/oracle/verdict.py [--hub-dir DIR] [--url-map PREFIX=DIR] FILE...

Prints one JSON object per file: {"path", "valid", "stage", "error", "compiled"}. References are
resolved offline the way the corpus README describes: hubRef from DIR/<name>/<tag>.yaml and urlRef
through the explicit mirror maps; nothing is fetched from the network.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings

warnings.filterwarnings("ignore")
os.environ.setdefault("POLYAXON_NO_OP", "true")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hub-dir")
    ap.add_argument("--url-map", action="append", default=[])
    ap.add_argument("--compiled", action="store_true", help="also print the compiled operation")
    ap.add_argument("files", nargs="*")
    args = ap.parse_args()

    from polyaxon._config import spec as config_spec
    from polyaxon._polyaxonfile.manager import get_op_specification
    from polyaxon._polyaxonfile.references import collect_references
    from polyaxon._polyaxonfile.specs import get_specification
    from polyaxon._polyaxonfile.specs.operation import OperationSpecification

    url_maps = [m.split("=", 1) for m in args.url_map]
    original_get_from = config_spec.ConfigSpec.get_from.__func__

    def get_from(cls, value, config_type=None):  # type: ignore[no-untyped-def]
        if config_type == "hub":
            name = value.split("/")[-1]
            name, _, tag = name.partition(":")
            path = os.path.join(args.hub_dir or "", name, (tag or "latest") + ".yaml")
            if not args.hub_dir or not os.path.isfile(path):
                raise ValueError(f"no local stub for hub ref {value!r}")
            return original_get_from(cls, path)
        if config_type == "url":
            for prefix, folder in url_maps:
                if value.startswith(prefix):
                    path = os.path.join(folder, value[len(prefix):])
                    if not os.path.isfile(path):
                        raise ValueError(f"no local copy for url ref {value!r}")
                    return original_get_from(cls, path)
            raise ValueError(f"url ref {value!r} is not mirrored")
        return original_get_from(cls, value, config_type)

    config_spec.ConfigSpec.get_from = classmethod(get_from)  # type: ignore[method-assign]

    for path in args.files:
        row: dict[str, object] = {"path": path, "valid": True, "stage": None, "error": None}
        stage = "parse"
        try:
            data = config_spec.ConfigSpec.read_from(path)
            plx = get_specification(data=data)
            stage = "resolve"
            plx = collect_references(plx, path)
            stage = "check"
            op = get_op_specification(config=plx, validate_params=True)
            if args.compiled:
                stage = "compile"
                compiled = OperationSpecification.compile_operation(op)
                row["compiled"] = json.loads(compiled.to_json())
        except BaseException as e:  # noqa: BLE001 - the oracle raises anything
            if isinstance(e, KeyboardInterrupt):
                raise
            row.update(valid=False, stage=stage, error=f"{type(e).__name__}: {e}"[:500])
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    sys.exit(main())
