"""compile_repo: files at a commit -> DesiredState, incremental, keeping last good state."""

from __future__ import annotations

import importlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.compile import CompileOptions, CompileResult, FileRole, compile_repo
from reconciler.model import Mode, OpKey
from reconciler.spec import Resolver, check, load

OPTIONS = CompileOptions(repo="demo", hub_dir="hub")

JOB = b"""\
version: 1.1
kind: operation
name: train
description: first version
run:
  kind: job
  container: {image: "python:3.11", command: [python, train.py]}
"""
SERVICE = b"""\
kind: operation
run:
  kind: service
  ports: [8080]
  container: {image: nginx}
"""
CRON = b"""\
kind: operation
schedule: {kind: cron, cron: "0 2 * * *"}
run: {kind: job, container: {image: busybox}}
"""
SUBSCRIBER = b"""\
kind: operation
name: notify
events: [{kinds: [run_status_succeeded], ref: ops.train}]
run: {kind: job, container: {image: busybox}}
"""
COMPONENT = b"""\
kind: component
name: trainer
inputs: [{name: lr, type: float}]
run: {kind: job, container: {image: "python:3.11", command: [python, "--lr={{ lr }}"]}}
"""
USER = b"""\
kind: operation
pathRef: ../lib/trainer.yaml
params: {lr: 0.1}
"""
HUB_USER = b"""\
kind: operation
hubRef: trainer:v1
params: {lr: 0.2}
"""
MANIFEST = b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n"
BROKEN = b"kind: operation\nrun: {kind: job, container: {imag: busybox}}\n"


def repo() -> dict[str, bytes]:
    return {
        "ops/train.yaml": JOB,
        "ops/web.yaml": SERVICE,
        "ops/nightly.yaml": CRON,
        "ops/notify.yaml": SUBSCRIBER,
        "lib/trainer.yaml": COMPONENT,
        "ops/tune.yaml": USER,
        "ops/hubbed.yaml": HUB_USER,
        "hub/trainer/v1.yaml": COMPONENT,
        "deploy/configmap.yaml": MANIFEST,
    }


def key(path: str, name: str) -> OpKey:
    return OpKey("demo", path, name)


def test_one_operation_per_file_with_mode_kind_and_hash() -> None:
    result = compile_repo(repo(), OPTIONS, "c1")
    desired = result.desired
    assert desired.fully_valid
    assert desired.commit == "c1"
    modes = {str(k): (op.kind, op.mode) for k, op in desired.ops.items()}
    assert modes == {
        "demo:ops/train.yaml#train": ("job", Mode.ONE_SHOT),
        "demo:ops/web.yaml#web": ("service", Mode.LONG_RUNNING),
        "demo:ops/nightly.yaml#nightly": ("job", Mode.SCHEDULED),
        "demo:ops/notify.yaml#notify": ("job", Mode.SUBSCRIBED),
        "demo:ops/tune.yaml#tune": ("job", Mode.ONE_SHOT),
        "demo:ops/hubbed.yaml#hubbed": ("job", Mode.ONE_SHOT),
    }
    assert desired.ops[key("ops/nightly.yaml", "nightly")].schedule == {"kind": "cron", "cron": "0 2 * * *"}
    assert desired.ops[key("ops/notify.yaml", "notify")].events[0]["ref"] == "ops.train"
    # Components (by kind, or under the hub dir) are library entries; other YAML is skipped.
    assert result.entries["lib/trainer.yaml"].role is FileRole.LIBRARY
    assert result.entries["hub/trainer/v1.yaml"].role is FileRole.LIBRARY
    assert result.entries["deploy/configmap.yaml"].role is FileRole.SKIPPED
    assert all(len(op.spec_hash) == 64 for op in desired.ops.values())


def test_spec_hash_ignores_cosmetic_fields_and_follows_referenced_components() -> None:
    first = compile_repo(repo(), OPTIONS, "c1").desired
    cosmetic = repo() | {"ops/train.yaml": JOB.replace(b"first version", b"second words")}
    second = compile_repo(cosmetic, OPTIONS, "c2").desired
    train = key("ops/train.yaml", "train")
    assert first.ops[train].spec_hash == second.ops[train].spec_hash
    changed = repo() | {"lib/trainer.yaml": COMPONENT.replace(b"python:3.11", b"python:3.12")}
    third = compile_repo(changed, OPTIONS, "c3").desired
    tune = key("ops/tune.yaml", "tune")
    assert third.ops[tune].spec_hash != first.ops[tune].spec_hash
    assert third.ops[train].spec_hash == first.ops[train].spec_hash


def test_invalid_file_keeps_last_good_state_and_is_located() -> None:
    good = compile_repo(repo(), OPTIONS, "c1")
    broken = compile_repo(repo() | {"ops/web.yaml": BROKEN}, OPTIONS, "c2", previous=good)
    web = key("ops/web.yaml", "web")
    assert broken.desired.kept == {web}
    assert broken.desired.ops[web] == good.desired.ops[web]
    assert not broken.desired.fully_valid
    (error,) = broken.desired.invalid["ops/web.yaml"].errors
    assert (error.path, error.line) == ("ops/web.yaml", 2)
    assert "imag" in error.message
    # Still broken at the next commit: still kept (from the kept state).
    again = compile_repo(repo() | {"ops/web.yaml": BROKEN}, OPTIONS, "c3", previous=broken)
    assert again.desired.kept == {web}
    # Without a previous state there is nothing to keep, but the file is still reported.
    cold = compile_repo(repo() | {"ops/web.yaml": BROKEN}, OPTIONS, "c2")
    assert web not in cold.desired.ops
    assert "ops/web.yaml" in cold.desired.invalid


def test_broken_component_invalidates_its_users_which_keep_their_state() -> None:
    good = compile_repo(repo(), OPTIONS, "c1")
    bad = compile_repo(repo() | {"lib/trainer.yaml": b"kind: component\nrun: [\n"}, OPTIONS, "c2", previous=good)
    assert set(bad.desired.invalid) == {"lib/trainer.yaml", "ops/tune.yaml"}
    assert bad.desired.kept == {key("ops/tune.yaml", "tune")}


def test_event_ref_to_a_missing_operation_is_an_error() -> None:
    files = repo()
    del files["ops/train.yaml"]
    desired = compile_repo(files, OPTIONS, "c1").desired
    (error,) = desired.invalid["ops/notify.yaml"].errors
    assert "ops.train" in error.message
    assert error.line == 3


def _same(a: CompileResult, b: CompileResult) -> None:
    """Incremental equals cold: the desired state exactly, the cache entries up to their commit."""
    assert a.desired == b.desired

    def entries(result: CompileResult) -> dict[str, object]:
        return {
            p: (e.role, e.errors, e.deps, e.op and (e.op.key, e.op.spec_hash, e.op.effective))
            for p, e in result.entries.items()
        }

    assert entries(a) == entries(b)
    assert a.dependents == b.dependents
    assert a.subscribers == b.subscribers


@pytest.mark.parametrize("with_changed", [True, False])
def test_incremental_recompiles_changed_files_and_their_users_only(with_changed: bool) -> None:
    first = compile_repo(repo(), OPTIONS, "c1")
    assert first.recompiled == set(repo())
    edits = {"lib/trainer.yaml": COMPONENT.replace(b"python:3.11", b"python:3.12")}
    files = repo() | edits
    second = compile_repo(files, OPTIONS, "c2", previous=first, changed=set(edits) if with_changed else None)
    assert second.recompiled == {"lib/trainer.yaml", "ops/tune.yaml"}
    _same(second, compile_repo(files, OPTIONS, "c2"))
    # Reused entries carry the new commit.
    assert second.desired.ops[key("ops/train.yaml", "train")].commit == "c2"


def test_incremental_handles_added_removed_and_missing_dependencies() -> None:
    files = repo()
    del files["lib/trainer.yaml"]
    first = compile_repo(files, OPTIONS, "c1")
    assert "ops/tune.yaml" in first.desired.invalid
    # The missing target appears: its would-be users are recompiled and become valid.
    second = compile_repo(repo(), OPTIONS, "c2", previous=first)
    assert second.recompiled == {"lib/trainer.yaml", "ops/tune.yaml"}
    assert "ops/tune.yaml" not in second.desired.invalid
    _same(second, compile_repo(repo(), OPTIONS, "c2"))
    # A file is deleted: its op is gone (a removal, not an invalid file).
    files = repo()
    del files["ops/web.yaml"]
    third = compile_repo(files, OPTIONS, "c3", previous=second)
    assert key("ops/web.yaml", "web") not in third.desired.ops
    assert third.desired.fully_valid
    _same(third, compile_repo(files, OPTIONS, "c3"))


def test_renamed_file_is_a_delete_plus_a_create() -> None:
    first = compile_repo(repo(), OPTIONS, "c1")
    files = repo()
    files["ops/service.yaml"] = files.pop("ops/web.yaml")
    second = compile_repo(files, OPTIONS, "c2", previous=first)
    assert key("ops/web.yaml", "web") not in second.desired.ops
    assert key("ops/service.yaml", "service") in second.desired.ops


def test_event_checks_are_redone_when_the_target_changes() -> None:
    first = compile_repo(repo(), OPTIONS, "c1")
    renamed = repo() | {"ops/train.yaml": JOB.replace(b"name: train", b"name: fit")}
    second = compile_repo(renamed, OPTIONS, "c2", previous=first, changed={"ops/train.yaml"})
    assert "ops/notify.yaml" not in second.recompiled
    assert "ops/notify.yaml" in second.desired.invalid
    assert second.desired.kept == {key("ops/notify.yaml", "notify")}


def test_previews_are_marked_by_glob() -> None:
    options = CompileOptions(repo="demo", hub_dir="hub", previews=("ops/web.*", "nightly"))
    desired = compile_repo(repo(), options, "c1").desired
    previews = {k.name for k, op in desired.ops.items() if op.preview}
    assert previews == {"web", "nightly"}


def test_a_shared_component_resolves_as_it_would_for_one_file_alone() -> None:
    """Referenced components are resolved once per compile and shared: every user still gets the
    operation, errors (a cycle names its own chain) and dependencies that resolving it alone,
    without any sharing, gives."""
    lib = {
        "lib/base.yaml": COMPONENT,
        "lib/wrapped.yaml": b"kind: component\nname: wrapped\npathRef: base.yaml\n",
        "lib/a.yaml": b"kind: component\nname: a\npathRef: b.yaml\n",
        "lib/b.yaml": b"kind: component\nname: b\npathRef: a.yaml\n",
    }
    ops = {
        "ops/1.yaml": b"kind: operation\npathRef: ../lib/wrapped.yaml\nparams: {lr: 0.1}\n",
        "ops/2.yaml": b"kind: operation\npathRef: ../lib/base.yaml\nparams: {lr: 0.2}\n",
        "ops/3.yaml": b"kind: operation\npathRef: ../lib/a.yaml\n",
        "ops/4.yaml": b"kind: operation\npathRef: ../lib/b.yaml\n",
        "ops/5.yaml": b"kind: operation\npathRef: ../lib/wrapped.yaml\nparams: {lr: 0.3}\n",
    }
    files = {**lib, **ops}
    together = compile_repo(files, OPTIONS, "c1")
    for path, data in ops.items():
        parsed = load(path, data)
        alone = Resolver(read=files.get)  # no sharing: every reference read and resolved again
        errors = alone.resolve(parsed)
        assert together.entries[path].deps == alone.touched - {path}
        if errors:
            assert together.desired.invalid[path].errors == tuple(errors)
            continue
        checked, problems = check(parsed)
        assert checked is not None and not problems
        op = together.desired.ops[key(path, path[4:-5])]
        assert op.effective == checked.effective
    assert set(together.desired.invalid) == {"lib/a.yaml", "lib/b.yaml", "ops/3.yaml", "ops/4.yaml"}
    again = compile_repo(files, OPTIONS, "c1")
    assert again.desired == together.desired  # nothing shared was modified by its users


# --- incremental == cold, over random edit sequences ------------------------------------------

LIB_VARIANTS = {
    "lib/base.yaml": [COMPONENT, COMPONENT.replace(b"3.11", b"3.12"), b"kind: component\nrun: [\n"],
    # A component that itself references the base: a two-level dependency.
    "lib/wrapped.yaml": [
        b"kind: component\nname: wrapped\npathRef: base.yaml\n",
        b"kind: component\nname: wrapped\npathRef: missing.yaml\n",
    ],
}
OP_VARIANTS = [
    b"kind: operation\npathRef: ../lib/base.yaml\nparams: {lr: 0.1}\n",
    b"kind: operation\npathRef: ../lib/wrapped.yaml\nparams: {lr: 0.2}\n",
    b"kind: operation\npathRef: ../lib/missing.yaml\n",
    JOB,
    SUBSCRIBER,
    BROKEN,
]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["lib/base.yaml", "lib/wrapped.yaml", "lib/missing.yaml", "ops/a.yaml", "ops/b.yaml"]),
            st.integers(0, 6),
        ),
        min_size=1,
        max_size=6,
    ),
    st.booleans(),
)
def test_incremental_equals_cold_over_random_edits(edits: list[tuple[str, int]], tell: bool) -> None:
    files: dict[str, bytes] = {"lib/base.yaml": COMPONENT, "ops/a.yaml": OP_VARIANTS[0]}
    result = compile_repo(files, OPTIONS, "c0")
    for n, (path, choice) in enumerate(edits, start=1):
        variants = LIB_VARIANTS.get(path, [COMPONENT] if path == "lib/missing.yaml" else OP_VARIANTS)
        if choice >= len(variants):
            files.pop(path, None)  # delete (or no-op when absent)
        else:
            files[path] = variants[choice]
        result = compile_repo(dict(files), OPTIONS, f"c{n}", previous=result, changed={path} if tell else None)
        cold = compile_repo(dict(files), OPTIONS, f"c{n}")
        assert result.desired.ops.keys() - result.desired.kept == cold.desired.ops.keys()
        assert result.desired.invalid == cold.desired.invalid
        assert {k: v for k, v in result.desired.ops.items() if k not in result.desired.kept} == cold.desired.ops
        assert result.dependents == cold.dependents


# `run: null` next to a component's run: this crashed compose with an AttributeError (found by
# comparing trees on mutated corpus files). Polyaxon 2.18's verdicts, strategy by strategy: the
# null wins where the operation's values win ("the resolved Polyaxonfile has no run"), and is
# ignored where the component's do.
RUN_NULL = b"""\
kind: operation
name: web
run: null
component:
  run: {kind: job, container: {image: busybox}}
"""


@pytest.mark.parametrize("strategy", [None, "replace", "post_merge"])
def test_null_run_over_a_component_is_a_located_error_not_a_crash(strategy: str | None) -> None:
    text = RUN_NULL if strategy is None else RUN_NULL + f"patchStrategy: {strategy}\n".encode()
    good = compile_repo(repo(), OPTIONS, "c1")
    broken = compile_repo(repo() | {"ops/web.yaml": text}, OPTIONS, "c2", previous=good)
    web = key("ops/web.yaml", "web")
    assert broken.desired.ops[web] == good.desired.ops[web], "the last good state is kept"
    (error,) = broken.desired.invalid["ops/web.yaml"].errors
    assert (error.path, error.line) == ("ops/web.yaml", 3)
    assert error.message.startswith("nothing to run: `run: null` replaces the component's run")


@pytest.mark.parametrize("strategy", ["isnull", "pre_merge"])
def test_null_run_is_ignored_where_the_component_wins(strategy: str) -> None:
    text = RUN_NULL + f"patchStrategy: {strategy}\n".encode()
    result = compile_repo(repo() | {"ops/web.yaml": text}, OPTIONS, "c1")
    assert not result.desired.invalid
    web = result.desired.ops[key("ops/web.yaml", "web")]
    assert web.effective["run"] == {"kind": "job", "container": {"image": "busybox"}}


def test_null_run_without_a_component_says_nothing_provides_one() -> None:
    text = b"kind: operation\nname: web\nrun: null\n"
    (error,) = compile_repo(repo() | {"ops/web.yaml": text}, OPTIONS, "c1").desired.invalid["ops/web.yaml"].errors
    assert error.message.startswith("nothing to run: no run section")


def test_a_compiler_bug_on_one_file_leaves_the_others_compiled(monkeypatch: pytest.MonkeyPatch) -> None:
    # Fault injection (the one stand-in here): compose fails on one file as the `run: null` bug
    # did. That file is invalid and keeps its last good state; every other file compiles.
    check_module = importlib.import_module("reconciler.spec.check")  # `reconciler.spec.check` is also a function
    real = check_module.compose

    def failing_on_web(spec, **kw):  # type: ignore[no-untyped-def]
        if spec.name == "web":
            raise AttributeError("'NoneType' object has no attribute 'get'")
        return real(spec, **kw)

    good = compile_repo(repo(), OPTIONS, "c1")
    monkeypatch.setattr(check_module, "compose", failing_on_web)
    named = SERVICE.replace(b"kind: operation\n", b"kind: operation\nname: web\n")
    result = compile_repo(repo() | {"ops/web.yaml": named}, OPTIONS, "c2", previous=good)
    (error,) = result.desired.invalid["ops/web.yaml"].errors
    assert error.path == "ops/web.yaml"
    assert "internal error while compiling this file (AttributeError)" in error.message
    assert set(result.desired.invalid) == {"ops/web.yaml"}
    assert result.desired.kept == {key("ops/web.yaml", "web")}
    assert key("ops/train.yaml", "train") in result.desired.ops
