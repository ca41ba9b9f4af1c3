"""Forge tokens and webhook secrets, read from a file or the environment, never from the repo.

Every value read is registered with the log redactor before it is returned, so no later log
line, exception or status description can carry it (safety rule 7).
"""

from __future__ import annotations

import os
from pathlib import Path

from reconciler.config import ForgeConfig
from reconciler.logs import register_secret


class SecretMissing(ValueError):
    pass


def read_secret(file: Path | None, env: str | None, what: str) -> str | None:
    """The secret in `file` (trailing newline dropped) or in environment variable `env`.

    None when neither is configured; `SecretMissing` when one is configured but empty or absent.
    """
    if file is not None and env is not None:
        raise SecretMissing(f"{what}: give a file or an environment variable, not both")
    if file is not None:
        try:
            value = Path(file).read_text(encoding="utf-8").strip()
        except OSError as e:
            raise SecretMissing(f"{what}: cannot read {file}: {e.strerror}") from None
        if not value:
            raise SecretMissing(f"{what}: {file} is empty")
    elif env is not None:
        value = os.environ.get(env, "").strip()
        if not value:
            raise SecretMissing(f"{what}: environment variable {env} is not set")
    else:
        return None
    register_secret(value)
    return value


def forge_token(config: ForgeConfig) -> str | None:
    return read_secret(config.token_file, config.token_env, f"{config.provider} token")


def webhook_secret(config: ForgeConfig) -> str | None:
    return read_secret(config.webhook_secret_file, config.webhook_secret_env, f"{config.provider} webhook secret")
