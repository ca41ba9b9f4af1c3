"""Path globs with one meaning everywhere: watch/ignore lists, preview opt-ins, file listings.

Python's `fnmatch` lets `*` cross `/` and `pathlib` only gained `full_match` in 3.13, so the
repo config would mean different things depending on who evaluates it. Here:

- a pattern matches the whole path, relative to the repo root, with `/` separators;
- `*` and `?` never cross `/`; `[abc]`, `[!abc]` are character classes within one segment;
- a segment that is exactly `**` matches zero or more whole segments (`**/*.yaml` matches
  `a.yaml` and `x/y/a.yaml`; `ops/**` matches everything under `ops/`);
- there is no implicit "any depth": `*.yaml` matches top-level files only;
- dot files are not special: `*` matches `.hidden` (ignore them explicitly).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache


def glob_problem(pattern: str) -> str | None:
    """Why `pattern` is not a valid repo-relative glob, or None when it is."""
    if not pattern:
        return "empty glob"
    if pattern.startswith("/"):
        return f"glob {pattern!r} must be relative to the repo root (no leading '/')"
    if "\\" in pattern:
        return f"glob {pattern!r} must use '/' separators"
    if any(seg in ("", ".", "..") for seg in pattern.split("/")):
        return f"glob {pattern!r} has an empty, '.' or '..' segment"
    depth = 0
    for ch in pattern:
        if ch == "[":
            depth += 1
        elif ch == "]" and depth:
            depth -= 1
    if depth:
        return f"glob {pattern!r} has an unclosed '['"
    return None


def _segment(seg: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(seg):
        ch = seg[i]
        if ch == "*":
            out.append("[^/]*")
            while i + 1 < len(seg) and seg[i + 1] == "*":
                i += 1
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            end = seg.find("]", i + 2 if seg[i + 1 : i + 2] in ("!", "^") else i + 1)
            if end == -1:
                out.append(re.escape(ch))
            else:
                body = seg[i + 1 : end]
                negate = body[:1] in ("!", "^")
                if negate:
                    body = body[1:]
                body = body.replace("\\", "\\\\").replace("^", "\\^")
                out.append(f"[^/{body}]" if negate else f"[{body}]")
                i = end
        else:
            out.append(re.escape(ch))
        i += 1
    return "".join(out)


@lru_cache(maxsize=1024)
def compile_glob(pattern: str) -> re.Pattern[str]:
    segs = pattern.split("/")
    out: list[str] = []
    for i, seg in enumerate(segs):
        last = i == len(segs) - 1
        if seg == "**":
            out.append(".*" if last else "(?:[^/]+/)*")
        else:
            out.append(_segment(seg) + ("" if last else "/"))
    return re.compile("".join(out), re.DOTALL)


def match(pattern: str, path: str) -> bool:
    return compile_glob(pattern).fullmatch(path) is not None


def match_any(patterns: Iterable[str], path: str) -> bool:
    return any(match(p, path) for p in patterns)
