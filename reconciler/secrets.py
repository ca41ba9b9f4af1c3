"""Secrets (tokens, webhook secrets, the API token): read from a file or the environment only.

One reader for every secret the daemon loads, so each gets the same three guarantees:

- it never comes from the repo or the settings file, only from a file path or a variable name;
- it is registered with the log redactor before it is returned (safety rule 7), so no later log
  line, status description, API answer or page can show it;
- a secret file readable or writable by other users is refused: anyone on the machine (a local
  run included) could read it. A file readable by its group is accepted with a warning, because
  Kubernetes mounts Secret volumes group-readable (0440) when the pod sets `fsGroup`; the group
  is then the pod's own. Mode 0600 (or 0400) is what the README asks for.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
from pathlib import Path

from reconciler.logs import register_secret

log = logging.getLogger(__name__)

_WARNED: set[str] = set()
_WARNED_LOCK = threading.Lock()


class SecretMissing(ValueError):
    """A secret that is configured cannot be used: absent, empty, or readable by others."""


def file_mode_problem(path: Path) -> str | None:
    """Why the secret file at `path` may not be used, or None. Warns once about group access."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return None  # reading it says what is wrong
    if mode & 0o007:
        return f"{path} is accessible to other users (mode {mode:04o}): chmod 600 {path}"
    if mode & 0o070:
        with _WARNED_LOCK:
            first = str(path) not in _WARNED
            _WARNED.add(str(path))
        if first:
            log.warning("secret file %s is readable by its group (mode %04o); chmod 600 it", path, mode)
    return None


def read_secret_file(path: Path) -> str:
    """The secret in `path` (surrounding whitespace dropped), checked and registered."""
    problem = file_mode_problem(path)
    if problem:
        raise SecretMissing(problem)
    try:
        value = Path(path).read_text(encoding="utf-8").strip()
    except OSError as e:
        raise SecretMissing(f"cannot read {path}: {e.strerror}") from None
    if not value:
        raise SecretMissing(f"{path} is empty")
    register_secret(value)
    return value


def read_secret(file: Path | None, env: str | None, what: str) -> str | None:
    """The secret in `file` or in environment variable `env`.

    None when neither is configured; `SecretMissing` when one is configured but unusable.
    """
    if file is not None and env is not None:
        raise SecretMissing(f"{what}: give a file or an environment variable, not both")
    if file is not None:
        try:
            return read_secret_file(file)
        except SecretMissing as e:
            raise SecretMissing(f"{what}: {e}") from None
    if env is not None:
        value = os.environ.get(env, "").strip()
        if not value:
            raise SecretMissing(f"{what}: environment variable {env} is not set")
        register_secret(value)
        return value
    return None


__all__ = ["SecretMissing", "file_mode_problem", "read_secret", "read_secret_file"]
