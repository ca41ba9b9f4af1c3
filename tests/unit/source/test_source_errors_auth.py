"""Sorting git failures into retry/stop, and keeping secrets out of text and argv."""

from __future__ import annotations

import base64

import pytest

from reconciler.source import auth
from reconciler.source.errors import TransientSourceError, is_permanent, summarize


@pytest.mark.parametrize(
    "stderr",
    [
        "fatal: Authentication failed for 'https://example.com/r.git/'",
        "fatal: could not read Username for 'https://example.com': terminal prompts disabled",
        "git@github.com: Permission denied (publickey).\nfatal: Could not read from remote repository.",
        "fatal: unable to access 'https://x/': The requested URL returned error: 403",
        "remote: Repository not found.\nfatal: repository 'https://x/' not found",
        "fatal: couldn't find remote ref refs/heads/nope",
        "Host key verification failed.",
        "fatal: unable to access 'https://x/': SSL certificate problem: self-signed certificate",
    ],
)
def test_permanent_failures(stderr) -> None:
    assert is_permanent(stderr)


@pytest.mark.parametrize(
    "stderr",
    [
        "fatal: unable to access 'https://x/': The requested URL returned error: 503",
        "fatal: unable to access 'https://x/': Could not resolve host: x",
        "fatal: unable to access 'https://x/': Failed to connect to x port 443: Connection refused",
        "error: RPC failed; curl 18 transfer closed\nfatal: early EOF",
        'Timeout: the command "git fetch" did not complete in 5 secs.',
        "fatal: '/tmp/gone' does not appear to be a git repository",
        "something nobody has seen before",
    ],
)
def test_transient_failures(stderr) -> None:
    assert not is_permanent(stderr)


def test_summary_drops_advice_and_joins_lines() -> None:
    stderr = (
        "fatal: '/x' does not appear to be a git repository\n"
        "fatal: Could not read from remote repository.\n\n"
        "Please make sure you have the correct access rights\nand the repository exists.\n"
    )
    assert summarize(stderr) == (
        "fatal: '/x' does not appear to be a git repository | fatal: Could not read from remote repository."
    )
    assert summarize("") == "git failed without a message"
    assert len(summarize("x" * 1000, limit=50)) == 50


def test_error_text_says_what_happens_next() -> None:
    err = TransientSourceError("demo", "fetch failed", "will try again at the next poll")
    assert str(err) == "repo 'demo': fetch failed; will try again at the next poll"
    assert (err.repo, err.message, err.next_step) == (
        "demo",
        "fetch failed",
        "will try again at the next poll",
    )


def test_redact_removes_userinfo_and_secrets() -> None:
    text = "fatal: https://user:tok@example.com/r.git and ssh://git@host/x failed with tok and Zm9v"
    assert auth.redact(text, ["tok", "Zm9v"]) == (
        "fatal: https://***@example.com/r.git and ssh://***@host/x failed with *** and ***"
    )


def test_auth_env_scopes_the_header_to_the_remote_host() -> None:
    env = auth.auth_env("https://git.example.com:8443/org/r.git", "t0k", "oauth2")
    assert env == {
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "http.https://git.example.com:8443/.extraHeader",
        "GIT_CONFIG_VALUE_0": "Authorization: Basic " + base64.b64encode(b"oauth2:t0k").decode(),
    }
    assert auth.auth_env("ssh://git@example.com/r.git", "t0k", "x") == {}
    assert auth.auth_env("https://example.com/r.git", None, "x") == {}


def test_secrets_for_cover_the_raw_and_encoded_forms() -> None:
    forms = auth.secrets_for("t0k", "u")
    assert forms == ["t0k", base64.b64encode(b"u:t0k").decode()]
    assert auth.secrets_for(None, "u") == []


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://example.com/r.git", None),
        ("https://user@example.com/r.git", None),
        ("git@github.com:org/r.git", None),
        ("file:///srv/r.git", None),
        ("https://u:p@example.com/r.git", "contains a password"),
        ("ext::sh -c touch% /tmp/pwned", "remote helper"),
        ("ftp://example.com/r.git", "unsupported URL scheme"),
    ],
)
def test_url_problems(url, problem) -> None:
    found = auth.url_problem(url)
    assert (found is None) if problem is None else (problem in (found or ""))
