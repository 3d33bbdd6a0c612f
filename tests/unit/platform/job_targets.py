"""Job bodies for the job runner tests: run in a spawned worker process, so importable by name.

Both report through the store like Learning Mode's ``run_job``; neither trains anything.
"""

from __future__ import annotations

import time

from engine.platform.jobs import Cancelled, StoreJobReporter, checkpoint
from engine.platform.store import Store


def stepping_job(database_url: str, job_id: int, seconds_per_step: float,
                 n_steps: int = 5) -> None:
    """``n_steps`` steps of ``seconds_per_step`` seconds, a checkpoint before each; ends done,
    or cancelled at a checkpoint."""
    store = Store(database_url)
    reporter = StoreJobReporter(store, job_id)
    try:
        for step in range(n_steps):
            checkpoint(reporter, step / n_steps, f"step {step + 1} of {n_steps}")
            time.sleep(seconds_per_step)
        store.update_job(job_id, status="done", progress=1.0, message="done")
    except Cancelled:
        store.update_job(job_id, status="cancelled", message="cancelled")
    finally:
        store.dispose()


def stubborn_job(database_url: str, job_id: int) -> None:
    """Reports once, then works for an hour without a checkpoint (a cancel is never seen)."""
    store = Store(database_url)
    try:
        store.update_job(job_id, progress=0.1, message="a long step without checkpoints")
    finally:
        store.dispose()
    time.sleep(3600)
