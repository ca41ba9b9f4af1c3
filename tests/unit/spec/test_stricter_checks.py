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


SUBSCRIBER = JOB.format(name="evaluate") + "events:\n- kinds: [run_status_succeeded]\n  ref: ops.train\n"


def test_event_ref_to_an_op_in_a_file_not_given_is_a_warning_naming_it(tmp_path: Path) -> None:
    # `validate FILE`: `train` may live in a file of the repo that was not named.
    path = write(tmp_path, "evaluate.yaml", SUBSCRIBER)
    [result] = validate_paths([path])
    assert result.valid
    [warning] = result.warnings
    assert (warning.line, warning.column) == (7, 8)
    assert "'train'" in warning.message and "not checked" in warning.message


def test_event_ref_to_an_op_in_another_named_file_is_checked(tmp_path: Path) -> None:
    path = write(tmp_path, "evaluate.yaml", SUBSCRIBER)
    other = write(tmp_path, "train.yaml", JOB.format(name="train"))
    results = validate_paths([path, other])
    assert all(r.valid and not r.warnings for r in results)


def test_event_ref_is_an_error_when_the_whole_repo_is_given(tmp_path: Path) -> None:
    # `validate DIR`, and the daemon and `plan`, which compile the whole repository.
    write(tmp_path, "evaluate.yaml", SUBSCRIBER)
    [result] = validate_paths([str(tmp_path)])
    assert not result.valid and not result.warnings
    assert "ops.train" in result.errors[0].message


def test_whole_repo_compile_keeps_the_error() -> None:
    from reconciler.spec import Resolver, check_event_refs, validate_file

    result = validate_file("evaluate.yaml", textwrap.dedent(SUBSCRIBER).encode(), Resolver())
    check_event_refs([result])
    assert not result.valid
    assert "names no operation in this repository" in result.errors[0].message


def test_event_ref_forms_other_than_ops_and_runs_stay_errors(tmp_path: Path) -> None:
    path = write(tmp_path, "evaluate.yaml", SUBSCRIBER.replace("ops.train", "train"))
    [result] = validate_paths([path])
    assert not result.valid
    assert "must be ops.<name> or runs.<uuid>" in result.errors[0].message
