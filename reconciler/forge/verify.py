"""Is this webhook delivery from the forge? Checked on the raw bytes, before anything is parsed.

GitHub signs the body with HMAC-SHA256 (`X-Hub-Signature-256: sha256=<hex>`), Gitea likewise
without the prefix (`X-Gitea-Signature: <hex>`), GitLab echoes the configured secret token
(`X-Gitlab-Token`), and our generic endpoint takes GitHub's format under `X-Reconciler-Signature`.
Every comparison is constant-time (`hmac.compare_digest`) so the answer's timing tells an
attacker nothing about how much of a guess was right.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Literal

Scheme = Literal["github", "gitea", "gitlab", "generic"]
SIGNATURE_HEADERS: dict[Scheme, str] = {
    "github": "X-Hub-Signature-256",
    "gitea": "X-Gitea-Signature",
    "gitlab": "X-Gitlab-Token",
    "generic": "X-Reconciler-Signature",
}


def hmac_sha256(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8", "surrogateescape"), b.encode("utf-8", "surrogateescape"))


def verify(scheme: Scheme, secret: str, body: bytes, headers: Mapping[str, str]) -> bool:
    """True when the delivery's signature (or token) matches `secret`."""
    if not secret:
        return False
    presented = headers.get(SIGNATURE_HEADERS[scheme])
    if not presented:
        return False
    presented = presented.strip()
    if scheme == "gitlab":
        return _same(presented, secret)
    expected = hmac_sha256(secret, body)
    if scheme in ("github", "generic"):
        prefix, _, digest = presented.partition("=")
        return prefix.lower() == "sha256" and _same(digest.lower(), expected)
    return _same(presented.lower(), expected)
