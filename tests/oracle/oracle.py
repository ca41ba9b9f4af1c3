"""A long-lived Polyaxon oracle process (tests/oracle/verdict.py --serve) for differential tests."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PYTHON = ROOT / ".oracle-venv" / "bin" / "python"


def available() -> bool:
    return PYTHON.exists()


class Oracle:
    def __init__(self, *extra: str) -> None:
        self._proc = subprocess.Popen(
            [str(PYTHON), str(ROOT / "tests" / "oracle" / "verdict.py"), "--serve", "--compiled", *extra],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            bufsize=1,
        )

    def verdict(self, path: str) -> dict[str, Any]:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(path + "\n")
        self._proc.stdin.flush()
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError("the oracle process exited")
        row: dict[str, Any] = json.loads(line)
        return row

    def close(self) -> None:
        if self._proc.stdin:
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
