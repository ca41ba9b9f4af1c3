"""Schedule previews, field diffs and the text/JSON report."""

from __future__ import annotations

from datetime import UTC, datetime

from reconciler.errors import Located
from reconciler.model import OpKey
from reconciler.plan import Action, ActionKind, field_diff, next_ticks, summary, to_json, to_text

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def iso(ticks: tuple[datetime, ...]) -> list[str]:
    return [t.isoformat() for t in ticks]


def test_cron_ticks_in_a_time_zone_include_now_and_respect_end_and_max_runs() -> None:
    assert iso(next_ticks({"kind": "cron", "cron": "0 12 * * *"}, NOW, 2)) == [
        "2024-06-01T12:00:00+00:00",
        "2024-06-02T12:00:00+00:00",
    ]
    paris = next_ticks({"kind": "cron", "cron": "0 9 * * *"}, NOW, 1, tz="Europe/Paris")
    assert iso(paris) == ["2024-06-02T09:00:00+02:00"]
    ended = {"kind": "cron", "cron": "0 * * * *", "endAt": "2024-06-01T13:30:00+00:00"}
    assert len(next_ticks(ended, NOW, 5)) == 2
    assert len(next_ticks({"kind": "cron", "cron": "* * * * *", "maxRuns": 2}, NOW, 5)) == 2


def test_interval_ticks_continue_from_start_at() -> None:
    schedule = {"kind": "interval", "frequency": "PT1H30M", "startAt": "2024-06-01T00:00:00"}
    assert iso(next_ticks(schedule, NOW, 3)) == [
        "2024-06-01T12:00:00+00:00",
        "2024-06-01T13:30:00+00:00",
        "2024-06-01T15:00:00+00:00",
    ]
    assert iso(next_ticks({"kind": "interval", "frequency": 600}, NOW, 2)) == [
        "2024-06-01T12:00:00+00:00",
        "2024-06-01T12:10:00+00:00",
    ]


def test_datetime_ticks_once_and_templates_have_no_preview() -> None:
    assert iso(next_ticks({"kind": "datetime", "startAt": "2024-07-01T08:00:00Z"}, NOW)) == [
        "2024-07-01T08:00:00+00:00"
    ]
    assert next_ticks({"kind": "datetime", "startAt": "2024-01-01T08:00:00Z"}, NOW) == ()
    assert next_ticks({"kind": "interval", "frequency": "{{ params.every }}"}, NOW) == ()


def test_field_diff_lists_leaf_changes_and_skips_cosmetic_fields() -> None:
    old = {"description": "a", "run": {"kind": "service", "ports": [80], "container": {"image": "x:1"}}}
    new = {
        "description": "b",
        "run": {"kind": "service", "ports": [80, 443], "container": {"image": "x:2", "args": ["-v"]}},
    }
    assert [str(c) for c in field_diff(old, new)] == [
        '+ run.container.args: ["-v"]',
        '~ run.container.image: "x:1" -> "x:2"',
        "~ run.ports: [80] -> [80,443]",
    ]


def test_text_and_json_reports() -> None:
    key = OpKey("r", "ops/a.yaml", "a")
    bad = Located("ops/b.yaml", 4, 2, "unknown field 'x'")
    actions = [
        Action(ActionKind.INVALID, OpKey("r", "ops/b.yaml", "b"), "file", str(bad), errors=(bad,)),
        Action(ActionKind.REGISTER_SCHEDULE, key, "job", "new cron schedule", ticks=(NOW,)),
        Action(ActionKind.NOOP, OpKey("r", "ops/c.yaml", "c"), "job", "in sync"),
    ]
    text = to_text(actions)
    assert text.splitlines() == [
        "! invalid ops/b.yaml:4:2: unknown field 'x'",
        "+ schedule r:ops/a.yaml#a (job): new cron schedule",
        "    next: 2024-06-01T12:00:00+00:00",
        summary(actions),
    ]
    assert "1 schedule change(s)" in summary(actions) and "1 unchanged" in summary(actions)
    assert "noop" in to_text(actions, verbose=True)
    report = to_json("abc", actions)
    assert report["errors"] == [{"path": "ops/b.yaml", "line": 4, "column": 2, "message": "unknown field 'x'"}]
    assert report["actions"][1] == {
        "action": "register_schedule",
        "op": "r:ops/a.yaml#a",
        "kind": "job",
        "reason": "new cron schedule",
        "ticks": ["2024-06-01T12:00:00+00:00"],
    }


def test_update_lines_show_the_field_diff_and_deletes_their_target() -> None:
    web = OpKey("r", "ops/web.yaml", "web")
    diff = field_diff({"run": {"image": "nginx:1"}}, {"run": {"image": "nginx:2"}})
    actions = [
        Action(ActionKind.UPDATE, web, "service", "spec changed: update web-1 in place", target="web-1", diff=diff),
        Action(ActionKind.DELETE, OpKey("r", "ops/old.yaml", "old"), "service", "removed from Git", target="old-1"),
    ]
    assert to_text(actions).splitlines() == [
        "~ update r:ops/web.yaml#web (service) [web-1]: spec changed: update web-1 in place",
        '    ~ run.image: "nginx:1" -> "nginx:2"',
        "- delete r:ops/old.yaml#old (service) [old-1]: removed from Git",
        summary(actions),
    ]
    assert summary(actions).startswith("Plan: 0 to create, 1 to update, 1 to stop/delete/prune,")
    assert to_json("c", actions)["actions"][0]["diff"] == [{"path": "run.image", "old": "nginx:1", "new": "nginx:2"}]
