"""Structured logs (JSON or console), one line per event, with secrets redacted.

Secrets are redacted by value: the daemon registers every token and webhook secret it loads, and
the filter replaces them wherever they would appear (a URL in an exception, a header echoed by a
failing library), which is safer than trusting every call site to leave them out.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

_SECRETS: set[str] = set()
_LOCK = threading.Lock()
REDACTED = "[REDACTED]"

# Attributes every LogRecord has; anything else was passed with `extra=` and is structured data.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def register_secret(value: str | None) -> None:
    if value and len(value) >= 4:
        with _LOCK:
            _SECRETS.add(value)


def redact(text: str) -> str:
    with _LOCK:
        secrets = sorted(_SECRETS, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text


def redact_stream(chunks: Iterable[str]) -> Iterator[str]:
    """`chunks` of one text, redacted as a whole: a secret split across two chunks is caught too.

    Each redacted buffer keeps back its last (longest secret - 1) characters for the next one:
    no secret can then straddle what was already given out.
    """
    carry = ""
    for chunk in chunks:
        with _LOCK:
            keep = max((len(s) for s in _SECRETS), default=1) - 1
        text = redact(carry + chunk)
        cut = max(0, len(text) - keep)
        if cut:
            yield text[:cut]
        carry = text[cut:]
    if carry:
        yield redact(carry)


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            payload["error"] = self.formatException(record.exc_info)
        return redact(json.dumps(payload, default=str))


class ConsoleFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC).strftime("%H:%M:%S")
        extras = " ".join(f"{k}={v}" for k, v in _fields(record).items())
        line = f"{stamp} {record.levelname:<7} {record.getMessage()}" + (f"  {extras}" if extras else "")
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return redact(line)


def setup_logging(level: str = "info", fmt: str = "console", stream: Any = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else ConsoleFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for noisy in ("uvicorn.access", "git", "urllib3", "kubernetes", "alembic", "apscheduler", "httpx", "optuna"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
