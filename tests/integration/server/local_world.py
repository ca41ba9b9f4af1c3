"""The examples repository (examples-repo/, what `make run` serves) reconciled by the production
daemon on the real local backend, plus one test op that prints a line, waits for a file, then
prints another: what a user sees after `make run`, and a log to follow while it grows."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.infra.daemon import DaemonHarness
from tests.infra.wait import wait_until

EXAMPLES = Path(__file__).resolve().parents[3] / "examples-repo"
CHATTY = r"""
import os, sys, time
print("tick 1: waiting for the test", flush=True)
while not os.path.exists(sys.argv[1]):
    time.sleep(0.05)
print("tick 2: released", flush=True)
"""


@dataclass
class LocalWorld:
    h: DaemonHarness
    url: str
    release: Path

    def runs(self, **query: str) -> list[dict[str, Any]]:
        return list(httpx.get(f"{self.url}/api/runs", params={"limit": "1000", **query}, timeout=20).json())

    def run_of(self, op: str) -> dict[str, Any] | None:
        found = [r for r in self.runs() if r["op"].endswith(f"#{op}")]
        return found[0] if found else None


def example_files(release: Path) -> dict[str, str]:
    files = {
        str(p.relative_to(EXAMPLES)): p.read_text()
        for p in sorted(EXAMPLES.rglob("*"))
        if p.is_file() and "services" not in p.parts  # the example service listens on a fixed port
    }
    files["ops/chatty.yaml"] = json.dumps(
        {
            "version": 1.1,
            "kind": "operation",
            "name": "chatty",
            "description": "Prints, waits for the test, prints again.",
            "component": {
                "run": {
                    "kind": "job",
                    "container": {"image": "python", "command": ["python3", "-c", CHATTY, str(release)]},
                }
            },
        }
    )
    return files


def start(h: DaemonHarness, base: Path) -> LocalWorld:
    release = base / "release"
    url = h.start(workers=2)
    h.set_tree(example_files(release))
    h.daemon.trigger("r")
    world = LocalWorld(h, url, release)

    def settled() -> bool:
        sweep, pipeline, chatty = world.run_of("sweep"), world.run_of("pipeline"), world.run_of("chatty")
        return bool(
            sweep and pipeline and chatty and sweep["status"] in ("succeeded", "failed", "stopped")
            and pipeline["status"] in ("succeeded", "failed") and chatty["status"] == "running"
        )  # fmt: skip

    wait_until(settled, timeout=120, interval=0.2, what="the examples' sweep and pipeline to finish")
    return world


__all__ = ["LocalWorld", "start"]
