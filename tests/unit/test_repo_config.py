"""The per-repo config file: defaults, a full valid file, and every kind of bad file, located."""

from __future__ import annotations

import pytest

from reconciler.errors import Located
from reconciler.repo_config import FILENAME, PrunePolicy, RepoFileConfig, parse


def errors_of(text: str) -> list[tuple[int | None, int | None, str]]:
    result = parse(text.encode())
    assert isinstance(result, list), result
    assert all(isinstance(e, Located) and e.path == FILENAME and e.stage == "repo-config" for e in result)
    return [(e.line, e.column, e.message) for e in result]


@pytest.mark.parametrize("data", [None, b"", b"# nothing configured yet\n", b"---\n"])
def test_missing_or_empty_file_gives_defaults(data) -> None:
    cfg = parse(data)
    assert cfg == RepoFileConfig()
    assert isinstance(cfg, RepoFileConfig)
    assert cfg.watch == ["**/*.yaml", "**/*.yml", "**/*.json"]
    # No namespace: the daemon's (`kubernetes.namespace`), not Kubernetes' `default`.
    assert (cfg.namespace, cfg.force_push, cfg.timezone, cfg.self_heal) == (None, "reject", "UTC", True)
    assert cfg.namespace_or("polyaxon-reconciler") == "polyaxon-reconciler"
    assert (cfg.hub_dir, cfg.project, cfg.previews) == (None, None, [])


def test_prune_defaults_are_on_only_for_long_running_kinds() -> None:
    on = {k for k in PrunePolicy.model_fields if PrunePolicy().allows(k)}
    assert on == {"service", "raycluster", "daskcluster"}
    assert len(PrunePolicy.model_fields) == 14
    assert not PrunePolicy().allows("paddlejob")  # unknown kinds are never pruned


def test_full_valid_file() -> None:
    cfg = parse(
        b"""\
watch: ["ops/**/*.yaml", "ops/**/*.yml"]
ignore: ["ops/drafts/**"]
hub_dir: components/
project: acme/vision
namespace: ml-team
prune:
  job: true
  service: false
force_push: allow
timezone: Europe/Paris
self_heal: false
previews: ["train-*", smoke]
"""
    )
    assert isinstance(cfg, RepoFileConfig)
    assert cfg.hub_dir == "components"
    assert (cfg.project, cfg.namespace, cfg.force_push, cfg.timezone) == (
        "acme/vision",
        "ml-team",
        "allow",
        "Europe/Paris",
    )
    assert cfg.prune.allows("job") and not cfg.prune.allows("service") and cfg.prune.allows("raycluster")
    assert not cfg.self_heal
    assert cfg.watches("ops/a/train.yaml")
    assert not cfg.watches("ops/drafts/wip.yaml")
    assert not cfg.watches("README.md")
    assert cfg.previewed("train-resnet") and cfg.previewed("smoke") and not cfg.previewed("serve")


def test_default_watch_skips_hidden_files_and_the_config_itself() -> None:
    cfg = RepoFileConfig()
    assert cfg.watches("train.yaml") and cfg.watches("a/b/c.json")
    assert not cfg.watches(FILENAME)
    assert not cfg.watches(".github/workflows/ci.yml")
    assert not cfg.watches("ops/.secret.yaml")


def test_unknown_keys_point_at_the_key() -> None:
    assert errors_of("namespace: ml\nwatchh: []\nprune:\n  jobs: true\n") == [
        (2, 1, "unknown key 'watchh' (allowed: watch, ignore, hub_dir, project, namespace, prune, "
         "force_push, timezone, self_heal, previews, previews_from_forks, previews_require_label, schedules)"),
        (4, 3, "unknown key 'jobs' (allowed: job, service, dag, matrix, tfjob, pytorchjob, mpijob, "
         "mxjob, xgbjob, rayjob, raycluster, daskjob, daskcluster, sparkjob)"),
    ]  # fmt: skip


def test_bad_values_point_at_the_value() -> None:
    text = """\
namespace: Not_A_Namespace
force_push: sometimes
timezone: Mars/Olympus
self_heal: "yes"
prune:
  service: 1
"""
    assert errors_of(text) == [
        (1, 12, "namespace: 'Not_A_Namespace' is not a Kubernetes namespace name (DNS-1123 label, at most 63 chars)"),
        (2, 13, "force_push: Input should be 'reject' or 'allow'"),
        (3, 11, "timezone: 'Mars/Olympus' is not an IANA time zone name (e.g. 'UTC', 'Europe/Paris')"),
        (4, 12, "self_heal: Input should be a valid boolean"),
        (6, 12, "prune.service: Input should be a valid boolean"),
    ]


def test_bad_list_items_point_at_the_item() -> None:
    text = 'watch:\n  - "ops/**"\n  - "/abs/*.yaml"\npreviews: [ok, "a/b"]\nhub_dir: "../up"\n'
    assert errors_of(text) == [
        (3, 5, "watch[1]: glob '/abs/*.yaml' must be relative to the repo root (no leading '/')"),
        (4, 16, "previews[1]: 'a/b' must be an operation name or a glob over names (no '/')"),
        (5, 10, "hub_dir: '../up' must be a relative directory path inside the repo (no globs, no '..')"),
    ]


def test_wrong_types() -> None:
    assert errors_of("watch: ops/**\n") == [(1, 8, "watch: Input should be a valid list")]
    assert errors_of("- a\n- b\n") == [(1, 1, "the repo config must be a mapping of keys to values")]
    assert errors_of("prune: true\n")[0][:2] == (1, 8)


def test_tabs_are_refused_with_their_line() -> None:
    assert errors_of("prune:\n\tjob: true\n") == [(2, 1, "tabs are not allowed for indentation; use spaces")]


def test_duplicate_keys_are_refused_at_the_second_one() -> None:
    assert errors_of("namespace: a\nself_heal: true\nnamespace: b\n") == [
        (3, 1, "duplicate key 'namespace' (first defined on line 1)")
    ]


def test_several_documents_are_refused() -> None:
    assert errors_of("namespace: a\n---\nnamespace: b\n") == [
        (3, 1, "more than one YAML document; a file holds exactly one")
    ]


def test_invalid_yaml_is_located() -> None:
    (line, _col, message), *_ = errors_of("namespace: [a\nproject: b\n")
    assert line == 2 and "expected" in message


def test_errors_render_as_file_line_column() -> None:
    result = parse(b"bogus: 1\n")
    assert isinstance(result, list)
    assert str(result[0]).startswith(".polyaxon-reconciler.yaml:1:1: unknown key 'bogus'")


def test_errors_use_the_given_path() -> None:
    result = parse(b"bogus: 1\n", path="sub/.polyaxon-reconciler.yaml")
    assert isinstance(result, list) and result[0].path == "sub/.polyaxon-reconciler.yaml"


def test_a_namespace_outside_the_daemons_is_a_located_error() -> None:
    allowed = ("polyaxon-reconciler", "ml")
    text = b"project: p\nnamespace: kube-system\n"
    [error] = parse(text, namespaces=allowed)  # type: ignore[misc]
    assert (error.path, error.line, error.column) == (FILENAME, 2, 12)
    assert error.message == (
        "namespace: 'kube-system' is not allowed: this reconciler may use ml, polyaxon-reconciler "
        "(its settings' kubernetes.namespace and kubernetes.namespaces)"
    )
    ok = parse(b"namespace: ml\n", namespaces=allowed)
    assert isinstance(ok, RepoFileConfig) and ok.namespace_or("polyaxon-reconciler") == "ml"
    # No list (the local backend): any valid name, since runs have no namespace there.
    assert isinstance(parse(text), RepoFileConfig)
    # An attacker's repo cannot reach a namespace through an empty list either.
    assert isinstance(parse(b"namespace: ml\n", namespaces=()), list)
