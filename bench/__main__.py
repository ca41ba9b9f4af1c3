"""Run every benchmark module in this package (each has a `main()`), one after the other.

The side-by-side benchmarks (`STANDALONE = True`: Flux, the CronJob controller) take many minutes
and need their own builds; they run only when named (`python -m bench flux_bench`) or through
their make targets."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def main() -> None:
    only = set(sys.argv[1:])
    for info in sorted(pkgutil.iter_modules([str(Path(__file__).parent)]), key=lambda m: m.name):
        if info.name.startswith("_") or (only and info.name not in only):
            continue
        module = importlib.import_module(f"bench.{info.name}")
        if getattr(module, "STANDALONE", False) and info.name not in only:
            continue
        if hasattr(module, "main"):
            print(f"== {info.name}", flush=True)
            module.main()


if __name__ == "__main__":
    main()
