"""Bounds on JSON a client sends, checked before parsing: shared by the webhooks and the API.

Python's parser recurses and fails near a thousand levels of nesting; a body that nests deeper
than any real payload is refused before it is parsed, in one linear pass over its bytes.
"""

from __future__ import annotations

import re

# Forge payloads nest a dozen levels; metrics and outputs a few.
MAX_JSON_DEPTH = 64

# Strings (skipped whole, escapes included) and the brackets outside them.
_JSON_TOKENS = re.compile(rb'"(?:[^"\\]+|\\.)*"|[\[\]{}]')


def json_too_deep(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Does `body` nest arrays and objects deeper than `limit`? Checked before parsing, in one
    linear pass, so a hostile body cannot make the parser recurse out of the stack."""
    depth = 0
    for match in _JSON_TOKENS.finditer(body):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return True
        elif token in (b"]", b"}"):
            depth -= 1
    return False


__all__ = ["MAX_JSON_DEPTH", "json_too_deep"]
