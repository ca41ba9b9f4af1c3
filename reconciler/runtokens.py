"""Per-run tokens: what a run presents to report its own metrics and outputs, and nothing else.

A run's token is an HMAC of its name under a key kept in the tracking database (made once, shared
by every replica), so it needs no storage per run, survives daemon restarts (local runs outlive
the daemon) and is the same wherever it is computed. It is handed to the run in its environment
(`POLYAXON_RUN_TOKEN`), never written to the run's records or logged. The server accepts it for
`POST /api/runs/<that run>/metrics|outputs` only, and only while the run is not done.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
from collections.abc import Callable

ENV_TOKEN = "POLYAXON_RUN_TOKEN"
ENV_URL = "POLYAXON_RECONCILER_URL"
PREFIX = "prt_"


class RunTokens:
    """Tokens under a key given, or read on first use from `key` (a callable: the database is
    not touched until a token is needed, so one-pass commands never write it)."""

    def __init__(self, key: str | Callable[[], str]) -> None:
        self._source = key
        self._key: bytes | None = None
        self._lock = threading.Lock()
        if isinstance(key, str):
            self._key = self._checked(key)

    @staticmethod
    def _checked(key: str) -> bytes:
        if len(key) < 32:
            raise ValueError("a run token key needs at least 32 characters")
        return key.encode()

    def _the_key(self) -> bytes:
        with self._lock:
            if self._key is None:
                assert callable(self._source)
                self._key = self._checked(self._source())
            return self._key

    def token(self, run_name: str) -> str:
        digest = hmac.new(self._the_key(), b"run-report:" + run_name.encode(), hashlib.sha256).digest()
        return PREFIX + base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def valid(self, run_name: str, presented: str) -> bool:
        """Constant-time: is `presented` the token of `run_name`?"""
        return hmac.compare_digest(presented.encode(), self.token(run_name).encode())

    def __repr__(self) -> str:  # never the key
        return "RunTokens(...)"


__all__ = ["ENV_TOKEN", "ENV_URL", "RunTokens"]
