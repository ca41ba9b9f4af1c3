"""Members and repo leases of replicas that share this database's repos (`sharding.mode: database`).

A replica joins by writing its `shard_member` row and stays a member while it renews it; every
repo lease it holds is valid exactly as long as that row is (so one renewal per replica renews all
its repos). Taking a lease is one statement that takes, among the repos asked for, those that are
free (no holder, a holder whose membership lapsed, or the asker itself), skipping rows another
transaction has locked (`FOR UPDATE SKIP LOCKED`), and bumps each one's generation: the fencing
token. `holds_lease` is the fence: it is read in the transaction of a write that starts something,
`FOR SHARE`, so no one can take the lease before that transaction ends.

Expiry is judged by the database's own clock (`clock_timestamp()`), not by the replicas' (which may
disagree): the one departure from "every time is passed in" of the other modules. These
statements are PostgreSQL's; sharding refuses SQLite before any of them can run.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import NamedTuple

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from reconciler.tracking.db import Database, table
from reconciler.tracking.tables import RepoLease

_EXPIRES = "clock_timestamp() + make_interval(secs => :seconds)"
_LIVE = "EXISTS (SELECT 1 FROM shard_member m WHERE m.holder = {holder} AND m.expires_at > clock_timestamp())"


class LeaseRow(NamedTuple):
    repo: str
    holder: str | None
    generation: int


class Member(NamedTuple):
    identity: str
    holder: str
    expires_in: float  # seconds, by the database's clock


class LeasesMixin(Database):
    def _needs_postgres(self) -> None:
        if self.dialect != "postgresql":
            raise RuntimeError("repo leases need PostgreSQL (sharding refuses SQLite)")

    def join_shard(self, identity: str, holder: str, seconds: float, session: Session | None = None) -> bool:
        """Write or renew this replica's membership for `seconds`; False (nothing written) while
        another live process holds the same identity."""
        self._needs_postgres()
        with self._tx(session) as s:
            found = s.execute(
                text(
                    "SELECT holder, expires_at > clock_timestamp() AS live FROM shard_member "
                    "WHERE identity = :identity FOR UPDATE"
                ),
                {"identity": identity},
            ).first()
            if found is not None and found.holder != holder and found.live:
                return False
            s.execute(
                text(
                    "INSERT INTO shard_member (identity, holder, joined_at, renewed_at, expires_at) "
                    f"VALUES (:identity, :holder, clock_timestamp(), clock_timestamp(), {_EXPIRES}) "
                    "ON CONFLICT (identity) DO UPDATE SET holder = EXCLUDED.holder, "
                    "renewed_at = EXCLUDED.renewed_at, expires_at = EXCLUDED.expires_at, "
                    "joined_at = CASE WHEN shard_member.holder = EXCLUDED.holder "
                    "THEN shard_member.joined_at ELSE EXCLUDED.joined_at END"
                ),
                {"identity": identity, "holder": holder, "seconds": float(seconds)},
            )
            return True

    def ping(self) -> None:
        """Raise unless the database answers (a replica that cannot reach it renews no lease)."""
        with self._read(None) as s:
            s.execute(text("SELECT 1"))

    def live_members(self, session: Session | None = None) -> list[Member]:
        """The replicas whose membership has not lapsed, by identity."""
        self._needs_postgres()
        with self._read(session) as s:
            rows = s.execute(
                text(
                    "SELECT identity, holder, EXTRACT(EPOCH FROM expires_at - clock_timestamp()) AS expires_in "
                    "FROM shard_member WHERE expires_at > clock_timestamp() ORDER BY identity"
                )
            ).all()
        return [Member(str(r.identity), str(r.holder), float(r.expires_in)) for r in rows]

    def acquire_leases(self, holder: str, repos: Collection[str], session: Session | None = None) -> dict[str, int]:
        """Take the free leases among `repos` for `holder` (a live member); repo -> new generation.

        Free: no holder, a holder that is no live member, or `holder` itself. Rows locked by
        another transaction (a fence check, another replica taking them) are skipped, not waited
        for: whoever holds them is using them."""
        self._needs_postgres()
        wanted = sorted(set(repos))
        if not wanted:
            return {}
        with self._tx(session) as s:
            s.execute(
                pg_insert(table(RepoLease))
                .values([{"repo": repo, "generation": 0} for repo in wanted])
                .on_conflict_do_nothing(index_elements=["repo"])
            )
            rows = s.execute(
                text(
                    "WITH free AS (SELECT l.repo FROM repo_lease l WHERE l.repo = ANY(:repos) "
                    f"AND (l.holder IS NULL OR l.holder = :holder OR NOT {_LIVE.format(holder='l.holder')}) "
                    f"AND {_LIVE.format(holder=':holder')} "
                    "ORDER BY l.repo FOR UPDATE OF l SKIP LOCKED) "
                    "UPDATE repo_lease SET holder = :holder, generation = repo_lease.generation + 1, "
                    "acquired_at = clock_timestamp(), released_at = NULL "
                    "FROM free WHERE repo_lease.repo = free.repo "
                    "RETURNING repo_lease.repo, repo_lease.generation"
                ),
                {"repos": wanted, "holder": holder},
            ).all()
        return {str(r.repo): int(r.generation) for r in rows}

    def release_leases(self, holder: str, leases: Mapping[str, int], session: Session | None = None) -> None:
        """Give up leases `holder` holds at these generations (one taken over meanwhile stays)."""
        self._needs_postgres()
        with self._tx(session) as s:
            for repo, generation in sorted(leases.items()):
                s.execute(
                    text(
                        "UPDATE repo_lease SET holder = NULL, released_at = clock_timestamp() "
                        "WHERE repo = :repo AND holder = :holder AND generation = :generation"
                    ),
                    {"repo": repo, "holder": holder, "generation": generation},
                )

    def leave_shard(self, identity: str, holder: str, session: Session | None = None) -> None:
        """Release every lease of `holder` and end its membership (a clean shutdown)."""
        self._needs_postgres()
        with self._tx(session) as s:
            s.execute(
                text("UPDATE repo_lease SET holder = NULL, released_at = clock_timestamp() WHERE holder = :holder"),
                {"holder": holder},
            )
            s.execute(
                text("DELETE FROM shard_member WHERE identity = :identity AND holder = :holder"),
                {"identity": identity, "holder": holder},
            )

    def holds_lease(self, repo: str, holder: str, generation: int, session: Session | None = None) -> bool:
        """Whether `holder` still holds `repo` at `generation` with a live membership. Inside the
        caller's transaction the lease row stays share-locked until it ends: nobody takes the
        lease while what this check allows is being written."""
        self._needs_postgres()
        with self._tx(session) as s:
            found = s.execute(
                text(
                    "SELECT l.generation FROM repo_lease l WHERE l.repo = :repo AND l.holder = :holder "
                    f"AND l.generation = :generation AND {_LIVE.format(holder=':holder')} FOR SHARE OF l"
                ),
                {"repo": repo, "holder": holder, "generation": generation},
            ).first()
        return found is not None

    def repo_leases(self, session: Session | None = None) -> list[LeaseRow]:
        """Every repo lease with its holder while the holder is a live member (None otherwise)."""
        self._needs_postgres()
        with self._read(session) as s:
            rows = s.execute(
                text(
                    "SELECT l.repo, CASE WHEN " + _LIVE.format(holder="l.holder") + " THEN l.holder END AS holder, "
                    "l.generation FROM repo_lease l ORDER BY l.repo"
                )
            ).all()
        return [LeaseRow(str(r.repo), r.holder, int(r.generation)) for r in rows]

    def forget_members(self, older_than_seconds: float, session: Session | None = None) -> int:
        """Delete memberships lapsed for longer than that (replicas gone for good)."""
        self._needs_postgres()
        with self._tx(session) as s:
            result = s.execute(
                text("DELETE FROM shard_member WHERE expires_at < clock_timestamp() - make_interval(secs => :seconds)"),
                {"seconds": float(older_than_seconds)},
            )
            return int(getattr(result, "rowcount", 0) or 0)


__all__ = ["LeaseRow", "LeasesMixin", "Member"]
