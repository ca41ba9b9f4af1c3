"""How long the CLI takes as a user meets it: whole processes, wall clock and peak memory.

`reconciler --help`, `reconciler validate one.yaml` next to `polyaxon check -f one.yaml` (the
official package, from `make oracle`'s venv, in the same run), and `reconciler runs list` on an
empty migrated database. Each command runs `ROUNDS` times, alternating with the reference, and the
median is reported, so a busy machine slows both sides alike. The tree is byte-compiled first, as
`pip install` does for an installed package (and did for the official one): a checkout run with
PYTHONDONTWRITEBYTECODE would otherwise compile every module from source on each start. The last
line is JSON.

    make bench BENCH=cli_bench
"""

from __future__ import annotations

import compileall
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RECONCILER = Path(sys.executable).with_name("reconciler")
POLYAXON = ROOT / ".oracle-venv" / "bin" / "polyaxon"
ROUNDS = int(os.environ.get("CLI_BENCH_ROUNDS", "7"))
ONE = """version: 1.1
kind: operation
name: train
params:
  lr: {value: 0.01}
component:
  inputs: [{name: lr, type: float}]
  run:
    kind: job
    container:
      image: python:3.11
      command: [python, train.py, "--lr={{ lr }}"]
      resources: {limits: {cpu: "1", memory: 2Gi}}
"""


def timed(argv: list[str]) -> tuple[float, float]:
    """(seconds, peak MiB) of one run of `argv` as a child process (its own rusage, via wait4)."""
    start = time.perf_counter()
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, _, usage = os.wait4(child.pid, 0)
    took = time.perf_counter() - start
    child.returncode = 0  # reaped above
    return took, usage.ru_maxrss / 1024


def median_of(argv: list[str], rounds: int) -> tuple[float, float]:
    samples = [timed(argv) for _ in range(rounds)]
    return statistics.median(s for s, _ in samples), max(m for _, m in samples)


def main() -> None:
    compileall.compile_dir(ROOT / "reconciler", quiet=1)
    figures: dict[str, float | None] = {}
    with tempfile.TemporaryDirectory() as tmp:
        one = Path(tmp) / "one.yaml"
        one.write_text(ONE)
        db = f"sqlite:///{Path(tmp) / 'db.sqlite'}"
        subprocess.run([str(RECONCILER), "db", "upgrade", "--db", db], check=True, capture_output=True)
        config = Path(tmp) / "cfg.yaml"
        config.write_text(f"database: {db}\n")
        ours: list[float] = []
        theirs: list[float] = []
        peak = 0.0
        for _ in range(ROUNDS):  # alternate, so load on the machine hits both sides
            took, mem = timed([str(RECONCILER), "validate", str(one)])
            ours.append(took)
            peak = max(peak, mem)
            if POLYAXON.exists():
                theirs.append(timed([str(POLYAXON), "check", "-f", str(one)])[0])
        figures["validate_s"] = statistics.median(ours)
        figures["validate_peak_mib"] = peak
        figures["polyaxon_check_s"] = statistics.median(theirs) if theirs else None
        figures["validate_ratio"] = figures["validate_s"] / figures["polyaxon_check_s"] if theirs else None
        figures["help_s"], _ = median_of([str(RECONCILER), "--help"], ROUNDS)
        figures["runs_list_s"], _ = median_of([str(RECONCILER), "runs", "list", "--config", str(config)], ROUNDS)
    print(f"reconciler --help           {figures['help_s']:.3f} s")
    print(f"reconciler runs list        {figures['runs_list_s']:.3f} s (empty SQLite database)")
    print(f"reconciler validate one     {figures['validate_s']:.3f} s, peak {figures['validate_peak_mib']:.0f} MiB")
    if figures["polyaxon_check_s"] is not None:
        print(
            f"polyaxon check -f one       {figures['polyaxon_check_s']:.3f} s -> ratio {figures['validate_ratio']:.2f}"
        )
    else:
        print("polyaxon check: no .oracle-venv (make oracle) - no reference in this run")
    print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in figures.items()}))


if __name__ == "__main__":
    main()
