"""Our verdict equals Polyaxon 2.18's on every corpus file, and every invalid one is located."""

from __future__ import annotations

import os

import pytest

from reconciler.spec import validate_paths
from tests import corpus

ROWS = corpus.rows()

if not ROWS:
    if os.environ.get("CI"):
        raise RuntimeError(f"conformance corpus not found at {corpus.CORPUS}")
    pytest.skip(f"conformance corpus not found at {corpus.CORPUS}", allow_module_level=True)


@pytest.fixture(scope="module")
def results() -> dict[str, object]:
    paths = [str(corpus.CORPUS / str(row["file"])) for row in ROWS]
    found = validate_paths(paths, hub_dir=str(corpus.HUB), url_maps=corpus.url_maps())
    return {r.path: r for r in found}


def test_corpus_has_all_files() -> None:
    assert len(ROWS) == 208


@pytest.mark.parametrize("row", ROWS, ids=[str(r["file"]).removeprefix("files/") for r in ROWS])
def test_verdict_matches_polyaxon(row: dict[str, object], results: dict[str, object]) -> None:
    result = results[str(corpus.CORPUS / str(row["file"]))]
    assert result.valid == row["valid"], (row["oracle_error"], [str(e) for e in result.errors])  # type: ignore[attr-defined]
    if not row["valid"]:
        assert result.errors and all(e.line is not None for e in result.errors)  # type: ignore[attr-defined]
