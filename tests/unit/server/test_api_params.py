"""Query parameters are checked before anything is read: each bad one a clear 400."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from reconciler.server.api import BadParameter, integer, query, status, text


def request(qs: str) -> Request:
    return Request({"type": "http", "method": "GET", "path": "/api/runs", "query_string": qs.encode(), "headers": []})


@pytest.mark.parametrize(
    ("qs", "expected"),
    [
        ("", 100),
        ("limit=5", 5),
        ("limit=0", 1),
        ("limit=-1", 1),
        ("limit=1000", 1000),
        ("limit=99999999999999999999", 1000),
        ("limit=-99999999999999999999", 1),
        ("limit=+7", 7),
        ("limit=" + "9" * 5000, 1000),  # no int() of a 5000-digit string
    ],
)
def test_limit_is_clamped(qs: str, expected: int) -> None:
    assert integer(query(request(qs), ("limit",)), "limit", 100, 1, 1000) == expected


@pytest.mark.parametrize(
    ("qs", "allowed", "message"),
    [
        ("limit=abc", ("limit",), "limit: must be an integer, got 'abc'"),
        ("limit=1.5", ("limit",), "limit: must be an integer"),
        ("limit=", ("limit",), "limit: must be an integer"),
        ("limit=1&limit=2", ("limit",), "limit: given more than once"),
        ("limt=1", ("limit",), "unknown query parameter 'limt' (allowed: limit)"),
        ("x=1", (), "unknown query parameter 'x' (allowed: none)"),
    ],
)
def test_bad_parameters_say_which_and_why(qs: str, allowed: tuple[str, ...], message: str) -> None:
    with pytest.raises(BadParameter) as caught:
        integer(query(request(qs), allowed), "limit", 100, 1, 1000)
    assert str(caught.value).startswith(message)


def test_status_and_text() -> None:
    assert status({"status": "running"}) == "running"
    with pytest.raises(BadParameter, match="status: not a run status: 'bogus'"):
        status({"status": "bogus"})
    assert text({"repo": "models"}, "repo") == "models"
    with pytest.raises(BadParameter, match="repo: must be 1 to 255 characters"):
        text({"repo": "x" * 256}, "repo")
    with pytest.raises(BadParameter):
        text({"repo": ""}, "repo")
