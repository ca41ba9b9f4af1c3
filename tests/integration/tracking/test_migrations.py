"""Alembic migrations: from an empty database, from the previous revision, and readiness checks."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlmodel import SQLModel
from typer.testing import CliRunner

from reconciler.cli import app
from reconciler.statuses import CommitState
from reconciler.tracking import (
    DatabaseNotReady,
    Store,
    check_ready,
    create_engine_for,
    current_revision,
    ensure_ready,
    head_revision,
    upgrade,
)
from reconciler.tracking.migrate import VERSION_TABLE, _config, known_revisions
from tests.infra.postgres import PostgresServer

T0 = dt.datetime(2025, 1, 2, tzinfo=dt.UTC)


def schema_diff(url: str) -> list[object]:
    engine = create_engine_for(url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True, "version_table": VERSION_TABLE})
            return list(compare_metadata(ctx, SQLModel.metadata))
    finally:
        engine.dispose()


def test_revisions_form_one_line() -> None:
    assert known_revisions() == ("0001", "0002", "0003", "0004", "0005", "0006", "0007")
    assert head_revision() == "0007"
    # What the files' names say (read without alembic, for commands that only check the schema)
    # is alembic's own chain: each file's revision is its name's number and follows the last.
    script = ScriptDirectory.from_config(_config())
    assert list(known_revisions()) == [r.revision for r in reversed(list(script.walk_revisions()))]
    assert script.get_heads() == [head_revision()]


def test_a_read_only_command_checks_the_schema_without_alembic(db_url: str, tmp_path: Path) -> None:
    """`runs list` is a command people type: alembic's import (a sixth of its time) is for migrating."""
    upgrade(db_url)
    config = tmp_path / "r.yaml"
    config.write_text(f"database: {db_url}\n")
    probe = (
        "import sys; from reconciler.cli import main; sys.argv = ['reconciler', 'runs', 'list', '--config', "
        f"{str(config)!r}]\ntry:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "assert not [m for m in sys.modules if m.split('.')[0] == 'alembic'], 'alembic imported'"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_upgrade_from_empty_gives_exactly_the_models(db_url: str) -> None:
    assert current_revision(db_url) is None
    assert upgrade(db_url) == head_revision()
    assert schema_diff(db_url) == []
    check_ready(db_url)  # does not raise
    assert upgrade(db_url) == head_revision()  # a second upgrade is a no-op


def test_upgrade_from_the_previous_revision_keeps_data(db_url: str) -> None:
    assert upgrade(db_url, "0001") == "0001"
    engine = create_engine_for(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO commit_status_outbox (repo, sha, context, state, description, attempts,"
                    " next_attempt_at, created_at) VALUES ('r', 'c1', 'polyaxon/a', 'pending', 'queued', 2,"
                    " :t, :t)"
                ),
                {"t": T0.replace(tzinfo=None) if engine.dialect.name == "sqlite" else T0},
            )
    finally:
        engine.dispose()
    with pytest.raises(DatabaseNotReady, match="revision 0001"):
        check_ready(db_url)

    assert upgrade(db_url) == head_revision()
    assert schema_diff(db_url) == []
    store = Store.open(db_url)
    try:
        [row] = store.outbox()
        assert (row.sha, row.state, row.attempts, row.next_attempt_at) == ("c1", CommitState.PENDING, 2, T0)
        assert row.claimed_until is None and row.superseded_at is None
        [claimed] = store.claim_outbox(10, T0)  # the new columns work on migrated rows
        assert claimed.claimed_until is not None and claimed.attempts == 3
    finally:
        store.close()


def test_check_ready_names_the_command_on_an_empty_database(db_url: str) -> None:
    with pytest.raises(DatabaseNotReady) as info:
        check_ready(db_url)
    assert "reconciler db upgrade --config FILE" in str(info.value)
    assert info.value.current is None and info.value.head == head_revision()


def test_unknown_revision_says_the_reconciler_is_older(db_url: str) -> None:
    upgrade(db_url)
    engine = create_engine_for(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f"UPDATE {VERSION_TABLE} SET version_num = '9999'"))
    finally:
        engine.dispose()
    with pytest.raises(DatabaseNotReady, match="newer release"):
        check_ready(db_url)


def test_passwords_stay_out_of_messages() -> None:
    url = "postgresql://tracker:s3cret@127.0.0.1:1/nowhere"
    from reconciler.tracking import safe_url

    assert "s3cret" not in safe_url(url)


def test_ensure_ready_creates_only_a_brand_new_sqlite_file(tmp_path: Path) -> None:
    fresh = f"sqlite:///{tmp_path / 'data' / 'new.db'}"
    ensure_ready(fresh)  # first start: created and migrated
    assert current_revision(fresh) == head_revision()
    ensure_ready(fresh)  # second start: ready

    old = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(old, "0001")
    with pytest.raises(DatabaseNotReady, match="reconciler db upgrade --config FILE"):
        ensure_ready(old)
    assert current_revision(old) == "0001"  # never migrated implicitly

    foreign = tmp_path / "foreign.db"
    engine = create_engine_for(f"sqlite:///{foreign}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE something_else (x INTEGER)"))
    engine.dispose()
    with pytest.raises(DatabaseNotReady, match="no schema yet"):
        ensure_ready(f"sqlite:///{foreign}")


@pytest.mark.postgres
def test_ensure_ready_never_migrates_postgres(postgres_server: PostgresServer) -> None:
    name = postgres_server.create_database()
    url = postgres_server.url(name)
    try:
        with pytest.raises(DatabaseNotReady, match="reconciler db upgrade --config FILE"):
            ensure_ready(url)
        assert current_revision(url) is None
    finally:
        postgres_server.drop_database(name)


def test_cli_db_upgrade_and_current_with_db_url(db_url: str) -> None:
    runner = CliRunner()
    before = runner.invoke(app, ["db", "current", "--db", db_url])
    assert before.exit_code == 1 and "revision none" in before.stdout
    result = runner.invoke(app, ["db", "upgrade", "--db", db_url])
    assert result.exit_code == 0, result.output
    assert f"revision {head_revision()}" in result.stdout
    after = runner.invoke(app, ["db", "current", "--db", db_url])
    assert after.exit_code == 0 and f"revision {head_revision()}" in after.stdout


def test_cli_db_upgrade_reads_the_config_file(db_url: str, tmp_path: Path) -> None:
    config = tmp_path / "reconciler.yaml"
    config.write_text(f"database: '{db_url}'\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["db", "upgrade", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert current_revision(db_url) == head_revision()


def test_cli_db_rejects_config_and_db_together(tmp_path: Path) -> None:
    config = tmp_path / "reconciler.yaml"
    config.write_text("{}\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["db", "upgrade", "--config", str(config), "--db", "sqlite:///x.db"])
    assert result.exit_code != 0
    assert not (tmp_path / "x.db").exists()


def test_upgrade_from_0002_keeps_runs_and_adds_kind_spec_parent(db_url: str) -> None:
    assert upgrade(db_url, "0002") == "0002"
    engine = create_engine_for(db_url)
    t = T0.replace(tzinfo=None) if engine.dialect.name == "sqlite" else T0
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text("INSERT INTO repo (id, name, url, branch, created_at) VALUES (1, 'r', 'u', 'main', :t)"),
                {"t": t},
            )
            conn.execute(
                sa.text(
                    "INSERT INTO operation (id, op_key, repo_id, mode, updated_at) VALUES (1, 'r:a.yaml#a', 1,"
                    " 'one-shot', :t)"
                ),
                {"t": t},
            )
            conn.execute(
                sa.text(
                    "INSERT INTO run (name, uuid, operation_id, cause_kind, cause_id, spec_hash, backend, status,"
                    " created_at, updated_at) VALUES ('a-1', '00000000-0000-0000-0000-000000000001', 1, 'commit',"
                    " 'abc', 'h', 'local', 'running', :t, :t)"
                ),
                {"t": t},
            )
    finally:
        engine.dispose()
    assert upgrade(db_url) == head_revision()
    assert schema_diff(db_url) == []
    store = Store.open(db_url)
    try:
        run = store.run("a-1")
        assert run is not None and run.status == "running"
        assert (run.kind, run.spec, run.parent) == (None, None, None)
    finally:
        store.close()


def test_upgrade_from_0004_gives_each_run_its_own_cause_and_lets_a_state_repeat(db_url: str) -> None:
    """0005: `upstream` runs take the finer cause orchestration kept for them; the outbox takes a
    state that repeats (success -> failure -> success); removed ops and schedule zones get columns."""
    assert upgrade(db_url, "0004") == "0004"
    engine = create_engine_for(db_url)
    t = T0.replace(tzinfo=None) if engine.dialect.name == "sqlite" else T0
    runs = [  # name, cause kind in 0004, the orchestration row's cause (None: no row)
        ("c-1", "commit", None),
        ("e-1", "upstream", "event"),
        ("d-1", "upstream", "dag"),
        ("m-1", "upstream", "matrix"),
        ("h-1", "upstream", "hook"),
        ("u-1", "upstream", None),
        ("p-1", "preview", None),
    ]
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text("INSERT INTO repo (id, name, url, branch, created_at) VALUES (1, 'r', 'u', 'main', :t)"),
                {"t": t},
            )
            conn.execute(
                sa.text(
                    "INSERT INTO operation (id, op_key, repo_id, mode, updated_at) VALUES (1, 'r:a.yaml#a', 1,"
                    " 'one-shot', :t)"
                ),
                {"t": t},
            )
            for i, (name, kind, cause) in enumerate(runs, start=1):
                conn.execute(
                    sa.text(
                        "INSERT INTO run (id, name, uuid, operation_id, cause_kind, cause_id, spec_hash, backend,"
                        " status, created_at, updated_at) VALUES (:id, :name, :uuid, 1, :kind, :cid, 'h', 'local',"
                        " 'running', :t, :t)"
                    ),
                    {"id": i, "name": name, "uuid": f"00000000-0000-0000-0000-{i:012d}", "kind": kind,
                     "cid": name, "t": t},
                )  # fmt: skip
                if cause is not None:
                    conn.execute(
                        sa.text(
                            "INSERT INTO orchestrated_run (run_id, origin, cause, params, meta, namespace,"
                            " created_at) VALUES (:id, :cause, :cause, '{}', '{}', 'default', :t)"
                        ),
                        {"id": i, "cause": cause, "t": t},
                    )
            conn.execute(
                sa.text(
                    "INSERT INTO commit_status_outbox (repo, sha, context, state, attempts, next_attempt_at,"
                    " created_at, posted_at) VALUES ('r', 'c1', 'polyaxon/a', 'success', 1, :t, :t, :t)"
                ),
                {"t": t},
            )
    finally:
        engine.dispose()
    assert upgrade(db_url) == head_revision()
    assert schema_diff(db_url) == []
    store = Store.open(db_url)
    try:
        causes = {name: str(store.run(name).cause) for name, _, _ in runs}  # type: ignore[union-attr]
        assert causes == {
            "c-1": "commit",
            "e-1": "event",
            "d-1": "dag",
            "m-1": "matrix",
            "h-1": "hook",
            "u-1": "event",
            "p-1": "preview",
        }
        # success was posted; failure then success again are both queued, in order.
        assert store.enqueue_commit_status(repo="r", sha="c1", context="polyaxon/a", state=CommitState.FAILURE, now=T0)
        assert store.enqueue_commit_status(repo="r", sha="c1", context="polyaxon/a", state=CommitState.SUCCESS, now=T0)
        assert [str(r.state) for r in store.outbox("c1")] == ["success", "failure", "success"]
        [op] = store.operations("r")
        assert op.removed_at is None
        assert store.instance_id(T0) == store.instance_id(T0)
    finally:
        store.close()


def test_upgrade_from_0006_keeps_runs_and_adds_leases_and_handoffs(db_url: str) -> None:
    """0007: members, repo leases and hand-offs for replicas; what 0006 held stays as it was."""
    assert upgrade(db_url, "0006") == "0006"
    store = Store.open(db_url)
    try:
        instance = store.instance_id(T0)
        store.ensure_repo("r", "u", "main", T0)
    finally:
        store.close()
    assert upgrade(db_url) == head_revision()
    assert schema_diff(db_url) == []
    store = Store.open(db_url)
    try:
        assert store.instance_id(T0) == instance
        assert store.last_commit("r") is None
        row = store.hand_off("r", "push", {"sha": "abc"}, "replica-a", T0)
        [taken] = store.take_handoffs(["r"])
        assert (taken.id, taken.repo, taken.kind, taken.payload, taken.sender) == (
            row,
            "r",
            "push",
            {"sha": "abc"},
            "replica-a",
        )
        assert store.take_handoffs(["r"]) == []
    finally:
        store.close()
