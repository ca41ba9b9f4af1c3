"""One HTTP layer for the three providers: auth headers, timeouts, paging, error classification.

Error classification is the part that must agree across forges, so it lives here once:
rate limits are recognised by the headers GitHub (`X-RateLimit-*`), GitLab (`RateLimit-*`) and
Gitea send, and by `Retry-After` (seconds or an HTTP date) on any of them.
"""

from __future__ import annotations

import email.utils
import re
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote

import httpx

from reconciler.forge.errors import ForgeError, PermanentForgeError, RateLimited, TransientForgeError
from reconciler.forge.statuses.base import CommitStatus, clip
from reconciler.logs import redact

DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
# When a forge says "rate limited" without saying until when (GitHub's secondary limits can).
DEFAULT_RATE_LIMIT_WAIT_S = 60.0
MAX_PAGES = 20
_NEXT_LINK = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


def _http_date(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None


def rate_limit_wait(response: httpx.Response) -> float | None:
    """Seconds to wait before the next request if `response` says "rate limited", else None."""
    headers = response.headers
    retry_after = headers.get("Retry-After")
    # The forge's clock, not ours: reset times are absolute and our clock may differ.
    server_now = _http_date(headers.get("Date"))
    if retry_after is not None:
        if retry_after.strip().isdigit():
            return float(retry_after.strip())
        at = _http_date(retry_after)
        if at is not None and server_now is not None:
            return max(0.0, at - server_now)
        return DEFAULT_RATE_LIMIT_WAIT_S
    remaining = headers.get("X-RateLimit-Remaining", headers.get("RateLimit-Remaining"))
    reset = headers.get("X-RateLimit-Reset", headers.get("RateLimit-Reset"))
    if response.status_code == 429 or (remaining is not None and remaining.strip() == "0"):
        if reset is not None and reset.strip().isdigit() and server_now is not None:
            return max(0.0, float(reset) - server_now)
        return DEFAULT_RATE_LIMIT_WAIT_S
    return None


def _shown(url: str) -> str:
    """`url` as errors (logs, `/readyz`) may show it: no userinfo, no loaded secret."""
    try:
        public = str(httpx.URL(url).copy_with(userinfo=b""))
    except (httpx.InvalidURL, TypeError, ValueError):
        public = "<unparsable URL>"
    return redact(public)


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return redact(response.text[:200])
    if isinstance(body, Mapping):
        text = body.get("message") or body.get("error") or body
        return redact(str(text)[:200])
    return redact(str(body)[:200])


def classify(method: str, url: str, response: httpx.Response) -> ForgeError:
    """The typed error for a non-2xx answer."""
    code = response.status_code
    what = f"{method} {_shown(url)}: {code} {_message(response)}"
    if code in (403, 429):
        wait = rate_limit_wait(response)
        if wait is not None:
            return RateLimited(f"rate limited, retry in {wait:.0f}s: {what}", wait, status=code)
    if code >= 500 or code == 408:
        return TransientForgeError(what, status=code, sent=True)
    return PermanentForgeError(what, status=code, sent=False)


class ForgeHttp:
    """JSON over HTTP to one forge's API base URL, with typed errors."""

    def __init__(
        self,
        base_url: str,
        headers: Mapping[str, str],
        *,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = httpx.Client(
            headers={"User-Agent": "polyaxon-reconciler", "Accept": "application/json", **headers},
            timeout=timeout,
            transport=transport,
            follow_redirects=False,
        )

    def close(self) -> None:
        self._client.close()

    def request(
        self, method: str, path: str, *, json: Any = None, params: Mapping[str, str | int] | None = None
    ) -> httpx.Response:
        """`path` is below the base URL and already percent-encoded where it needs to be."""
        url = path if path.startswith(("http://", "https://")) else self.base_url + path
        try:
            response = self._client.request(method, url, json=json, params=params)
        except httpx.ConnectError as e:
            raise TransientForgeError(f"{method} {_shown(url)}: cannot connect: {redact(str(e))}", sent=False) from e
        except httpx.TimeoutException as e:
            # A read timeout may come after the forge acted on the request.
            sent = not isinstance(e, (httpx.ConnectTimeout, httpx.PoolTimeout))
            raise TransientForgeError(f"{method} {_shown(url)}: timed out ({type(e).__name__})", sent=sent) from e
        except httpx.TransportError as e:
            raise TransientForgeError(f"{method} {_shown(url)}: {type(e).__name__}: {redact(str(e))}", sent=True) from e
        if not response.is_success:
            raise classify(method, url, response)
        return response

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError as e:
            raise TransientForgeError(f"{method} {path}: the forge answered with invalid JSON", sent=True) from e

    def pages(self, path: str, params: Mapping[str, str | int]) -> Iterator[Any]:
        """Items of a paged list, following `Link: rel="next"` (all three forges send it)."""
        url: str | None = path
        query: Mapping[str, str | int] | None = params
        for _ in range(MAX_PAGES):
            if url is None:
                return
            response = self.request("GET", url, params=query)
            items = response.json()
            if not isinstance(items, list):
                raise TransientForgeError(f"GET {path}: expected a list, got {type(items).__name__}", sent=True)
            yield from items
            match = _NEXT_LINK.search(response.headers.get("Link", ""))
            url, query = (match.group(1), None) if match else (None, None)
            if url is not None and httpx.URL(url).host != httpx.URL(self.base_url).host:
                # Never send the token to a host the paging link points at but we were not given.
                raise PermanentForgeError(f"GET {path}: next page on another host: {_shown(url)}")


class HttpForgeClient:
    """What every provider client shares: one pooled HTTP session, a rate-limit key per forge
    and token (a pause for one never holds back another), and the status body every API takes."""

    provider: str = ""
    description_limit: int = 140

    def __init__(
        self,
        api_url: str,
        headers: dict[str, str],
        token: str,
        *,
        timeout: httpx.Timeout | float | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        kwargs: dict[str, Any] = {"transport": transport}
        if timeout is not None:
            kwargs["timeout"] = timeout
        self.http = ForgeHttp(self.api_url, headers, **kwargs)
        self._rate_key = f"{self.provider} {self.api_url} {hash(token)}"
        url = httpx.URL(self.api_url)
        # Without userinfo, query or fragment: this name goes into logs, metrics and /readyz.
        self.forge = str(url.copy_with(userinfo=b"", query=None, fragment=None))

    @property
    def rate_key(self) -> str:
        return self._rate_key

    def close(self) -> None:
        self.http.close()

    def status_body(self, status: CommitStatus, *, state: str, context_key: str = "context") -> dict[str, Any]:
        body: dict[str, Any] = {"state": state, context_key: status.context}
        if status.description is not None:
            body["description"] = clip(status.description, self.description_limit)
        if status.target_url:
            body["target_url"] = status.target_url
        return body


class RepoStatusesClient(HttpForgeClient):
    """GitHub and Gitea take a commit status the same way: `POST {repo}/statuses/{sha}`."""

    repo_path: str

    def post_status(self, status: CommitStatus) -> None:
        body = self.status_body(status, state=str(status.state))
        self.http.json("POST", f"{self.repo_path}/statuses/{quote(status.sha, safe='')}", json=body)
