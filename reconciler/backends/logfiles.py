"""Reading a run's log file without holding it in memory: a tail read backwards from its end, the
whole file in blocks, a slice from an offset (following it). Both backends keep logs in files."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

LOG_CHUNK = 64 * 1024
# A tail never reads more than this from the end of a log, whatever the number of lines asked:
# a log of one endless line (or a 1 GB log) costs this much memory at most.
TAIL_MAX_BYTES = 4 * 1024 * 1024


def read_tail(path: Path, lines: int, max_bytes: int = TAIL_MAX_BYTES) -> str:
    """The last `lines` lines of the file at `path`, read backwards from its end in blocks.

    At most `max_bytes` are read (a longer tail starts mid-line); a missing file is empty.
    """
    if lines <= 0:
        return ""
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return ""
    with handle:
        end = handle.seek(0, os.SEEK_END)
        start, blocks, newlines = end, [], 0
        while start > 0 and end - start < max_bytes:
            size = min(LOG_CHUNK, start, max_bytes - (end - start))
            start -= size
            handle.seek(start)
            block = handle.read(size)
            blocks.append(block)
            # A final newline ends the last line rather than starting an empty one.
            newlines += block.count(b"\n") - (1 if start + size == end and block.endswith(b"\n") else 0)
            if newlines >= lines:
                break
    data = b"".join(reversed(blocks))
    kept = data.split(b"\n")
    trailing = data.endswith(b"\n")
    if trailing:
        kept = kept[:-1]
    text = b"\n".join(kept[-lines:]) + (b"\n" if trailing and kept else b"")
    return text.decode("utf-8", errors="replace")


def read_slice(path: Path, offset: int, limit: int) -> tuple[bytes, int]:
    """Up to `limit` bytes of the file from `offset`, and the file's size (0 and b"" if missing)."""
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return b"", 0
    with handle:
        size = os.fstat(handle.fileno()).st_size
        if offset >= size or limit <= 0:
            return b"", size
        handle.seek(max(0, offset))
        return handle.read(limit), size


def read_chunks(path: Path, size: int = LOG_CHUNK) -> Iterator[bytes]:
    """The file at `path` in blocks of `size` bytes, read as they are asked for."""
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return
    with handle:
        while block := handle.read(size):
            yield block


__all__ = ["LOG_CHUNK", "TAIL_MAX_BYTES", "read_chunks", "read_slice", "read_tail"]
