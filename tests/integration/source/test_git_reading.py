"""Reading commits from the local copy: files at a commit, changes between commits, the repo config."""

from __future__ import annotations

import os

import pytest

from reconciler.errors import Located
from reconciler.repo_config import RepoFileConfig
from reconciler.source import ChangeSet, PermanentSourceError, SkippedFile


def test_changed_files_across_add_modify_delete_rename(remote, make_source) -> None:
    first = remote.commit({"ops/a.yaml": "a: 1\n", "ops/b.yaml": "b: 1\n", "ops/c.yaml": "c: 1\n"})
    remote.git("mv", "ops/c.yaml", "ops/renamed.yaml")
    second = remote.commit({"ops/a.yaml": "a: 2\n", "ops/b.yaml": None, "new.json": "{}"})
    source = make_source(remote.url)
    source.fetch()

    changes = source.changed_files(first, second)

    assert changes == ChangeSet(
        added=frozenset({"new.json", "ops/renamed.yaml"}),
        modified=frozenset({"ops/a.yaml"}),
        deleted=frozenset({"ops/b.yaml", "ops/c.yaml"}),
    )
    assert changes.only(lambda p: p.startswith("ops/")).paths == {
        "ops/a.yaml",
        "ops/b.yaml",
        "ops/c.yaml",
        "ops/renamed.yaml",
    }
    assert source.changed_files(second, second) == ChangeSet()
    assert not source.changed_files(second, second)


def test_changed_files_from_nothing_lists_every_file(remote, make_source) -> None:
    sha = remote.commit({"a.yaml": "x", "d/b.yml": "y"})
    source = make_source(remote.url)
    source.fetch()
    assert source.changed_files(None, sha) == ChangeSet(added=frozenset({"a.yaml", "d/b.yml"}))


def test_files_at_filters_with_globs_and_reports_what_it_skips(remote, make_source) -> None:
    big = b"x: " + b"0" * 2000 + b"\n"
    sha = remote.commit(
        {
            "train.yaml": "kind: operation\n",
            "ops/deep/serve.yml": "kind: operation\n",
            "ops/params.json": "{}",
            "README.md": "# not watched\n",
            ".github/workflows/ci.yml": "on: push\n",
            "ops/big.yaml": big,
            "vendor/lib.yaml": "ignored: true\n",
        }
    )
    os.symlink("train.yaml", remote.path / "link.yaml")
    remote.git("add", "link.yaml")
    sha = remote.commit({}, "add a symlink")
    source = make_source(remote.url)
    source.fetch()
    cfg = RepoFileConfig()

    got = source.files_at(sha, cfg.watch, ignore=[*cfg.ignore, "vendor/**"], max_bytes=1000)

    assert got.files == {
        "train.yaml": b"kind: operation\n",
        "ops/deep/serve.yml": b"kind: operation\n",
        "ops/params.json": b"{}",
    }
    assert set(got.skipped) == {
        SkippedFile("ops/big.yaml", len(big), "larger than 1000 bytes"),
        SkippedFile("link.yaml", len("train.yaml"), "symbolic link"),
    }
    # Without a limit override the adapter's default applies and the big file is read.
    assert "ops/big.yaml" in source.files_at(sha, ["ops/*.yaml"]).files


def test_files_at_reads_an_old_commit_without_checkout(remote, make_source) -> None:
    old = remote.commit({"a.yaml": "old\n"})
    remote.commit({"a.yaml": "new\n"})
    source = make_source(remote.url)
    source.fetch()
    assert source.files_at(old, ["*.yaml"]).files == {"a.yaml": b"old\n"}
    assert not (source.path / "a.yaml").exists()


def test_read_file_returns_bytes_or_none(remote, make_source) -> None:
    sha = remote.commit({"dir/a.yaml": "a\n"})
    source = make_source(remote.url)
    source.fetch()
    assert source.read_file(sha, "dir/a.yaml") == b"a\n"
    assert source.read_file(sha, "dir/missing.yaml") is None
    assert source.read_file(sha, "dir") is None  # a directory is not a file


def test_unknown_commit_is_a_permanent_error(remote, make_source) -> None:
    remote.commit({"a.yaml": "a\n"})
    source = make_source(remote.url)
    source.fetch()
    with pytest.raises(PermanentSourceError, match="not in the local copy"):
        source.files_at("0" * 40, ["**"])


def test_repo_config_defaults_when_missing_and_located_errors_when_bad(remote, make_source) -> None:
    plain = remote.commit({"a.yaml": "a\n"})
    good = remote.commit({".polyaxon-reconciler.yaml": "namespace: ml\nforce_push: allow\n"})
    bad = remote.commit({".polyaxon-reconciler.yaml": "namespace: ml\nbogus: 1\n"})
    source = make_source(remote.url)
    source.fetch()

    assert source.repo_config(plain) == RepoFileConfig()
    cfg = source.repo_config(good)
    assert isinstance(cfg, RepoFileConfig)
    assert (cfg.namespace, cfg.force_push) == ("ml", "allow")
    errors = source.repo_config(bad)
    assert isinstance(errors, list)
    assert [(e.line, e.column) for e in errors] == [(2, 1)]
    assert isinstance(errors[0], Located)
    assert str(errors[0]).startswith(".polyaxon-reconciler.yaml:2:1: unknown key 'bogus'")
