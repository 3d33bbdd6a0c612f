"""Long runs in a worker process: one way to report progress and to honour a cancel, and a job
runner that never leaves a Learning Mode job stuck.

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

Learning Mode jobs are a queue in the database, run by a :class:`StoreJobRunner` in every app
process: it claims the oldest queued job (atomically: two app processes never run one job), runs
it in a fresh worker process that writes a heartbeat every :data:`HEARTBEAT_S` seconds, ends the
worker for real when a cancel is not honoured within :data:`CANCEL_GRACE_S` seconds, and gives up
on jobs whose worker is gone, with the reason: its own worker's unexpected exit at once, a
worker of this machine (and pid namespace) that no longer exists at once (at start-up: an app
restarted after a crash or ``kill -9``), any other after :data:`STALE_AFTER_S` seconds without
a heartbeat (a replica that died; a restarted container, whose pid namespace is new). A job
given up on is failed (or cancelled, when a cancel had been asked for) and its scratch files
removed; a new run is accepted at once.

:func:`worker_init` is the initialiser of every job worker process.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "CANCEL_GRACE_S",
    "HEARTBEAT_S",
    "STALE_AFTER_S",
    "Cancelled",
    "FileJob",
    "JobReporter",
    "StoreJobReporter",
    "StoreJobRunner",
    "checkpoint",
    "identity_alive",
    "process_identity",
    "worker_init",
]

HEARTBEAT_S = 5.0
"""Seconds between two heartbeats of a running job's worker."""
STALE_AFTER_S = 60.0
"""A running job with no heartbeat for this many seconds has lost its worker (12 heartbeats:
a busy database or machine delays a few, not all)."""
CANCEL_GRACE_S = 5.0
"""Seconds a worker has to stop at a checkpoint after a cancel before its process is ended."""
POLL_S = 2.0
"""Seconds between two passes of a job runner (it is also woken when a job is queued)."""

_log = logging.getLogger(__name__)


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

    ``progress`` writes the row; the store answers each write with whether the job should stop
    (a cancel was requested, or the job was ended elsewhere, e.g. given up on as stale), which
    ``cancelled`` then uses, so a checkpoint is one database round trip. Without a write since
    the last ``cancelled``, the row is read afresh.
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


# --------------------------------------------------------------------------------------------
# Which process runs a job, and whether it still exists


def _start_ticks(pid: int) -> str | None:
    """The start time of process ``pid`` in clock ticks since boot (``/proc/<pid>/stat`` field
    22), None when there is no such process; "" where ``/proc`` does not exist (not Linux)."""
    if not Path("/proc/self/stat").exists():
        return ""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] == "Z" else fields[19]  # a zombie has exited


def _this_host() -> str:
    """This machine and pid namespace: ``hostname+<pid namespace inode>``.

    Pids are only comparable within one pid namespace: two containers of one machine (even
    with the same hostname) each have their own, and a restarted container gets a new one.
    """
    try:
        namespace = "".join(c for c in os.readlink("/proc/self/ns/pid") if c.isdigit())
    except OSError:
        namespace = ""
    return f"{socket.gethostname()}+{namespace}"


def process_identity(pid: int | None = None) -> str:
    """``host+pidns:pid:start`` of a process of this machine and pid namespace (default: this
    process).

    The start time tells a process from a later one that got the same pid; empty where it
    cannot be read.
    """
    pid = os.getpid() if pid is None else pid
    return f"{_this_host()}:{pid}:{_start_ticks(pid) or ''}"


def identity_alive(identity: str) -> bool | None:
    """Whether the process named by :func:`process_identity` still runs.

    Returns:
        True or False for a process of this machine and pid namespace; None for another
        machine's or container's process, or an identity that names none (only its heartbeat
        can tell then).
    """
    host, _, rest = (identity or "").partition(":")
    pid_text, _, start = rest.partition(":")
    if host != _this_host() or not pid_text.isdigit():
        return None
    now = _start_ticks(int(pid_text))
    if now is None:
        return False
    if now == "":  # no /proc: ask the kernel whether the pid exists
        try:
            os.kill(int(pid_text), 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return not start or now == start


def _exit_reason(exitcode: int | None) -> str:
    """Why a worker process ended, for the job's error (one line)."""
    if exitcode is None:
        return "its worker process could not be started"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return (f"its worker process was killed ({name}) before the job ended: the job did not "
                "finish and nothing was registered")
    return (f"its worker process ended (exit code {exitcode}) without recording how the job "
            "ended")


# --------------------------------------------------------------------------------------------
# The job runner of an app process


def _run_in_worker(target: Callable[..., Any], database_url: str, job_id: int,
                   args: tuple[Any, ...], parent_pid: int, heartbeat_s: float) -> None:
    """Body of a job's worker process: watch the parent, heartbeat, run ``target``."""
    from engine.platform.store import Store

    worker_init(parent_pid, check_every_s=min(2.0, heartbeat_s))
    store = Store(database_url)
    done = threading.Event()

    def beat() -> None:
        while not done.wait(heartbeat_s):
            try:
                store.heartbeat_job(job_id)
            except Exception:  # a database hiccup: the next beat tries again
                _log.warning("heartbeat of job %s failed", job_id, exc_info=True)

    threading.Thread(target=beat, name="artds-job-heartbeat", daemon=True).start()
    try:
        target(database_url, job_id, *args)
    finally:
        done.set()
        store.dispose()


@dataclass
class _Worker:
    """The worker process running a claimed job."""

    job_id: int
    """The job."""
    process: Any
    """Its ``multiprocessing`` process."""
    identity: str
    """:func:`process_identity` of the worker (the job row's ``worker``)."""
    stop_seen_at: float | None = None
    """``time.monotonic()`` when a cancel (or the job's end elsewhere) was first seen."""


def _end_process(process: Any, wait_s: float = 5.0) -> None:
    """SIGTERM, then SIGKILL when it has not exited within ``wait_s`` seconds; reaped."""
    if process.is_alive():
        process.terminate()
        process.join(wait_s)
    if process.is_alive():
        process.kill()
        process.join(wait_s)


class StoreJobRunner:
    """Runs the queued jobs of a store's ``training_jobs`` table, one at a time, each in a fresh
    worker process, and gives up on jobs whose worker is gone (see the module docstring).

    Every app process runs one; they share the queue through the database. A pass
    (:meth:`run_once`, every ``poll_s`` seconds on a thread after :meth:`start`, and when
    :meth:`kick`-ed):

    1. gives up on jobs whose worker is gone: no heartbeat for ``stale_after_s`` seconds, or a
       worker process of this machine that no longer exists (the first pass, at start-up, finds
       the jobs of an app that was killed or crashed);
    2. watches its own worker: an unexpected exit fails the job with the reason; a cancel (or
       the job ended elsewhere) not honoured within ``cancel_grace_s`` seconds ends the process;
    3. when idle, claims the oldest queued job and starts its worker.

    Args:
        database_url: the store's SQLAlchemy URL (with its password: a worker connects too).
        target: ``target(database_url, job_id, *args)``, run in the worker; it reports through
            :class:`StoreJobReporter` and writes the job's final state. Importable by name
            (the worker is started with "spawn").
        args: further arguments of ``target``.
        discard: ``discard(job_id)`` removes the scratch files of a job given up on.
        poll_s: seconds between passes (> 0).
        heartbeat_s: seconds between a worker's heartbeats (> 0).
        stale_after_s: seconds without a heartbeat after which a job is given up on (>
            ``heartbeat_s``).
        cancel_grace_s: seconds a worker has to stop after a cancel before it is ended (≥ 0).
    """

    def __init__(self, database_url: str, target: Callable[..., Any],
                 args: tuple[Any, ...] = (), *, discard: Callable[[int], None] | None = None,
                 poll_s: float = POLL_S, heartbeat_s: float = HEARTBEAT_S,
                 stale_after_s: float = STALE_AFTER_S,
                 cancel_grace_s: float = CANCEL_GRACE_S) -> None:
        from engine.platform.store import Store

        if not (poll_s > 0 and heartbeat_s > 0 and stale_after_s > heartbeat_s
                and cancel_grace_s >= 0):
            raise ValueError("StoreJobRunner needs poll_s > 0, heartbeat_s > 0, "
                             "stale_after_s > heartbeat_s and cancel_grace_s >= 0")
        self._url = database_url
        self._target = target
        self._args = tuple(args)
        self._discard = discard
        self.poll_s = poll_s
        self.heartbeat_s = heartbeat_s
        self.stale_after_s = stale_after_s
        self.cancel_grace_s = cancel_grace_s
        self.identity = process_identity()
        """This process's :func:`process_identity` (the ``worker`` of a job it claimed until
        the job's worker process has started)."""
        self._store = Store(database_url)
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._worker: _Worker | None = None

    @property
    def running_job(self) -> int | None:
        """The job this runner's worker runs now, None when idle."""
        worker = self._worker
        return None if worker is None else worker.job_id

    @property
    def worker_pid(self) -> int | None:
        """The pid of this runner's worker process, None when idle."""
        worker = self._worker
        return None if worker is None else worker.process.pid

    def start(self) -> None:
        """Run passes on a daemon thread, the first at once (idempotent)."""
        with self._lock:
            if self._thread is None and not self._stopping.is_set():
                self._thread = threading.Thread(target=self._loop, name="artds-job-runner",
                                                daemon=True)
                self._thread.start()

    def kick(self) -> None:
        """Run a pass now (a job was queued or a cancel requested)."""
        self._wake.set()

    def stop(self, reason: str = "the app process running it was stopped (shut down or "
             "restarted) before the job ended") -> None:
        """Stop the runner (the app's shutdown; idempotent): no further job is claimed, and a job
        running here is ended, its worker process with it, and failed with ``reason``."""
        self._stopping.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=self.poll_s + 30)
        with self._lock:
            worker, self._worker = self._worker, None
            if worker is not None:
                _end_process(worker.process)
                self._give_up(worker.job_id, reason, worker.identity)
            self._store.dispose()

    def run_once(self) -> None:
        """One pass: give up on jobs whose worker is gone, watch this runner's worker, claim a
        queued job when idle."""
        with self._lock:
            if self._stopping.is_set():
                return
            self._sweep()
            self._watch()
            if self._worker is None:
                self._claim()

    # ---------------------------------------------------------------- the passes

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self.run_once()
            except Exception:  # e.g. the database is unreachable for a moment: try again
                _log.exception("Learning Mode job runner: pass failed")
            self._wake.wait(self.poll_s)
            self._wake.clear()

    def _give_up(self, job_id: int, reason: str, worker: str | None = None) -> None:
        if self._store.abandon_job(job_id, reason, worker=worker):
            _log.warning("Learning Mode job %s ended: %s", job_id, reason)
            self._discard_files(job_id)

    def _discard_files(self, job_id: int) -> None:
        if self._discard is not None:
            try:
                self._discard(job_id)
            except OSError:
                _log.warning("scratch files of job %s not removed", job_id, exc_info=True)

    def _sweep(self) -> None:
        cutoff = datetime.now(UTC) - timedelta(seconds=self.stale_after_s)
        for job_id in self._store.abandon_stale_jobs(
                cutoff, f"no heartbeat from its worker for more than {self.stale_after_s:g} s: "
                "the app process running it (or its worker) stopped"):
            _log.warning("Learning Mode job %s ended: no heartbeat", job_id)
            self._discard_files(job_id)
        mine = self.running_job
        for job in self._store.jobs(limit=1000, status="running"):
            if job.id != mine and identity_alive(job.worker) is False:
                self._give_up(job.id, "its worker process no longer exists: the app running "
                              "it was restarted, crashed or was killed", job.worker)

    def _watch(self) -> None:
        worker = self._worker
        if worker is None:
            return
        if not worker.process.is_alive():
            worker.process.join()
            self._worker = None
            # Nothing changes when the worker recorded how the job ended (the usual case).
            self._give_up(worker.job_id, _exit_reason(worker.process.exitcode), worker.identity)
            return
        job = self._store.job(worker.job_id)
        stop = job is None or job.cancel_requested or job.status not in ("queued", "running")
        if not stop:
            return
        now = time.monotonic()
        if worker.stop_seen_at is None:
            worker.stop_seen_at = now
        if now - worker.stop_seen_at < self.cancel_grace_s:
            return  # the worker stops at its next checkpoint, cleanly
        _end_process(worker.process)
        self._worker = None
        self._give_up(worker.job_id, f"its worker did not stop at a checkpoint within "
                      f"{self.cancel_grace_s:g} s and was ended", worker.identity)

    def _claim(self) -> None:
        import multiprocessing

        job = self._store.claim_job(self.identity)
        if job is None:
            return
        process = multiprocessing.get_context("spawn").Process(
            target=_run_in_worker, name=f"artds-job-{job.id}", daemon=True,
            args=(self._target, self._url, job.id, self._args, os.getpid(), self.heartbeat_s))
        try:
            process.start()
        except OSError as exc:
            self._give_up(job.id, f"its worker process could not be started ({exc})",
                          self.identity)
            return
        identity = process_identity(process.pid)
        self._worker = _Worker(job.id, process, identity)
        self._store.set_job_worker(job.id, identity)
        _log.info("Learning Mode job %s claimed by %s, worker %s", job.id, self.identity,
                  identity)
