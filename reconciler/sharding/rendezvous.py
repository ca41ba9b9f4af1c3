"""Which live replica owns a repo: rendezvous (highest random weight) hashing.

Every replica computes the same answer from the same member list, with no coordination: each
(member, repo) pair gets a pseudo-random score and the highest-scoring member owns the repo. When
a member joins, it takes only the repos it now scores highest on (about 1/n of them); when one
leaves, only its repos move, each to the member that scored second on it. The hash is fixed
(BLAKE2b), so the answer is the same on every machine and release.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence


def score(member: str, repo: str) -> int:
    digest = hashlib.blake2b(f"{member}\0{repo}".encode(), digest_size=8, person=b"reconciler-hrw").digest()
    return int.from_bytes(digest, "big")


def owner(repo: str, members: Iterable[str]) -> str | None:
    """The member that owns `repo` (None without members); ties go to the smaller name."""
    best: tuple[int, str] | None = None
    for member in members:
        key = (score(member, repo), member)
        if best is None or key[0] > best[0] or (key[0] == best[0] and member < best[1]):
            best = key
    return best[1] if best is not None else None


def assign(repos: Iterable[str], members: Sequence[str]) -> dict[str, str]:
    """repo -> owning member, for every repo (empty without members)."""
    if not members:
        return {}
    return {repo: owner(repo, members) or "" for repo in repos}


__all__ = ["assign", "owner", "score"]
