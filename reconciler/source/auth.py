"""How credentials reach git without reaching disk, argv or logs; and how text is scrubbed.

HTTPS tokens go in an `http.<scheme>://<host>/.extraHeader` setting passed through git's
`GIT_CONFIG_COUNT`/`GIT_CONFIG_KEY_n`/`GIT_CONFIG_VALUE_n` environment variables (git >= 2.31),
which is the same as `git -c` but:
- not `git -c` on the command line, because argv is world-readable in `ps` and /proc, while a
  process's environment is readable only by its owner;
- not `.git/config` or a remote URL with userinfo, because those persist on disk in the cache;
- not GIT_ASKPASS, which needs an executable helper on disk and answers any credential prompt
  for any host;
- scoped to the remote's scheme and host, so git offers it to no other URL. A redirect to another
  host does not carry it either (libcurl drops custom Authorization headers on a host change);
  `test_token_is_not_sent_to_another_host_after_a_redirect` checks the combination.
Pure: these functions build values; the adapter passes them to git.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

REDACTED = "***"

_HELPER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9+.-]*::")
_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/@\s]+)@")


def url_problem(url: str) -> str | None:
    """Why `url` may not be used as a remote, or None."""
    if _HELPER.match(url):
        return "remote helper URLs (<transport>::<address>) are not supported"
    parts = urlsplit(url)
    if parts.scheme in ("http", "https") and parts.password:
        return "the URL contains a password or token; give the token by file or environment variable instead"
    if parts.scheme not in ("http", "https", "ssh", "git", "file", "") and "://" in url:
        return f"unsupported URL scheme {parts.scheme!r} (use https, ssh, git or file)"
    return None


def is_http(url: str) -> bool:
    return urlsplit(url).scheme in ("http", "https")


def basic_header(username: str, token: str) -> str:
    pair = base64.b64encode(f"{username}:{token}".encode()).decode("ascii")
    return f"Authorization: Basic {pair}"


def auth_env(url: str, token: str | None, username: str) -> dict[str, str]:
    """Environment variables that hand the token to git for this URL's host only."""
    if token is None or not is_http(url):
        return {}
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return {
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": f"http.{parts.scheme}://{host}/.extraHeader",
        "GIT_CONFIG_VALUE_0": basic_header(username, token),
    }


def secrets_for(token: str | None, username: str) -> list[str]:
    """Every form in which the token could show up in git's output."""
    if not token:
        return []
    return [token, basic_header(username, token).split(" ", 2)[2]]


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` without URL userinfo and without any of `secrets`."""
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{REDACTED}@", text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text
