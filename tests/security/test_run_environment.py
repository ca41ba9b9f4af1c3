"""Threat: an operation pushed to a watched repo reads the daemon's secrets.

The daemon gets planted secrets in every form it takes them (a token file, an environment
variable it loads, variables it does not even use); a job that prints its environment, tries
the token file, every process's environment, the data dir and the database shows none of them.
When the daemon is root (as here), the job runs as `nobody`; a loaded secret the repo itself
writes into the job's output is redacted in the logs the API serves.
"""

from __future__ import annotations

import os
import pwd
from pathlib import Path
from typing import Any

import yaml

from tests.e2e.harness import local_run_dir
from tests.infra.git_server import GitRepoFactory

from .conftest import secret_file

PLANTED = {
    "GITHUB_TOKEN": "ghp_PLANTED_github_token_0123456789",
    "AWS_SECRET_ACCESS_KEY": "PLANTED/aws+secret/key/abcdefghij",
    "GIT_TOKEN": "PLANTED-git-token-used-as-token_env",
}
API_TOKEN = "api-token-of-the-daemon-0123abcd"  # in a file: the grep below looks for PLANTED


def probe_op(token_file: Path, data_dir: Path, database: Path) -> str:
    script = f"""
echo "uid=$(id -u)"
echo "home=$HOME pwd=$(pwd)"
env | sort | sed 's/^/env: /'
if cat {token_file} >/dev/null 2>&1; then echo token-file=readable; else echo token-file=refused; fi
echo "environ-with-secrets=$(grep -l PLANTED /proc/[0-9]*/environ 2>/dev/null | wc -l)"
if ls {data_dir} >/dev/null 2>&1; then echo data-dir=listable; else echo data-dir=private; fi
if cat {database} >/dev/null 2>&1; then echo db=readable; else echo db=private; fi
echo "declared=$DECLARED"
"""
    doc: dict[str, Any] = {
        "version": 1.1,
        "kind": "operation",
        "name": "probe",
        "component": {
            "run": {
                "kind": "job",
                "container": {
                    "image": "busybox",
                    "command": ["/bin/sh", "-c", script],
                    # The repo itself writes a loaded secret into the job's output.
                    "env": [{"name": "DECLARED", "value": API_TOKEN}],
                },
            }
        },
    }
    return yaml.safe_dump(doc, sort_keys=False)


def test_a_job_printing_its_environment_shows_none_of_the_daemons_secrets(
    daemons: Any, git_repo_factory: GitRepoFactory, reachable: Path
) -> None:
    token_file = secret_file(reachable / "secrets" / "api-token", API_TOKEN)
    data_dir = reachable / "daemon" / "data"
    database = data_dir / "reconciler.db"
    git = git_repo_factory.create("models", {"ops/probe.yaml": probe_op(token_file, data_dir, database)})
    daemon = daemons(
        [{"name": "models", "url": git.file_url, "branch": "main", "interval": 1, "token_env": "GIT_TOKEN"}],
        f"sqlite:///{database}",
        extra={"local": {}, "server": {"token_file": str(token_file)}},
        env=PLANTED,
        token=API_TOKEN,
    ).start()
    run = daemon.wait_run("#probe", lambda r: r["status"] in ("succeeded", "failed"), "the probe job", timeout=90)
    assert database.exists()
    assert run["status"] == "succeeded", daemon.log_tail()
    answer = daemon.get(f"/api/runs/{run['name']}/logs")
    assert answer is not None and answer[0] == 200
    output = answer[1]
    lines = output.splitlines()

    for value in (*PLANTED.values(), API_TOKEN):
        assert value not in output, f"{value} leaked into the job's logs"
        assert value not in daemon.log_text(), f"{value} leaked into the daemon's log"
    names = sorted(line.split("=", 1)[0].removeprefix("env: ") for line in lines if line.startswith("env: "))
    # Exactly the built environment (plus what /bin/sh itself sets: PWD, SHLVL, _).
    assert set(names) - {"PWD", "SHLVL", "_", "OLDPWD"} == {
        "DECLARED", "HOME", "LANG", "PATH", "TZ",
        "POLYAXON_RUN_ARTIFACTS_PATH", "POLYAXON_RUN_NAME", "POLYAXON_RUN_OUTPUTS_PATH", "POLYAXON_RUN_UUID",
        # The run's own report token and where to report (README: reporting from a run).
        "POLYAXON_RUN_TOKEN", "POLYAXON_RECONCILER_URL",
    }  # fmt: skip
    assert "declared=[REDACTED]" in lines  # a loaded secret is redacted from run logs served by the API
    home = local_run_dir(data_dir, run["name"]) / "home"
    assert f"home={home} pwd={home}" in lines
    if os.geteuid() == 0:
        # Root daemon: the job is nobody, and nothing of the daemon's is within its reach.
        assert f"uid={pwd.getpwnam('nobody').pw_uid}" in lines
        assert {"token-file=refused", "environ-with-secrets=0", "data-dir=private", "db=private"} <= set(lines)
    else:
        assert f"uid={os.geteuid()}" in lines  # runs share the daemon's user (README: security model)
