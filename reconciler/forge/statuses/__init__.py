"""Commit-status (and pull-request comment) providers, one module per forge."""

from __future__ import annotations

from typing import Any

import httpx

from reconciler.config import ForgeConfig
from reconciler.forge.statuses.base import (
    Comment,
    CommentProvider,
    CommitStatus,
    ForgeClient,
    PullRequestProvider,
    StatusProvider,
    clip,
)
from reconciler.forge.statuses.gitea import GiteaClient
from reconciler.forge.statuses.github import GitHubClient
from reconciler.forge.statuses.gitlab import GitLabClient

__all__ = [
    "Comment",
    "CommentProvider",
    "CommitStatus",
    "ForgeClient",
    "GitHubClient",
    "GitLabClient",
    "GiteaClient",
    "PullRequestProvider",
    "StatusProvider",
    "client_for",
    "clip",
]


def client_for(
    config: ForgeConfig,
    token: str,
    *,
    timeout: httpx.Timeout | float | None = None,
    transport: httpx.BaseTransport | None = None,
) -> ForgeClient:
    """The provider client a repo's `forge:` section describes."""
    kwargs: dict[str, Any] = {"timeout": timeout, "transport": transport}
    if config.provider == "github":
        return GitHubClient(config.project, token, config.api_url, **kwargs)
    if config.provider == "gitlab":
        return GitLabClient(config.project, token, config.api_url, **kwargs)
    if not config.api_url:
        raise ValueError("a Gitea forge needs api_url (e.g. https://gitea.example.com/api/v1)")
    return GiteaClient(config.project, token, config.api_url, **kwargs)
