"""A separate process whose daemon fires due ticks, hour after hour (for the two-process test).

Lives in its own module so `multiprocessing` with the spawn start method can import it. The
daemon is the production one (`reconciler.wiring.build_daemon`) over the shared database, with a
scripted backend of its own: what it submitted is what this process fired.
"""

from __future__ import annotations

import datetime as dt
from multiprocessing.synchronize import Barrier
from typing import Any

from reconciler.config import Settings
from reconciler.tracking import Store
from reconciler.wiring import build_daemon
from tests.infra.daemon import Clock
from tests.infra.scripted_backend import ScriptedBackend


def fire_hours(settings: dict[str, Any], base: dt.datetime, hours: int, barrier: Barrier, out_path: str) -> None:
    config = Settings.model_validate(settings)
    store = Store.open(config.database)
    backend = ScriptedBackend()
    clock = Clock(base)
    try:
        daemon = build_daemon(config, store, backend, clock=clock, timer=False)
        barrier.wait(timeout=60)
        for hour in range(1, hours + 1):
            clock.set(base + dt.timedelta(hours=hour))
            daemon.fire_ticks()
    finally:
        store.close()
        with open(out_path, "w", encoding="utf-8") as out:
            out.write("\n".join(r.name for r in backend.submits))
