"""A separate process that claims outbox rows until none are left (for the concurrency test).

Lives in its own module so `multiprocessing` with the spawn start method can import it.
"""

from __future__ import annotations

import datetime as dt
from multiprocessing.synchronize import Barrier

from reconciler.tracking import Store


def claim_all(url: str, now: dt.datetime, batch: int, barrier: Barrier, out_path: str) -> None:
    store = Store.open(url)
    claimed: list[int] = []
    try:
        barrier.wait(timeout=60)
        while True:
            rows = store.claim_outbox(batch, now)
            if not rows:
                break
            claimed.extend(row.id for row in rows if row.id is not None)
    finally:
        store.close()
        with open(out_path, "w", encoding="utf-8") as out:
            out.write("\n".join(str(i) for i in claimed))
