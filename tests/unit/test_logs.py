"""Logs are structured, and secrets never reach them."""

from __future__ import annotations

import io
import itertools
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


def test_a_stream_is_redacted_whole_even_where_a_secret_spans_two_chunks() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from reconciler.logs import redact_stream

    secret = "streamed-s3cret-value"
    register_secret(secret)
    register_secret("tiny")
    text = f"start {secret} middle {secret}{secret} tiny end {secret}"

    @settings(max_examples=200, deadline=None)
    @given(st.lists(st.integers(min_value=0, max_value=len(text)), max_size=12))
    def split_anywhere(cuts: list[int]) -> None:
        points = [0, *sorted(cuts), len(text)]
        chunks = [text[a:b] for a, b in itertools.pairwise(points)]
        out = "".join(redact_stream(chunks))
        assert secret not in out and "tiny" not in out
        assert out == "start [REDACTED] middle [REDACTED][REDACTED] [REDACTED] end [REDACTED]"

    split_anywhere()
