"""Repos, the commits seen on them and the operations they declare."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from reconciler.model import OpKey
from reconciler.tracking.db import Database, table
from reconciler.tracking.errors import NotFound
from reconciler.tracking.tables import (
    GitCommit,
    Operation,
    Repo,
)

_t = table


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
        gives one (later reconciles of the same commit change little and would hide it).
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
            commit = s.execute(
                select(GitCommit)
                .where(_t(GitCommit).c.repo_id == repo_id, _t(GitCommit).c.sha == sha)
                .with_for_update()
            ).scalar_one()
            if valid is not None:
                # Applying a commit again (a force-push back to it) makes it the last applied.
                commit.valid, commit.errors, commit.recorded_at = valid, error_list, now
                if plan is not None and commit.plan is None:
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
        """The commit most recently recorded for `repo`: the last one the daemon applied."""
        c = _t(GitCommit).c
        stmt = (
            select(GitCommit)
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
        """Record an operation as compiled at `commit_sha`.

        Valid: `spec_hash` becomes the last good hash and the invalid mark is cleared. Invalid:
        the last good hash is kept (safety rule 1) and `invalid_since` is set, once, to `now`.
        """
        with self._tx(session) as s:
            repo_id = self._repo_id(s, repo)
            self.insert_ignore(
                s,
                Operation,
                {"op_key": op_key, "repo_id": repo_id, "mode": mode, "updated_at": now},
                ["op_key"],
            )
            op = s.execute(select(Operation).where(_t(Operation).c.op_key == op_key).with_for_update()).scalar_one()
            op.mode, op.updated_at, op.removed_at = mode, now, None
            if valid:
                if spec_hash is not None:
                    op.last_good_spec_hash = spec_hash
                    op.last_good_commit_sha = commit_sha
                op.invalid_since, op.invalid_commit_sha = None, None
            else:
                if op.invalid_since is None:
                    op.invalid_since = now
                op.invalid_commit_sha = commit_sha
            s.add(op)
            s.flush()
            return op

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
