"""Run a planning job in a worker process, reporting progress and honouring a cancel.

The app runs :func:`run_plan_job` in a process pool (CPU-bound work must not block other
sessions). A worker process cannot call back into the session, so the job talks to it through a
:class:`engine.platform.jobs.FileJob` folder: progress goes to its JSON file
(``{"share": 0.42, "message": "training: episode 120 of 300"}``, replaced atomically) that the
session polls, and the session's "Cancel" leaves a flag file there that the job checks at every
progress report of :func:`engine.planner.evaluate.run_plan` (after each training episode and
between evaluation stages), stopping at the first one that sees it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.planner.config import config_from_dict
from engine.planner.evaluate import PlanResult, run_plan
from engine.platform.jobs import Cancelled, FileJob

__all__ = ["CANCELLED_MESSAGE", "run_plan_job"]

CANCELLED_MESSAGE = "cancelled"
"""The last progress message of a cancelled job."""


def run_plan_job(config: dict[str, Any], job_folder: str | Path | None = None
                 ) -> PlanResult | None:
    """Build the config from its dict (:meth:`PlanConfig.to_dict`) and run the pipeline.

    Args:
        config: the plan config as a dict.
        job_folder: an existing folder for the job's :class:`FileJob` files; progress is
            written there at most once per percent, and a cancel requested there stops the job
            at its next progress report. None: no progress, no cancel.

    Returns:
        The result, or None when the job was cancelled (its last progress message is then
        :data:`CANCELLED_MESSAGE`, at the share it had reached).
    """
    import torch

    torch.set_num_threads(1)  # one core per job: the machine is shared with other sessions
    cfg = config_from_dict(config)
    if job_folder is None:
        return run_plan(cfg)
    job = FileJob(Path(job_folder))
    last_pct = [-1]
    reached = [0.0]

    def progress(share: float, message: str) -> None:
        reached[0] = share
        pct = int(100 * share)
        if pct != last_pct[0] or share >= 1.0:
            last_pct[0] = pct
            job.progress(share, message)
        if share < 1.0 and job.cancelled():  # at 1.0 the result is there: keep it
            raise Cancelled(message)

    try:
        if job.cancelled():  # cancelled while it waited for the worker
            raise Cancelled("queued")
        return run_plan(cfg, progress=progress)
    except Cancelled:
        job.progress(reached[0], CANCELLED_MESSAGE)
        return None
