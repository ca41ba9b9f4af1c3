"""A separate process that fires due ticks, hour after hour (for the two-process test).

Lives in its own module so `multiprocessing` with the spawn start method can import it.
"""

from __future__ import annotations

import datetime as dt
from multiprocessing.synchronize import Barrier

from reconciler.orchestration import Orchestrator
from reconciler.tracking import Store


def fire_hours(url: str, base: dt.datetime, hours: int, barrier: Barrier, out_path: str) -> None:
    store = Store.open(url)
    fired: list[str] = []
    try:
        orch = Orchestrator(store, backend_name="local")
        barrier.wait(timeout=60)
        for hour in range(1, hours + 1):
            fired += [n.request.name for n in orch.due(base + dt.timedelta(hours=hour)).new_runs]
    finally:
        store.close()
        with open(out_path, "w", encoding="utf-8") as out:
            out.write("\n".join(fired))
