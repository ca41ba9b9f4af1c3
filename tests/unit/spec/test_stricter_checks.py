"""Checks beyond Polyaxon, which accepts these: cron syntax, event refs, interval and window."""

from __future__ import annotations

import textwrap
from pathlib import Path

from reconciler.spec import load, validate_paths


def first_error(text: str) -> str:
    result = load("op.yaml", textwrap.dedent(text))
    assert result.spec is None and result.errors
    return str(result.errors[0])


OP = "kind: operation\nhubRef: x\n"


def test_invalid_cron_is_located() -> None:
    message = first_error(OP + "schedule:\n  kind: cron\n  cron: '61 * * * *'\n")
    assert message.startswith("op.yaml:5:9:")
    assert "invalid cron expression" in message


def test_interval_frequency_must_be_positive() -> None:
    assert "positive" in first_error(OP + "schedule: {kind: interval, frequency: 0}\n")


def test_end_at_after_start_at() -> None:
    message = first_error(
        OP + "schedule: {kind: cron, cron: '0 * * * *', startAt: 2026-01-02T00:00:00Z, endAt: 2026-01-01T00:00:00Z}\n"
    )
    assert "endAt" in message and "after startAt" in message


def write(root: Path, name: str, text: str) -> str:
    path = root / name
    path.write_text(textwrap.dedent(text))
    return str(path)


JOB = """\
kind: operation
name: {name}
component:
  run: {{kind: job, container: {{image: x}}}}
"""


def test_event_ref_must_name_an_existing_op(tmp_path: Path) -> None:
    write(tmp_path, "train.yaml", JOB.format(name="train"))
    path = write(
        tmp_path,
        "evaluate.yaml",
        JOB.format(name="evaluate") + "events:\n- kinds: [run_status_succeeded]\n  ref: ops.trian\n",
    )
    results = {r.path: r for r in validate_paths([str(tmp_path)])}
    assert results[str(tmp_path / "train.yaml")].valid
    [error] = results[path].errors
    assert (error.line, error.column) == (7, 8)
    assert "ops.trian" in error.message


def test_event_subscription_cycle(tmp_path: Path) -> None:
    sub = "events:\n- kinds: [run_status_succeeded]\n  ref: ops.{other}\n"
    write(tmp_path, "a.yaml", JOB.format(name="a") + sub.format(other="b"))
    write(tmp_path, "b.yaml", JOB.format(name="b") + sub.format(other="a"))
    results = validate_paths([str(tmp_path)])
    messages = [str(e) for r in results for e in r.errors]
    assert any("cycle" in m for m in messages), messages


def test_event_chain_is_valid(tmp_path: Path) -> None:
    sub = "events:\n- kinds: [run_status_succeeded]\n  ref: ops.{other}\n"
    write(tmp_path, "a.yaml", JOB.format(name="a"))
    write(tmp_path, "b.yaml", JOB.format(name="b") + sub.format(other="a"))
    write(tmp_path, "c.yaml", JOB.format(name="c") + sub.format(other="b"))
    assert all(r.valid for r in validate_paths([str(tmp_path)]))
