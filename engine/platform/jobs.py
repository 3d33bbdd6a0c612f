"""Long runs in a worker process: one way to report progress and to honour a cancel.

Learning Mode training (:func:`engine.arclids.learning.run_job`) and the fractionation planner
(:func:`engine.planner.jobs.run_plan_job`) run in a worker process of the app (CPU-bound work
must not block other sessions). A worker cannot call back into a session, so each run talks to
the app through a :class:`JobReporter`:

* ``progress(share, message)`` records how far it is (``share`` in [0, 1]) and what it is doing;
* ``cancelled()`` says whether someone asked it to stop;
* :func:`checkpoint` does both and raises :class:`Cancelled`, so the run stops cleanly at its next
  checkpoint (between training steps or evaluation stages), never in the middle of one.

Two reporters, one per place a session can read from:

* :class:`StoreJobReporter`: the job's database row (Learning Mode: status, progress, message and
  cancel flag of ``training_jobs``; every app process sees them);
* :class:`FileJob`: a folder of the app's machine holding ``progress.json`` (replaced atomically)
  and a ``cancel`` flag file (the planner: its runs are per session and leave no record).

:func:`worker_init` is the initialiser of every job worker process.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "Cancelled",
    "FileJob",
    "JobReporter",
    "StoreJobReporter",
    "checkpoint",
    "worker_init",
]


class Cancelled(Exception):
    """The job was cancelled by the user (raised by :func:`checkpoint`; the message is the step
    the job was about to start)."""


@runtime_checkable
class JobReporter(Protocol):
    """Where a running job reports its progress and learns whether to stop."""

    def progress(self, share: float, message: str) -> None:
        """Record the share done (0…1) and what the job is doing now (one line)."""

    def cancelled(self) -> bool:
        """Whether a cancel was requested (the job should stop at its next checkpoint)."""


def checkpoint(reporter: JobReporter, share: float, message: str) -> None:
    """Report progress, then stop the job if a cancel was requested.

    Raises:
        Cancelled: a cancel was requested; the caller cleans up what it started and ends.
    """
    reporter.progress(share, message)
    if reporter.cancelled():
        raise Cancelled(message)


class _JobRows(Protocol):
    """The part of :class:`engine.platform.store.Store` a :class:`StoreJobReporter` uses."""

    def update_job(self, job_id: int, *, progress: float | None = None,
                   message: str | None = None) -> bool: ...


class StoreJobReporter:
    """Progress and cancel through a job row of the store (Learning Mode).

    ``progress`` writes the row; the store answers each write with the row's cancel flag, which
    ``cancelled`` then uses, so a checkpoint is one database round trip. Without a write since
    the last ``cancelled``, the flag is read afresh.
    """

    def __init__(self, store: _JobRows, job_id: int) -> None:
        """Args:
            store: the job's store (:class:`engine.platform.store.Store`).
            job_id: the job's row id.
        """
        self._store = store
        self._job_id = job_id
        self._seen: bool | None = None  # the cancel flag read by the last write, not yet used

    def progress(self, share: float, message: str) -> None:
        self._seen = self._store.update_job(self._job_id, progress=share, message=message)

    def cancelled(self) -> bool:
        seen, self._seen = self._seen, None
        return seen if seen is not None else self._store.update_job(self._job_id)


@dataclass(frozen=True)
class FileJob:
    """Progress and cancel of a job through files in a folder (the planner).

    Both sides use it: the worker reports through :meth:`progress` and :meth:`cancelled`, the
    session reads :meth:`read` and asks to stop with :meth:`request_cancel`. It holds only the
    folder's path, so it can be handed to a worker process. The folder must exist; its owner
    (the session) removes it when the job is over.
    """

    folder: Path
    """Folder of the job's files (``progress.json``, ``cancel``)."""

    @property
    def progress_path(self) -> Path:
        """``{"share": 0.42, "message": "training: episode 120 of 300"}``, replaced atomically."""
        return Path(self.folder) / "progress.json"

    @property
    def cancel_path(self) -> Path:
        """Present once a cancel was requested."""
        return Path(self.folder) / "cancel"

    def progress(self, share: float, message: str) -> None:
        """Atomically write ``{"share", "message"}`` (a reader never sees half a file)."""
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".progress.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump({"share": float(share), "message": str(message)}, handle)
        os.replace(tmp, self.progress_path)

    def cancelled(self) -> bool:
        return self.cancel_path.exists()

    def read(self) -> dict[str, Any] | None:
        """The last progress written, or None when there is none (yet)."""
        try:
            data = json.loads(self.progress_path.read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        return data if isinstance(data, dict) else None

    def request_cancel(self) -> None:
        """Ask the job to stop at its next checkpoint (a job not started yet never starts)."""
        self.cancel_path.touch()


def worker_init(parent_pid: int, check_every_s: float = 2.0) -> None:
    """Initialiser of a job worker process: exit when the app process that started it is gone
    (a killed app must not leave an idle worker behind; a pool's own shutdown does not reach it
    then).

    Args:
        parent_pid: the app process's id (``os.getpid()`` where the pool is created).
        check_every_s: seconds between checks that the parent is alive (> 0).
    """
    import threading
    import time

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(check_every_s)
        os._exit(0)

    threading.Thread(target=watch, name="artds-parent-watch", daemon=True).start()
