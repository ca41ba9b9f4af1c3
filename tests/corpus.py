"""Where the conformance corpus lives (../shared/corpus beside the clone) and how to read it."""

from __future__ import annotations

import json
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = Path(os.environ.get("POLYAXON_CORPUS", ROOT.parent / "shared" / "corpus")).resolve()
HUB = CORPUS / "files" / "polyaxon+polyaxon-hub"


def rows() -> list[dict[str, object]]:
    manifest = CORPUS / "manifest.jsonl"
    if not manifest.exists():
        return []
    return [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]


def url_maps() -> list[tuple[str, str]]:
    """One mirror per public repository, as the corpus README describes."""
    maps = []
    for folder in sorted((CORPUS / "files").glob("polyaxon+*")):
        repo = folder.name.split("+", 1)[1]
        maps.append((f"https://raw.githubusercontent.com/polyaxon/{repo}/master/", f"{folder}/"))
    return maps
