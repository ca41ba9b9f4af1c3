"""Repos, the commits seen on them and the operations they declare."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Boolean, String, and_, bindparam, case, func, null, or_, select, update
from sqlalchemy.orm import Session, defer

from reconciler.model import OpKey
from reconciler.tracking.coltypes import UTCDateTime
from reconciler.tracking.db import Database, table
from reconciler.tracking.errors import NotFound
from reconciler.tracking.tables_runs import (
    GitCommit,
    Operation,
    Repo,
)

_t = table


@dataclass(frozen=True)
class OperationRow:
    """An operation as compiled at a commit (`record_operations`): valid with its spec hash, or
    invalid (its last good spec is kept, safety rule 1)."""

    op_key: str
    mode: str
    spec_hash: str | None = None
    commit_sha: str | None = None
    valid: bool = True


def _changed(row: OperationRow, held: Any) -> bool:
    """Whether recording `row` changes what the database holds (`held`: its row, or None)."""
    if held is None or held.mode != row.mode or held.removed_at is not None:
        return True
    if not row.valid:
        return held.invalid_since is None
    return held.invalid_since is not None or (row.spec_hash is not None and held.last_good_spec_hash != row.spec_hash)


def _record_operation_statement() -> Any:
    """One operation's row as `upsert_operation` describes it, in SQL (so a batch is one
    executemany): valid sets the last good spec (when given) and clears the invalid mark;
    invalid keeps the last good spec, sets `invalid_since` once and names the commit."""
    o = _t(Operation).c
    valid = bindparam("b_valid", type_=Boolean())
    good = bindparam("b_good", type_=Boolean())
    at = bindparam("b_at", type_=UTCDateTime())
    commit = bindparam("b_commit", type_=String())
    return (
        update(_t(Operation))
        .where(o.op_key == bindparam("b_key"))
        .values(
            mode=bindparam("b_mode"),
            updated_at=at,
            removed_at=None,
            last_good_spec_hash=case((good, bindparam("b_spec", type_=String())), else_=o.last_good_spec_hash),
            last_good_commit_sha=case((good, commit), else_=o.last_good_commit_sha),
            invalid_since=case((valid, null()), else_=func.coalesce(o.invalid_since, at)),
            invalid_commit_sha=case((valid, null()), else_=commit),
        )
    )


_RECORD_OPERATION = _record_operation_statement()


class ReposMixin(Database):
    def ensure_repo(self, name: str, url: str, branch: str, now: dt.datetime, session: Session | None = None) -> Repo:
        with self._tx(session) as s:
            self.insert_ignore(s, Repo, {"name": name, "url": url, "branch": branch, "created_at": now}, ["name"])
            repo = s.execute(select(Repo).where(_t(Repo).c.name == name).with_for_update()).scalar_one()
            repo.url, repo.branch = url, branch
            s.add(repo)
            s.flush()
            return repo

    def _repo_id(self, s: Session, name: str) -> int:
        repo_id = s.execute(select(_t(Repo).c.id).where(_t(Repo).c.name == name)).scalar_one_or_none()
        if repo_id is None:
            raise NotFound(f"repo {name!r} is not tracked")
        return int(repo_id)

    def record_commit(
        self,
        repo: str,
        sha: str,
        branch: str,
        committed_at: dt.datetime,
        now: dt.datetime,
        *,
        valid: bool | None = None,
        errors: Iterable[Mapping[str, Any]] = (),
        plan: Iterable[Mapping[str, Any]] | None = None,
        session: Session | None = None,
    ) -> GitCommit:
        """Record a commit seen on `branch`; a later call with a validation result updates it.

        `errors` are located errors, `{"file": ..., "line": ..., "message": ...}` each. `plan` is
        what the reconcile that applied the commit decided: kept from the first reconcile that
        gives one (later reconciles of the same commit change little and would hide it). The plan
        held is never read here, and `plan` is iterated only when it is kept (one row per
        operation: 10,000 of them would be read and built at every reconcile otherwise); the
        commit returned has its plan deferred.
        """
        error_list = [dict(e) for e in errors]
        with self._tx(session) as s:
            repo_id = self._repo_id(s, repo)
            self.insert_ignore(
                s,
                GitCommit,
                {
                    "repo_id": repo_id,
                    "sha": sha,
                    "branch": branch,
                    "committed_at": committed_at,
                    "recorded_at": now,
                    "valid": valid,
                    "errors": error_list,
                },
                ["repo_id", "sha"],
            )
            c = _t(GitCommit).c
            commit: GitCommit
            commit, planless = s.execute(
                select(GitCommit, c.plan.is_(None))
                .options(defer(GitCommit.plan))  # type: ignore[arg-type]
                .where(c.repo_id == repo_id, c.sha == sha)
                .with_for_update()
            ).one()
            if valid is not None:
                # Applying a commit again (a force-push back to it) makes it the last applied.
                commit.valid, commit.errors, commit.recorded_at = valid, error_list, now
                if plan is not None and planless:
                    commit.plan = [dict(p) for p in plan]
                s.add(commit)
                s.flush()
            return commit

    def repos(self, session: Session | None = None) -> list[Repo]:
        with self._read(session) as s:
            return list(s.execute(select(Repo).order_by(_t(Repo).c.name)).scalars())

    def commits(
        self,
        repo: str,
        *,
        since: dt.datetime | None = None,
        valid: bool | None = None,
        before: tuple[dt.datetime, int] | None = None,
        limit: int | None = None,
        session: Session | None = None,
    ) -> list[GitCommit]:
        """The repo's commits, most recently recorded first; `before` (recorded_at, id) pages."""
        c = _t(GitCommit).c
        stmt = (
            select(GitCommit)
            .join(Repo)
            .where(_t(Repo).c.name == repo)
            .order_by(c.recorded_at.desc(), c.id.desc())
            .limit(limit)
        )
        if since is not None:
            stmt = stmt.where(c.recorded_at >= since)
        if valid is not None:
            stmt = stmt.where(c.valid.is_(valid))
        if before is not None:
            at, commit_id = before
            stmt = stmt.where(or_(c.recorded_at < at, and_(c.recorded_at == at, c.id < commit_id)))
        with self._read(session) as s:
            return list(s.execute(stmt).scalars())

    def commit_by_prefix(self, repo: str, prefix: str, session: Session | None = None) -> list[GitCommit]:
        """Commits of `repo` whose sha starts with `prefix` (at most two: one is a match)."""
        c = _t(GitCommit).c
        stmt = (
            select(GitCommit)
            .join(Repo)
            .where(_t(Repo).c.name == repo, c.sha.startswith(prefix, autoescape=True))
            .limit(2)
        )
        with self._read(session) as s:
            return list(s.execute(stmt).scalars())

    def commit(self, repo: str, sha: str, session: Session | None = None) -> GitCommit | None:
        with self._read(session) as s:
            c = _t(GitCommit).c
            return s.execute(
                select(GitCommit).join(Repo).where(_t(Repo).c.name == repo, c.sha == sha)
            ).scalar_one_or_none()

    def last_commit(self, repo: str, session: Session | None = None) -> GitCommit | None:
        """The commit most recently recorded for `repo`: the last one the daemon applied (its plan
        deferred: `commit` reads it)."""
        c = _t(GitCommit).c
        stmt = (
            select(GitCommit)
            .options(defer(GitCommit.plan))  # type: ignore[arg-type]
            .join(Repo)
            .where(_t(Repo).c.name == repo)
            .order_by(c.recorded_at.desc(), c.id.desc())
            .limit(1)
        )
        with self._read(session) as s:
            return s.execute(stmt).scalar_one_or_none()

    def upsert_operation(
        self,
        op_key: str,
        repo: str,
        mode: str,
        now: dt.datetime,
        *,
        spec_hash: str | None = None,
        commit_sha: str | None = None,
        valid: bool = True,
        session: Session | None = None,
    ) -> Operation:
        """Record an operation as compiled at `commit_sha` (one row of `record_operations`, written
        whether or not it changed).

        Valid: `spec_hash` becomes the last good hash and the invalid mark is cleared. Invalid:
        the last good hash is kept (safety rule 1) and `invalid_since` is set, once, to `now`.
        """
        row = OperationRow(op_key, mode, spec_hash=spec_hash, commit_sha=commit_sha, valid=valid)
        with self._tx(session) as s:
            self.record_operations(repo, [row], now, only_changed=False, session=s)
            # Copies of the row in the session were expired by the write: this reads it afresh.
            return s.execute(select(Operation).where(_t(Operation).c.op_key == op_key)).scalar_one()

    def record_operations(
        self,
        repo: str,
        rows: Sequence[OperationRow],
        now: dt.datetime,
        *,
        only_changed: bool = True,
        session: Session | None = None,
    ) -> list[str]:
        """Record operations as compiled (see `upsert_operation` for what a row sets); returns the
        keys written. With `only_changed`, a row whose mode, last good spec hash, validity and
        presence are what the database holds is not written (its `updated_at` and commits stay),
        so recording an unchanged repo writes nothing. Three statements for the batch: a read,
        the new rows, the changed rows."""
        if not rows:
            return []
        o = _t(Operation).c
        with self._tx(session) as s:
            repo_id = self._repo_id(s, repo)
            held: dict[str, Any] = {}
            if only_changed:
                keys = sorted({row.op_key for row in rows})
                for start in range(0, len(keys), 500):
                    stmt = select(o.op_key, o.mode, o.last_good_spec_hash, o.invalid_since, o.removed_at).where(
                        o.op_key.in_(keys[start : start + 500])
                    )
                    held.update({str(r.op_key): r for r in s.execute(stmt)})
            writes = [row for row in rows if not only_changed or _changed(row, held.get(row.op_key))]
            if not writes:
                return []
            conn = s.connection()
            new = [{"op_key": r.op_key, "repo_id": repo_id, "mode": r.mode, "updated_at": now} for r in writes]
            self.insert_ignore_rows(s, Operation, new, ["op_key"])
            params = [
                {
                    "b_key": r.op_key,
                    "b_mode": r.mode,
                    "b_at": now,
                    "b_valid": r.valid,
                    "b_good": r.valid and r.spec_hash is not None,
                    "b_spec": r.spec_hash,
                    "b_commit": r.commit_sha,
                }
                for r in writes
            ]
            for start in range(0, len(params), 500):
                conn.execute(_RECORD_OPERATION, params[start : start + 500])
            # ORM copies in the session would now be stale.
            for obj in list(s.identity_map.values()):
                if isinstance(obj, Operation):
                    s.expire(obj)
            return [r.op_key for r in writes]

    def operation(self, op_key: str, session: Session | None = None) -> Operation | None:
        with self._read(session) as s:
            return s.execute(select(Operation).where(_t(Operation).c.op_key == op_key)).scalar_one_or_none()

    def operations(
        self, repo: str | None = None, *, include_removed: bool = True, session: Session | None = None
    ) -> list[Operation]:
        with self._read(session) as s:
            stmt = select(Operation).order_by(_t(Operation).c.op_key)
            if repo is not None:
                stmt = stmt.join(Repo).where(_t(Repo).c.name == repo)
            if not include_removed:
                stmt = stmt.where(_t(Operation).c.removed_at.is_(None))
            return list(s.execute(stmt).scalars())

    def _op_id(self, s: Session, op_key: str) -> int:
        op_id = s.execute(select(_t(Operation).c.id).where(_t(Operation).c.op_key == op_key)).scalar_one_or_none()
        if op_id is None:
            raise NotFound(f"operation {op_key!r} is not tracked")
        return int(op_id)

    def _op_ids(self, s: Session, op_keys: Iterable[str]) -> dict[str, int]:
        """{op key: id} of the tracked operations among `op_keys` (a query per 500 keys)."""
        keys = sorted(set(op_keys))
        o = _t(Operation).c
        found: dict[str, int] = {}
        for start in range(0, len(keys), 500):
            rows = s.execute(select(o.op_key, o.id).where(o.op_key.in_(keys[start : start + 500]))).all()
            found.update({str(k): int(i) for k, i in rows})
        return found

    def op_id(self, op_key: str | OpKey, session: Session | None = None) -> int | None:
        with self._read(session) as s:
            found = s.execute(select(_t(Operation).c.id).where(_t(Operation).c.op_key == str(op_key))).scalar()
            return None if found is None else int(found)

    def op_ids(self, op_keys: Iterable[str | OpKey], session: Session | None = None) -> dict[str, int]:
        """The ids of the tracked operations among `op_keys`, by op key (a few statements for many)."""
        keys = sorted({str(k) for k in op_keys})
        o = _t(Operation).c
        found: dict[str, int] = {}
        with self._read(session) as s:
            for start in range(0, len(keys), 500):
                rows = s.execute(select(o.op_key, o.id).where(o.op_key.in_(keys[start : start + 500])))
                found.update((str(key), int(op_id)) for key, op_id in rows)
        return found

    def op_key_by_id(self, operation_id: int, session: Session | None = None) -> str:
        with self._read(session) as s:
            return str(s.execute(select(_t(Operation).c.op_key).where(_t(Operation).c.id == operation_id)).scalar_one())

    def ensure_operation(
        self, op_key: str, repo: str, mode: str, now: dt.datetime, session: Session | None = None
    ) -> None:
        """Make the operation row exist without touching an existing one.

        `upsert_operation` records a spec as the last good one on the tracked branch; a preview
        comes from a pull request, so it must not, and an operation that only exists in the
        pull request gets a row with no last good spec.
        """
        with self._tx(session) as s:
            repo_id = self._repo_id(s, repo)
            values = {"op_key": op_key, "repo_id": repo_id, "mode": mode, "updated_at": now}
            self.insert_ignore(s, Operation, values, ["op_key"])

    def mark_removed(
        self, repo: str, present: Iterable[str], now: dt.datetime, session: Session | None = None
    ) -> list[str]:
        """Mark the repo's top-level operations that are not in `present` as removed from Git
        (once; their runs stay); returns the keys newly marked. Children (`<op>.<child>`) and
        pull-request-only operations have no last good spec and are left alone."""
        keep = set(present)
        o = _t(Operation).c
        with self._tx(session) as s:
            repo_id = self._repo_id(s, repo)
            rows = s.execute(
                select(o.id, o.op_key).where(
                    o.repo_id == repo_id, o.removed_at.is_(None), o.last_good_spec_hash.is_not(None)
                )
            ).all()
            gone = [(int(i), str(k)) for i, k in rows if str(k) not in keep and "." not in str(k).rpartition("#")[2]]
            if gone:
                s.connection().execute(
                    update(_t(Operation)).where(o.id.in_([i for i, _ in gone])).values(removed_at=now, updated_at=now)
                )
            return [k for _, k in gone]

    def operations_named(self, repo: str, name: str, session: Session | None = None) -> list[str]:
        """Keys of the repo's tracked operations called `name` (an event ref `ops.<name>`)."""
        o, r = _t(Operation).c, _t(Repo).c
        stmt = select(o.op_key).join(_t(Repo), r.id == o.repo_id).where(r.name == repo)
        with self._read(session) as s:
            return [str(k) for k in s.execute(stmt).scalars() if OpKey.parse(str(k)).name == name]
