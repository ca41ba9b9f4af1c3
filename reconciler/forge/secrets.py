"""Forge tokens and webhook secrets, read from a file or the environment, never from the repo.

Read through `reconciler.secrets`, the one reader of every secret: registered with the log
redactor before it is returned, and refused from a file other users can read (safety rule 7).
"""

from __future__ import annotations

from reconciler.config import ForgeConfig
from reconciler.secrets import SecretMissing, read_secret


def forge_token(config: ForgeConfig) -> str | None:
    return read_secret(config.token_file, config.token_env, f"{config.provider} token")


def webhook_secret(config: ForgeConfig) -> str | None:
    return read_secret(config.webhook_secret_file, config.webhook_secret_env, f"{config.provider} webhook secret")


__all__ = ["SecretMissing", "forge_token", "read_secret", "webhook_secret"]
