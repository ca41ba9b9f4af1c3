"""Where the control-plane binaries are, and whether they can be trusted.

build.sh owns the cache layout (directory keyed by Kubernetes version, completed-marker); this
module asks it instead of knowing the layout twice.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

BUILD_SCRIPT = Path(__file__).with_name("build.sh")
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "kwok")


@dataclass(frozen=True)
class Located:
    bin_dir: Path | None
    reason: str  # why bin_dir is None; empty when the binaries are usable


def locate() -> Located:
    """Find a completely built set of binaries without building anything."""
    result = subprocess.run(
        ["bash", str(BUILD_SCRIPT), "--check"], capture_output=True, text=True, timeout=60, check=False
    )
    if result.returncode != 0:
        reason = (result.stderr.strip() or result.stdout.strip()).splitlines()
        return Located(None, reason[-1] if reason else f"build.sh --check exited {result.returncode}")
    bin_dir = Path(result.stdout.strip().splitlines()[-1])
    missing = [name for name in BINARIES if not (bin_dir / name).is_file()]
    if missing:
        return Located(None, f"{bin_dir} lacks {', '.join(missing)}")
    return Located(bin_dir, "")
