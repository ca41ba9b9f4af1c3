"""Two daemons, each with its own database, sharing one data dir: each sees only its own runs.

Run directories live under `local-runs/<instance>/`; runs an older release left directly in
`local-runs/` are claimed once, by the first daemon that starts, and never by the other."""

from __future__ import annotations

from pathlib import Path

from reconciler.backends.local import LocalBackend

from .local_backend_helpers import make_request, wait_until


def test_two_daemons_in_one_data_dir_start_together_and_keep_to_their_own_runs(tmp_path: Path) -> None:
    first = LocalBackend.in_data_dir(tmp_path, instance="aaaa", interval=0.05)
    second = LocalBackend.in_data_dir(tmp_path, instance="bbbb", interval=0.05)  # no "in use" error
    try:
        first.submit(make_request("train", "sleep 30"))
        wait_until(lambda: any(o.run == "train" and o.status == "running" for o in first.list_owned()))
        assert [o.run for o in second.list_owned()] == []
        second.delete("train")  # not its run: nothing happens
        second.stop("train")
        assert (tmp_path / "local-runs" / "aaaa" / "train").is_dir()
        assert [o.status for o in first.list_owned() if o.run == "train"] == ["running"]
        # The same run name in the other daemon (a fork of the repo) is its own run.
        second.submit(make_request("train", "echo fork"))
        wait_until(lambda: any(o.status == "succeeded" for o in second.list_owned()))
        assert [o.status for o in first.list_owned() if o.run == "train"] == ["running"]
    finally:
        for backend in (first, second):
            for owned in backend.list_owned():
                backend.delete(owned.run)
            backend.close()


def test_runs_of_an_older_release_are_claimed_by_the_first_daemon_only(tmp_path: Path) -> None:
    legacy = LocalBackend(tmp_path / "local-runs", interval=0.05)  # the pre-instance layout
    legacy.submit(make_request("old", "echo done"))
    wait_until(lambda: any(o.status == "succeeded" for o in legacy.list_owned()))
    legacy.close()
    claimer = LocalBackend.in_data_dir(tmp_path, instance="aaaa", interval=0.05)
    other = LocalBackend.in_data_dir(tmp_path, instance="bbbb", interval=0.05)
    try:
        assert [(o.run, o.status) for o in claimer.list_owned()] == [("old", "succeeded")]
        assert other.list_owned() == []
        assert (tmp_path / "local-runs" / "old" / "owner").read_text() == "aaaa"
        assert "done" in claimer.logs("old")
    finally:
        claimer.delete("old")
        claimer.close()
        other.close()
