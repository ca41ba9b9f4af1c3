"""Log tails are read from the end of the file, in blocks, never the whole file."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.backends.local.store import read_chunks, read_tail


@pytest.mark.parametrize("trailing", [True, False])
@pytest.mark.parametrize("count", [0, 1, 2, 5, 100])
def test_the_last_lines_like_splitlines_would_give(tmp_path: Path, trailing: bool, count: int) -> None:
    lines = [f"line {i} " + "x" * (i * 977 % 150_000) for i in range(40)]
    text = "\n".join(lines) + ("\n" if trailing else "")
    path = tmp_path / "log"
    path.write_text(text)
    expected = "".join(text.splitlines(keepends=True)[-count:]) if count else ""
    assert read_tail(path, count) == expected


def test_an_empty_or_missing_log(tmp_path: Path) -> None:
    assert read_tail(tmp_path / "absent", 10) == ""
    (tmp_path / "empty").write_bytes(b"")
    assert read_tail(tmp_path / "empty", 10) == ""
    (tmp_path / "nl").write_bytes(b"\n\n")
    assert read_tail(tmp_path / "nl", 1) == "\n"


def test_a_tail_of_a_huge_log_reads_only_the_end(tmp_path: Path) -> None:
    path = tmp_path / "huge"
    with path.open("wb") as handle:
        handle.truncate(1 << 30)  # 1 GiB, sparse: reading it all would take seconds and a GiB
        handle.seek(0, 2)
        handle.write(b"\nsecond to last\nlast\n")
    assert read_tail(path, 2) == "second to last\nlast\n"
    # One endless line: the tail is cut at max_bytes, whatever the number of lines asked.
    assert len(read_tail(path, 1_000, max_bytes=1 << 20)) <= 1 << 20


def test_chunks_cover_the_file(tmp_path: Path) -> None:
    path = tmp_path / "log"
    data = bytes(range(256)) * 1000
    path.write_bytes(data)
    blocks = list(read_chunks(path, size=4096))
    assert b"".join(blocks) == data and max(len(b) for b in blocks) == 4096
    assert list(read_chunks(tmp_path / "absent")) == []
