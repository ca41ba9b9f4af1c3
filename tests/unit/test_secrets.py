"""Secrets come from files only other users cannot read, and are redacted from then on."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from reconciler.logs import redact
from reconciler.secrets import SecretMissing, read_secret, read_secret_file


def secret_file(tmp_path: Path, mode: int, value: str = "s3cret-from-file") -> Path:
    path = tmp_path / f"secret-{mode:o}"
    path.write_text(value + "\n")
    path.chmod(mode)
    return path


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_private_files_are_read_and_registered(tmp_path: Path, mode: int) -> None:
    value = f"private-{mode:o}-value"
    assert read_secret_file(secret_file(tmp_path, mode, value)) == value
    assert redact(f"x {value} y") == "x [REDACTED] y"


@pytest.mark.parametrize("mode", [0o644, 0o604, 0o602, 0o666, 0o601])
def test_files_other_users_can_touch_are_refused(tmp_path: Path, mode: int) -> None:
    path = secret_file(tmp_path, mode)
    with pytest.raises(SecretMissing, match=rf"accessible to other users \(mode 0{mode:o}\): chmod 600"):
        read_secret(path, None, "forge token")


def test_group_readable_is_a_warning_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = secret_file(tmp_path, 0o640, "group-readable-value")
    with caplog.at_level(logging.WARNING):
        assert read_secret_file(path) == "group-readable-value"
        read_secret_file(path)
    warning = f"secret file {path} is readable by its group (mode 0640); chmod 600 it"
    assert [r.getMessage() for r in caplog.records].count(warning) == 1


def test_missing_empty_and_both(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SecretMissing, match="cannot read"):
        read_secret(tmp_path / "absent", None, "t")
    with pytest.raises(SecretMissing, match="is empty"):
        read_secret(secret_file(tmp_path, 0o600, ""), None, "t")
    with pytest.raises(SecretMissing, match="not both"):
        read_secret(tmp_path / "x", "VAR", "t")
    monkeypatch.setenv("RECONCILER_TEST_SECRET", " from-env-value ")
    assert read_secret(None, "RECONCILER_TEST_SECRET", "t") == "from-env-value"
    assert "from-env-value" not in redact("from-env-value")
    assert read_secret(None, None, "t") is None
