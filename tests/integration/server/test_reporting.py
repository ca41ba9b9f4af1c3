"""A real local run reports as it runs, both ways a training script can: JSON lines appended to
`$POLYAXON_RUN_OUTPUTS_PATH` (read by the backend while the run lives) and `POST` to the daemon
with `$POLYAXON_RUN_TOKEN`. The values show in the API while the run still runs, in order, and
the token is in no record, log or answer."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import httpx
import pytest

from tests.infra.daemon import daemon_harness
from tests.infra.git_server import GitRepoFactory
from tests.infra.wait import wait_until

SCRIPT = r"""
import json, os, time, urllib.request
out = os.environ["POLYAXON_RUN_OUTPUTS_PATH"]
with open(out, "a") as f:
    f.write(json.dumps({"loss": 0.9, "step": 0}) + "\n")
while not os.path.exists("{{ release }}"):
    time.sleep(0.05)
url = os.environ["POLYAXON_RECONCILER_URL"] + "/api/runs/" + os.environ["POLYAXON_RUN_NAME"] + "/metrics"
body = json.dumps({"metrics": {"loss": 0.5}, "step": 1}).encode()
token = os.environ["POLYAXON_RUN_TOKEN"]
request = urllib.request.Request(url, data=body, method="POST",
    headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
print("posted", urllib.request.urlopen(request).status, flush=True)
with open(out, "a") as f:
    f.write(json.dumps({"name": "loss", "value": 0.25}))
"""


def op(release: Path) -> str:
    return json.dumps(
        {
            "version": 1.1,
            "kind": "operation",
            "name": "train",
            "params": {"release": {"value": str(release)}},
            "component": {
                "inputs": [{"name": "release", "type": "str"}],
                "run": {"kind": "job", "container": {"image": "python", "command": ["python3", "-c", SCRIPT]}},
            },
        }
    )


def test_a_run_reports_through_its_file_and_the_api_while_it_runs(
    tmp_path: Path, git_repo_factory: GitRepoFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    release = tmp_path / "release"
    db = f"sqlite:///{tmp_path / 'db.sqlite'}"
    with daemon_harness(tmp_path / "h", db, git_repo_factory, backend="local") as h:
        url = h.start(workers=1)
        h.commit({"ops/train.json": op(release)})
        h.daemon.trigger("r")

        def run_name() -> str | None:
            runs = httpx.get(f"{url}/api/runs").json()
            return runs[0]["name"] if runs else None

        name = wait_until(run_name, timeout=30, what="the run to be created")

        def series() -> list[tuple[int, float]]:
            found = httpx.get(f"{url}/api/runs/{name}/outputs").json()["metrics"].get("loss", [])
            return [(p["step"], p["value"]) for p in found]

        assert wait_until(series, timeout=30, what="the first value, read from the file") == [(0, 0.9)]
        assert httpx.get(f"{url}/api/runs/{name}").json()["status"] == "running"
        release.touch()
        wait_until(
            lambda: httpx.get(f"{url}/api/runs/{name}").json()["status"] == "succeeded", timeout=30, what="the end"
        )
        assert series() == [(0, 0.9), (1, 0.5), (2, 0.25)]
        outputs = httpx.get(f"{url}/api/runs/{name}/outputs").json()["outputs"]
        assert outputs == {"loss": 0.25}
        assert "posted 202" in httpx.get(f"{url}/api/runs/{name}/logs").text

        # The token: handed to the run, kept nowhere, shown nowhere.
        tokens = h.daemon.applier.run_tokens
        assert tokens is not None
        token = tokens.token(name)
        [run_dir] = (h.settings.data_dir / "local-runs").glob(f"*/{name}")
        kept = [p for p in run_dir.rglob("*") if p.is_file() and token.encode() in p.read_bytes()]
        assert kept == []
        assert token not in caplog.text
        for path in ("/api/runs", f"/api/runs/{name}", f"/api/runs/{name}/outputs", f"/api/runs/{name}/logs"):
            assert token not in httpx.get(url + path).text
        # Done: the run's own token reports nothing more.
        late = httpx.post(
            f"{url}/api/runs/{name}/metrics",
            json={"metrics": {"loss": 0.1}},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert late.status_code == 409 and series()[-1] == (2, 0.25)
