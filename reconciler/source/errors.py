"""Source errors, and the pure rule that sorts git failures into "retry" and "stop".

    SourceError
     +-- TransientSourceError   network, timeout, 5xx, remote temporarily missing: retried with
     |                          backoff now, and again at the next poll
     +-- PermanentSourceError   bad credentials, missing repo or ref, bad local state: not retried
                                now; needs a settings or remote fix, checked again at the next poll

Either way the repo stays at its last applied commit and other repos are unaffected. Messages
are built from redacted text only, so they can go to logs, statuses and the API as they are.
A wrong guess between the two classes costs little: both are tried again at the next poll.
"""

from __future__ import annotations

import re


class SourceError(Exception):
    """A git operation for one repo failed; `str()` says what failed and what happens next."""

    def __init__(self, repo: str, message: str, next_step: str) -> None:
        super().__init__(f"repo {repo!r}: {message}; {next_step}")
        self.repo = repo
        self.message = message
        self.next_step = next_step


class TransientSourceError(SourceError):
    pass


class PermanentSourceError(SourceError):
    pass


_PERMANENT = re.compile(
    "|".join(
        [
            r"authentication failed",
            r"could not read (username|password)",
            r"terminal prompts disabled",
            r"permission denied",
            r"host key verification failed",
            r"returned error: 40[134]",
            r"repository not found",
            r"couldn't find remote ref",
            r"invalid refspec",
            r"unable to find remote helper",
            r"ssl certificate problem",
            r"unsupported protocol",
        ]
    ),
    re.IGNORECASE,
)


def is_permanent(stderr: str) -> bool:
    """Does git's error output describe something retrying cannot fix?

    Anything unrecognised counts as transient: retrying a permanent failure a few times is
    cheap, giving up on a transient one delays the repo until the next poll.
    """
    return _PERMANENT.search(stderr) is not None


_BOILERPLATE = (
    "please make sure you have the correct access rights",
    "and the repository exists.",
)


def summarize(stderr: str, limit: int = 300) -> str:
    """git's error output on one line, without the advice lines it prints after every failure."""
    lines = [ln.strip() for ln in stderr.splitlines()]
    useful = [ln for ln in lines if ln and not ln.lower().startswith(_BOILERPLATE)]
    text = " | ".join(useful) or "git failed without a message"
    return text if len(text) <= limit else text[: limit - 3] + "..."
