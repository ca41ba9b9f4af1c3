"""Fetching with real git: refs, transports, retries with backoff, timeouts, credentials."""

from __future__ import annotations

import base64
import logging
import shutil
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from reconciler.source import Backoff, GitSource, PermanentSourceError, TransientSourceError

# -- refs ---------------------------------------------------------------------------------------


def test_first_fetch_creates_one_bare_copy_and_returns_the_head(remote, make_source, tmp_path) -> None:
    sha = remote.commit({"a.yaml": "a"})
    source = make_source(remote.url)

    rev = source.fetch()

    assert rev.sha == sha
    assert rev.ref == "refs/heads/main"
    assert rev.committed_at == datetime.fromtimestamp(remote.last_tick, tz=UTC)
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["demo.git"]
    assert (tmp_path / "cache" / "demo.git" / "HEAD").is_file()  # bare: no work tree


def test_later_fetch_sees_new_commits_and_reuses_the_copy(remote, make_source) -> None:
    remote.commit({"a.yaml": "1"})
    source = make_source(remote.url)
    source.fetch()
    newer = remote.commit({"a.yaml": "2"})
    assert source.fetch().sha == newer
    # A second GitSource on the same cache dir (daemon restart) finds the copy and works on it.
    again = make_source(remote.url)
    assert again.fetch().sha == newer


def test_tracks_another_branch(remote, make_source) -> None:
    remote.commit({"a.yaml": "main"})
    remote.git("checkout", "-q", "-b", "release")
    release = remote.commit({"a.yaml": "release"})
    remote.git("checkout", "-q", "main")
    remote.commit({"a.yaml": "main 2"})

    rev = make_source(remote.url, "release").fetch()

    assert (rev.sha, rev.ref) == (release, "refs/heads/release")


@pytest.mark.parametrize("annotated", [False, True])
def test_tracks_a_tag_and_follows_it_when_moved(remote, make_source, annotated) -> None:
    tagged = remote.commit({"a.yaml": "1"})
    tag_args = ["-a", "-m", "release"] if annotated else []
    remote.git("tag", *tag_args, "v1")
    remote.commit({"a.yaml": "2"})
    source = make_source(remote.url, "refs/tags/v1")

    rev = source.fetch()
    assert (rev.sha, rev.ref) == (tagged, "refs/tags/v1")  # the commit, not the tag object

    moved = remote.commit({"a.yaml": "3"})
    remote.git("tag", "-f", *tag_args, "v1")
    assert source.fetch().sha == moved


def test_tracks_a_pull_request_ref(remote, make_source) -> None:
    remote.commit({"a.yaml": "1"})
    remote.git("checkout", "-q", "-b", "feature")
    head = remote.commit({"a.yaml": "pr"})
    remote.git("checkout", "-q", "main")
    remote.git("update-ref", "refs/pull/7/head", head)

    rev = make_source(remote.url, "refs/pull/7/head").fetch()

    assert (rev.sha, rev.ref) == (head, "refs/pull/7/head")


def test_missing_ref_is_permanent_and_not_retried(remote, make_source, sleeps) -> None:
    remote.commit({"a.yaml": "1"})
    with pytest.raises(PermanentSourceError) as err:
        make_source(remote.url, "nope").fetch()
    assert sleeps.delays == []
    assert "refs/heads/nope" in str(err.value)
    assert "last applied commit" in str(err.value)  # says what happens next


def test_bad_arguments_are_refused_up_front(tmp_path) -> None:
    with pytest.raises(ValueError, match="not a valid git ref"):
        GitSource("demo", "file:///x", "feature..x", tmp_path)
    with pytest.raises(ValueError, match="usable repo name"):
        GitSource("../escape", "file:///x", "main", tmp_path)
    with pytest.raises(ValueError, match="remote helper URLs"):
        GitSource("demo", "ext::sh -c evil", "main", tmp_path)
    with pytest.raises(ValueError, match="at most one"):
        GitSource("demo", "file:///x", "main", tmp_path, token="a", token_env="B")


# -- transient failures, backoff, timeouts ------------------------------------------------------


def test_transient_failure_is_retried_until_the_remote_comes_back(remote, make_source, sleeps, caplog) -> None:
    sha = remote.commit({"a.yaml": "1"})
    hidden = remote.path.with_name("hidden")
    remote.path.rename(hidden)
    sleeps.hooks[2] = lambda: hidden.rename(remote.path)  # the remote reappears during the 2nd wait
    source = make_source(remote.url, backoff=Backoff(attempts=5, initial=1, factor=2, cap=30))

    with caplog.at_level(logging.WARNING, logger="reconciler.source"):
        rev = source.fetch()

    assert rev.sha == sha
    assert sleeps.delays == [1, 2]
    retries = [r.getMessage() for r in caplog.records if "try" in r.getMessage()]
    assert len(retries) == 2 and "try 2 of 5" in retries[0] and "try 3 of 5" in retries[1]


def test_backoff_is_capped_and_gives_up_with_a_transient_error(remote, make_source, sleeps) -> None:
    remote.commit({"a.yaml": "1"})
    shutil.rmtree(remote.path)
    source = make_source(remote.url, backoff=Backoff(attempts=6, initial=1, factor=2, cap=5))

    with pytest.raises(TransientSourceError) as err:
        source.fetch()

    assert sleeps.delays == [1, 2, 4, 5, 5]
    assert "6 tries" in str(err.value)
    assert "next poll" in str(err.value)


def _script(path: Path, body: str) -> str:
    path.write_text("#!/bin/bash\n" + body + "\n")
    path.chmod(0o755)
    return str(path)


def test_hung_fetch_is_killed_at_the_timeout_and_retried(make_source, sleeps, tmp_path) -> None:
    # An ssh "connection" that never answers: keeps git's pipes open and sleeps.
    hang = _script(tmp_path / "hang-ssh", "exec sleep 30 2>/dev/null")
    source = make_source(
        "ssh://unreachable.invalid/repo.git",
        ssh_command=hang,
        timeout_s=1.0,
        backoff=Backoff(attempts=2, initial=1, factor=2, cap=30),
    )
    started = time.monotonic()
    with pytest.raises(TransientSourceError) as err:
        source.fetch()
    elapsed = time.monotonic() - started

    assert "did not complete in 1 secs" in str(err.value)
    assert sleeps.delays == [1]
    assert elapsed < 15, elapsed


def test_ssh_transport_through_ssh_command(remote, make_source, tmp_path) -> None:
    sha = remote.commit({"a.yaml": "1"})
    # Stand-in for ssh (no sshd here): run the remote side's command locally, as sshd would.
    fake_ssh = _script(tmp_path / "fake-ssh", 'exec sh -c "${@: -1}"')
    source = make_source(f"ssh://git@fakehost{remote.path}", ssh_command=fake_ssh)
    assert source.fetch().sha == sha


def test_ssh_auth_failure_is_permanent(make_source, sleeps, tmp_path) -> None:
    denied = _script(tmp_path / "denied-ssh", 'echo "git@fakehost: Permission denied (publickey)." >&2; exit 255')
    with pytest.raises(PermanentSourceError, match="Permission denied"):
        make_source("ssh://git@fakehost/repo.git", ssh_command=denied).fetch()
    assert sleeps.delays == []


# -- HTTPS credentials --------------------------------------------------------------------------


class _Recorder(BaseHTTPRequestHandler):
    """Answers every request with a fixed status and records the request headers."""

    status = 401
    seen: list[dict[str, str]]
    redirect_to: str | None = None

    def do_GET(self) -> None:
        self.seen.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
        if self.redirect_to:
            self.send_response(302)
            self.send_header("Location", self.redirect_to + self.path)
        else:
            self.send_response(self.status)
            if self.status == 401:
                self.send_header("WWW-Authenticate", 'Basic realm="test"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[object]:
    servers: list[ThreadingHTTPServer] = []

    def start(status: int = 401, redirect_to: str | None = None) -> tuple[str, list[dict[str, str]]]:
        seen: list[dict[str, str]] = []
        handler = type("Handler", (_Recorder,), {"status": status, "seen": seen, "redirect_to": redirect_to})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}", seen

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _basic(token: str) -> str:
    return "Basic " + base64.b64encode(f"x-access-token:{token}".encode()).decode()


def test_token_is_sent_as_a_header_and_never_written_or_shown(
    http_server, make_source, sleeps, caplog, tmp_path
) -> None:
    base, seen = http_server(401)
    token = "tok-S3CRET-123"
    source = make_source(f"{base}/org/repo.git", token=token)

    with caplog.at_level(logging.DEBUG), pytest.raises(PermanentSourceError) as err:
        source.fetch()

    assert seen and seen[0]["authorization"] == _basic(token)
    assert sleeps.delays == []  # 401 is permanent
    leaks = [token, _basic(token).split()[1]]
    on_disk = "\n".join(p.read_text(errors="replace") for p in (tmp_path / "cache").rglob("*") if p.is_file())
    for leak in leaks:
        assert leak not in str(err.value)
        assert leak not in caplog.text
        assert leak not in on_disk


@pytest.mark.parametrize("how", ["file", "env"])
def test_token_from_file_or_environment(http_server, make_source, tmp_path, monkeypatch, how) -> None:
    base, seen = http_server(401)
    if how == "file":
        (tmp_path / "token").write_text("from-file\n")
        (tmp_path / "token").chmod(0o600)  # secret files others can read are refused
        kwargs: dict[str, object] = {"token_file": tmp_path / "token"}
        expected = "from-file"
    else:
        monkeypatch.setenv("TEST_GIT_TOKEN", "from-env")
        kwargs = {"token_env": "TEST_GIT_TOKEN"}
        expected = "from-env"
    with pytest.raises(PermanentSourceError):
        make_source(f"{base}/repo.git", **kwargs).fetch()
    assert seen[0]["authorization"] == _basic(expected)


def test_missing_token_source_is_permanent(make_source, tmp_path) -> None:
    with pytest.raises(PermanentSourceError, match="cannot read token file"):
        make_source("http://127.0.0.1:9/repo.git", token_file=tmp_path / "absent").fetch()
    with pytest.raises(PermanentSourceError, match="NOT_SET_ANYWHERE is not set"):
        make_source("http://127.0.0.1:9/repo.git", token_env="NOT_SET_ANYWHERE").fetch()


def test_server_errors_are_transient_and_retried(http_server, make_source, sleeps) -> None:
    base, seen = http_server(503)
    with pytest.raises(TransientSourceError, match="503"):
        make_source(f"{base}/repo.git", token="t").fetch()
    assert sleeps.delays == [1, 2]
    assert len(seen) == 3


def test_token_is_not_sent_to_another_host_after_a_redirect(http_server, make_source) -> None:
    other, other_seen = http_server(401)
    # Same server process kind, different host name: 127.0.0.1 redirects to localhost.
    base, _ = http_server(redirect_to=other.replace("127.0.0.1", "localhost"))
    with pytest.raises(PermanentSourceError):
        make_source(f"{base}/repo.git", token="only-for-127").fetch()
    assert other_seen, "the redirect was not followed"
    assert "authorization" not in other_seen[0]


def test_url_with_a_password_is_refused_without_echoing_it(tmp_path) -> None:
    with pytest.raises(ValueError) as err:
        GitSource("demo", "https://user:hunter2@example.com/r.git", "main", tmp_path)
    assert "hunter2" not in str(err.value)
