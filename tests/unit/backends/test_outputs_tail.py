"""Reading a run's outputs file as it grows: whole lines while it runs, the rest at its end."""

from __future__ import annotations

import json
import os
from pathlib import Path

from reconciler.backends.local.outputs import Mark, parse_outputs, read_new


def test_lines_are_read_as_they_come_and_a_half_line_waits(tmp_path: Path) -> None:
    path = tmp_path / "outputs.jsonl"
    path.write_text('{"loss": 0.9, "step": 3}\n{"name": "acc", "value": 0.5}\n{"loss": 0.')
    mark, found = read_new(path, Mark(), ended=False)
    assert found.points == [("loss", 3, 0.9), ("acc", None, 0.5)] and found.outputs == {"loss": 0.9, "acc": 0.5}
    again, nothing = read_new(path, mark, ended=False)
    assert again == mark and not nothing.points
    with path.open("a") as f:
        f.write('8}\n{"model": "s3://m", "epochs": 3, "ok": true}')
    mark, found = read_new(path, mark, ended=False)
    assert found.points == [("loss", None, 0.8)]
    mark, found = read_new(path, mark, ended=True)  # the run ended: its last line counts
    assert found.outputs == {"model": "s3://m", "epochs": 3, "ok": True} and found.points == [("epochs", None, 3.0)]
    assert mark.offset == path.stat().st_size


def test_a_rewritten_file_is_read_again_and_one_object_over_several_lines_is_one_report(tmp_path: Path) -> None:
    path = tmp_path / "outputs.jsonl"
    path.write_text('{"loss": 0.5}\n{"loss": 0.4}\n')
    mark, _ = read_new(path, Mark(), ended=False)
    path.write_text(json.dumps({"loss": 0.1, "acc": 0.9}, indent=2))  # longer than what was read
    assert path.stat().st_size > mark.offset
    _, found = read_new(path, mark, ended=True)
    assert found.outputs == {"loss": 0.1, "acc": 0.9}
    path.write_text('{"loss": 0.05}\n')  # shorter
    _, found = read_new(path, mark, ended=False)
    assert found.outputs == {"loss": 0.05}


def test_what_cannot_be_kept_is_left_out(tmp_path: Path) -> None:
    path = tmp_path / "outputs.jsonl"
    long = "x" * 300
    path.write_text(f'{{"{long}": 1, "nan": NaN, "ok": 1, "nested": {{"a": Infinity}}}}\n[1, 2]\nnot json\n')
    _, found = read_new(path, Mark(), ended=True)
    assert found.outputs == {"ok": 1} and found.points == [("ok", None, 1.0)]
    assert parse_outputs('{"loss": 0.3, "step": 2, "timestamp": "t"}') == {"loss": 0.3}


def test_a_symbolic_link_is_not_followed(tmp_path: Path) -> None:
    secret = tmp_path / "secret.json"
    secret.write_text('{"token": 1}\n')
    link = tmp_path / "outputs.jsonl"
    os.symlink(secret, link)
    assert read_new(link, Mark(), ended=True)[1].outputs == {}
