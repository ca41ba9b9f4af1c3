"""What can go wrong talking to a forge, and what the caller should do about it.

ForgeError
├── TransientForgeError   try again later with backoff: 5xx, 408, timeouts, connection errors
│   └── RateLimited       try again at a known time: 429, or 403 with rate-limit headers;
│                         `retry_after_s` is measured against the forge's own clock (its `Date`
│                         header), so a skewed local clock or an injected test clock still waits
│                         the right amount
└── PermanentForgeError   will not succeed as is: 401, 403 without rate-limit headers, 404, 422

`sent` says whether the forge may have acted on the request: False when it certainly did not
(the connection was refused, the forge answered with an error before acting); True when the
outcome is unknown (a timeout after the request went out, a 5xx from a proxy). The outbox checks
the forge before re-posting a row whose previous attempt may have landed.
"""

from __future__ import annotations

import datetime as dt


class ForgeError(Exception):
    def __init__(self, message: str, *, status: int | None = None, sent: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.sent = sent


class TransientForgeError(ForgeError):
    pass


class RateLimited(TransientForgeError):
    def __init__(self, message: str, retry_after_s: float, *, status: int | None = None) -> None:
        super().__init__(message, status=status, sent=False)
        self.retry_after_s = max(0.0, retry_after_s)

    def retry_at(self, now: dt.datetime) -> dt.datetime:
        return now + dt.timedelta(seconds=self.retry_after_s)


class PermanentForgeError(ForgeError):
    pass
