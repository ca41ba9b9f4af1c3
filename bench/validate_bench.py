"""Validate the conformance corpus with ours and with Polyaxon's parser, in one run.

Both sides validate the same 208 files, each in its own warm process, and we report the time per
file and the ratio (oracle / ours): the figure that matters is the ratio, since this machine is
shared and noisy. Target: ours at least 5x faster per file.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from reconciler.spec import validate_paths
from tests import corpus

ROOT = Path(__file__).resolve().parent.parent
ORACLE = ROOT / ".oracle-venv" / "bin" / "python"

_ORACLE_TIMER = """
import json, os, sys, time, runpy
sys.argv = ["verdict.py", "--hub-dir", HUB] + [a for m in MAPS for a in ("--url-map", m)]
ns = runpy.run_path(VERDICT, run_name="not_main")
import io, contextlib
times = []
for _ in range(ROUNDS):
    sys.argv = ["verdict.py", "--hub-dir", HUB] + [a for m in MAPS for a in ("--url-map", m)] + FILES
    buf = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(buf):
        ns["main"]()
    times.append(time.perf_counter() - start)
print(json.dumps(times))
"""


def _ours(files: list[str], rounds: int) -> list[float]:
    times = []
    validate_paths(files[:5], hub_dir=str(corpus.HUB), url_maps=corpus.url_maps())  # warm imports
    for _ in range(rounds):
        start = time.perf_counter()
        validate_paths(files, hub_dir=str(corpus.HUB), url_maps=corpus.url_maps())
        times.append(time.perf_counter() - start)
    return times


def _oracle(files: list[str], rounds: int) -> list[float] | None:
    if not ORACLE.exists():
        return None
    code = (
        f"HUB={str(corpus.HUB)!r}\nMAPS={[f'{p}={d}' for p, d in corpus.url_maps()]!r}\nFILES={files!r}\n"
        f"ROUNDS={rounds}\nVERDICT={str(ROOT / 'tests' / 'oracle' / 'verdict.py')!r}\n" + _ORACLE_TIMER
    )
    out = subprocess.run([str(ORACLE), "-c", code], capture_output=True, text=True, check=True, timeout=600)
    times: list[float] = json.loads(out.stdout.strip().splitlines()[-1])
    return times


def main(rounds: int = 5) -> None:
    files = [str(corpus.CORPUS / str(r["file"])) for r in corpus.rows()]
    if not files:
        print("validate: corpus not found; skipped")
        return
    ours = statistics.median(_ours(files, rounds))
    theirs_times = _oracle(files, rounds)
    per_file = ours / len(files) * 1000
    print(f"validate: ours   {per_file:.2f} ms/file ({len(files)} files, median of {rounds})")
    figures: dict[str, float | int | None] = {"files": len(files), "ours_ms_per_file": round(per_file, 3)}
    if theirs_times is None:
        print("validate: oracle not installed (make oracle); no ratio")
        print(json.dumps({**figures, "oracle_ms_per_file": None, "speedup": None}))
        return
    theirs = statistics.median(theirs_times)
    print(f"validate: oracle {theirs / len(files) * 1000:.2f} ms/file")
    print(f"validate: ours is {theirs / ours:.1f}x faster per file (target >= 5x)")
    figures.update(oracle_ms_per_file=round(theirs / len(files) * 1000, 3), speedup=round(theirs / ours, 2))
    print(json.dumps(figures))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
