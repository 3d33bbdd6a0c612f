"""Run a planning job in a worker process and report its progress through a small file.

The app runs :func:`run_plan_job` in a process pool (CPU-bound work must not block other
sessions); a worker process cannot call back into the session, so progress goes to a JSON file
(``{"share": 0.42, "message": "training: episode 120 of 300"}``, replaced atomically) that the
session polls with :func:`read_progress`.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from engine.planner.config import config_from_dict
from engine.planner.evaluate import PlanResult, run_plan

__all__ = ["read_progress", "run_plan_job", "write_progress"]


def write_progress(path: str | Path, share: float, message: str) -> None:
    """Atomically write ``{"share", "message"}`` to ``path``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".progress.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump({"share": float(share), "message": str(message)}, handle)
    os.replace(tmp, path)


def read_progress(path: str | Path) -> dict[str, Any] | None:
    """The last progress written to ``path``, or None when there is none (yet)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def run_plan_job(config: dict[str, Any], progress_path: str | None = None) -> PlanResult:
    """Build the config from its dict (:meth:`PlanConfig.to_dict`) and run the pipeline,
    writing progress to ``progress_path`` at most once per percent."""
    import torch

    torch.set_num_threads(1)  # one core per job: the machine is shared with other sessions
    cfg = config_from_dict(config)
    last = [-1]

    def progress(share: float, message: str) -> None:
        pct = int(100 * share)
        if progress_path is not None and (pct != last[0] or share >= 1.0):
            last[0] = pct
            write_progress(progress_path, share, message)

    return run_plan(cfg, progress=progress)
