"""Webhook deliveries seen, so a redelivery is a no-op."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from reconciler.tracking.db import Database, table
from reconciler.tracking.tables import (
    WebhookDelivery,
)

_t = table


class WebhooksMixin(Database):
    def record_delivery(
        self, provider: str, delivery_id: str, now: dt.datetime, session: Session | None = None
    ) -> bool:
        """True the first time a webhook delivery id is seen, False for a redelivery."""
        with self._tx(session) as s:
            return self.insert_ignore(
                s,
                WebhookDelivery,
                {"provider": provider, "delivery_id": delivery_id, "received_at": now},
                ["provider", "delivery_id"],
            )

    def prune_deliveries(self, before: dt.datetime, session: Session | None = None) -> int:
        """Forget delivery ids received before `before` (forges redeliver within hours, not weeks)."""
        d = _t(WebhookDelivery).c
        with self._tx(session) as s:
            result = s.execute(_t(WebhookDelivery).delete().where(d.received_at < before))
            return int(getattr(result, "rowcount", 0) or 0)
