"""Following a real local run's log over server-sent events: lines arrive while the run prints,
`Last-Event-ID` resumes where a reader left, and the stream ends when the run does."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import yaml

from tests.infra.daemon import daemon_harness
from tests.infra.git_server import GitRepoFactory
from tests.infra.wait import wait_until

SCRIPT = r"""
import os, time
print("first line", flush=True)
while not os.path.exists("{{ release }}"):
    time.sleep(0.05)
print("second line", flush=True)
print("no newline at the end", end="", flush=True)
"""


def op(release: Path) -> str:
    return json.dumps(
        {
            "version": 1.1,
            "kind": "operation",
            "name": "chatty",
            "params": {"release": {"value": str(release)}},
            "component": {
                "inputs": [{"name": "release", "type": "str"}],
                "run": {"kind": "job", "container": {"image": "python", "command": ["python3", "-c", SCRIPT]}},
            },
        }
    )


def events(response: httpx.Response) -> Iterator[dict[str, str]]:
    event: dict[str, str] = {}
    for line in response.iter_lines():
        if not line:
            if event:
                yield event
            event = {}
        elif line.startswith(":"):
            continue
        else:
            key, _, value = line.partition(": ")
            event[key] = f"{event[key]}\n{value}" if key in event else value


def test_a_followed_log_streams_lines_as_they_are_printed(tmp_path: Path, git_repo_factory: GitRepoFactory) -> None:
    release = tmp_path / "release"
    db = f"sqlite:///{tmp_path / 'db.sqlite'}"
    with daemon_harness(tmp_path / "h", db, git_repo_factory, backend="local") as h:
        url = h.start(workers=1)
        h.commit({"ops/chatty.json": op(release)})
        h.daemon.trigger("r")
        name = wait_until(lambda: (httpx.get(f"{url}/api/runs").json() or [{}])[0].get("name"), timeout=30)
        seen: queue.Queue[dict[str, str] | None] = queue.Queue()

        def follow() -> None:
            with httpx.stream("GET", f"{url}/api/runs/{name}/logs?follow=true", timeout=60) as response:
                assert response.headers["content-type"].startswith("text/event-stream")
                for event in events(response):
                    seen.put(event)
            seen.put(None)

        reader = threading.Thread(target=follow, daemon=True)
        reader.start()
        first = seen.get(timeout=30)
        assert first is not None and first["event"] == "log" and first["data"] == "first line"
        assert httpx.get(f"{url}/api/runs/{name}").json()["status"] == "running"
        release.touch()
        rest = []
        while (event := seen.get(timeout=30)) is not None:
            rest.append(event)
        reader.join(10)
        text = "\n".join(e["data"] for e in rest if e["event"] == "log")
        assert text == "second line\nno newline at the end"
        assert rest[-1]["event"] == "end"

        # A reader that saw the first event resumes after it; a tail starts from the end.
        with httpx.stream(
            "GET", f"{url}/api/runs/{name}/logs?follow=true", headers={"Last-Event-ID": first["id"]}, timeout=30
        ) as response:
            resumed = list(events(response))
        assert "\n".join(e["data"] for e in resumed if e["event"] == "log") == "second line\nno newline at the end"
        with httpx.stream("GET", f"{url}/api/runs/{name}/logs?follow=true&tail=1", timeout=30) as response:
            tailed = list(events(response))
        assert [e["data"] for e in tailed if e["event"] == "log"] == ["no newline at the end"]
        assert httpx.get(f"{url}/api/runs/nope/logs?follow=true").status_code == 404

        # The CLI follows the same stream (and, the run being done, returns at its end).
        config = tmp_path / "reconciler.yaml"
        port = int(url.rsplit(":", 1)[1])
        config.write_text(yaml.safe_dump({"server": {"host": "127.0.0.1", "port": port}, "database": db}))
        cli = subprocess.run(
            [
                str(Path(sys.executable).with_name("reconciler")),
                "runs",
                "logs",
                name,
                "--follow",
                "--config",
                str(config),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert cli.returncode == 0, cli.stderr
        assert cli.stdout == "first line\nsecond line\nno newline at the end\n"
