"""Logs are structured, and secrets never reach them."""

from __future__ import annotations

import io
import json
import logging

from reconciler.logs import register_secret, setup_logging


def test_json_lines_with_fields_and_redaction() -> None:
    stream = io.StringIO()
    setup_logging("info", "json", stream)
    register_secret("ghp_supersecret123")
    logging.getLogger("reconciler.test").info(
        "fetch failed for https://x:ghp_supersecret123@git.example/r.git", extra={"repo": "examples", "actions": 3}
    )
    row = json.loads(stream.getvalue().strip().splitlines()[-1])
    assert row["repo"] == "examples" and row["actions"] == 3 and row["level"] == "info"
    assert "ghp_supersecret123" not in stream.getvalue()
    assert "[REDACTED]" in row["message"]


def test_console_format_shows_fields() -> None:
    stream = io.StringIO()
    setup_logging("debug", "console", stream)
    logging.getLogger("reconciler.test").debug("reconciled", extra={"repo": "r", "commit": "abc"})
    assert "reconciled  repo=r commit=abc" in stream.getvalue()
