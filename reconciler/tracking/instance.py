"""The identity of the daemon that owns a tracking database.

A daemon labels what it starts (Kubernetes objects, local run directories) with this id and
adopts, stops or prunes only what carries it: two daemons with their own databases that share a
namespace or a data directory never take each other's runs. The id is made once, on the first
start against a database, and never changes; several replicas sharing one database share it.
"""

from __future__ import annotations

import datetime as dt
import uuid as uuidlib

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from reconciler.tracking.db import Database, table
from reconciler.tracking.tables import Instance


class InstanceMixin(Database):
    def instance_id(self, now: dt.datetime, session: Session | None = None) -> str:
        """This database's daemon identity, created on first use."""
        with self._tx(session) as s:
            c = table(Instance).c
            found = s.execute(select(c.id).where(c.key == "instance")).scalar_one_or_none()
            if found is None:
                values = {"key": "instance", "id": str(uuidlib.uuid4()), "created_at": now}
                self.insert_ignore(s, Instance, values, ["key"])
                found = s.execute(select(c.id).where(c.key == "instance")).scalar_one()
            return str(found)

    def run_token_key(self, now: dt.datetime, session: Session | None = None) -> str:
        """The key run tokens are derived from (hex, 32 random bytes), made on first use; every
        replica over this database reads the same one."""
        import secrets

        c = table(Instance).c
        with self._tx(session) as s:
            self.instance_id(now, session=s)
            found = s.execute(select(c.run_token_key).where(c.key == "instance").with_for_update()).scalar_one()
            if found is None:
                found = secrets.token_hex(32)
                s.execute(
                    update(table(Instance))
                    .where(c.key == "instance", c.run_token_key.is_(None))
                    .values(run_token_key=found)
                )
                found = s.execute(select(c.run_token_key).where(c.key == "instance")).scalar_one()
            return str(found)
