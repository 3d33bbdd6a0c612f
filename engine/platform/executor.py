"""One interface for parallel work: in-process, a local process pool, or a Ray cluster.

Training work in artds (grid points × cross-validation splits × ensemble members, planner
scenario sweeps) is a list of independent jobs, each a picklable call ``fn(job)`` of a
module-level function. :class:`Executor` runs such a list and returns the results **in job
order**, whatever order the jobs finish in. Three implementations share that contract:

* :class:`SerialExecutor` runs the jobs one after another in this process (tests, one worker);
* :class:`LocalExecutor` runs them in a ``concurrent.futures`` process pool on this machine
  (the default; "spawn" start method, so torch in the workers is safe);
* :class:`RayExecutor` sends them to a Ray cluster (a local one on this machine when no address
  is given). Ray is imported only when a :class:`RayExecutor` is created, so the app never
  imports it.

Every worker, and :class:`SerialExecutor` for the duration of :meth:`~Executor.map`, runs torch
with one intra-op thread: two workers on two cores do not oversubscribe, and a job gives the same
floats whichever executor runs it. Determinism is otherwise the caller's job: each job carries its
own seed. The executors never reorder results.

``fn`` must be importable by name in the workers (defined at module level, not a lambda or a
closure, and not in a script's ``__main__`` guard); the jobs and results must be picklable.
On a remote Ray cluster the workers must have the same code installed (same container image).

``progress`` callbacks receive ``(done, total)``: once with ``done = 0`` before any job finishes,
then once per finished job, ending with ``(total, total)``. :func:`text_progress` makes one that
draws a bar on stderr for the command line.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager, nullcontext
from types import TracebackType
from typing import IO, Any, Generic, Self, TypeVar

import torch

__all__ = [
    "EXECUTOR_KINDS",
    "Executor",
    "LocalExecutor",
    "ProgressFn",
    "RayExecutor",
    "SerialExecutor",
    "make_executor",
    "text_progress",
]

T = TypeVar("T")
R = TypeVar("R")
H = TypeVar("H")

ProgressFn = Callable[[int, int], None]
"""Progress callback: ``progress(done, total)``, counts of jobs."""

EXECUTOR_KINDS = ("serial", "local", "ray")
"""Accepted ``kind`` values of :func:`make_executor`."""


@contextmanager
def _torch_threads(n_threads: int) -> Iterator[None]:
    """Run the block with ``n_threads`` torch intra-op threads, restoring the old count after."""
    before = torch.get_num_threads()
    torch.set_num_threads(n_threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _init_worker() -> None:
    """Process-pool worker initialiser: one torch intra-op thread per worker process."""
    torch.set_num_threads(1)


def _report(progress: ProgressFn | None, done: int, total: int) -> None:
    """Call ``progress(done, total)`` when a callback was given."""
    if progress is not None:
        progress(done, total)


class Executor(ABC):
    """Runs independent jobs ``fn(job)`` and returns their results in job order.

    The base of every executor: :meth:`map` holds the contract they share (a closed executor
    refuses work, no jobs need no workers) and ``with executor:`` closes it on exit. A subclass
    runs a non-empty job list in :meth:`_run` and releases its workers in :meth:`close`.
    """

    def map(
        self,
        fn: Callable[[T], R],
        jobs: Sequence[T],
        *,
        progress: ProgressFn | None = None,
        desc: str = "",
    ) -> list[R]:
        """Return ``[fn(job) for job in jobs]``, computed by this executor's workers.

        Args:
            fn: module-level function of one argument (picklable by reference).
            jobs: job arguments (picklable); their order is the order of the results.
            progress: called with ``(done, total)`` as jobs finish (see module docstring).
            desc: short label of the work, for logs and progress displays.

        Returns:
            One result per job, in the order of ``jobs``.

        Raises:
            RuntimeError: the executor is closed.
            Exception: the first exception raised by a job (not yet started jobs are dropped).
        """
        if self._closed():
            raise RuntimeError(f"{type(self).__name__} is closed")
        total = len(jobs)
        if total == 0:
            return []
        return self._run(fn, jobs, progress, total)

    @abstractmethod
    def _run(
        self, fn: Callable[[T], R], jobs: Sequence[T], progress: ProgressFn | None, total: int
    ) -> list[R]:
        """Run ``total`` (≥ 1) jobs, reporting progress from ``(0, total)`` on."""

    def _closed(self) -> bool:
        """True once :meth:`close` released the workers (then :meth:`map` refuses work)."""
        return False

    @abstractmethod
    def close(self) -> None:
        """Release the workers; idempotent."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class _PoolExecutor(Executor, Generic[H]):
    """An executor whose jobs run elsewhere as handles ``H`` (futures, Ray object refs): submit
    every job, then collect the handles as they finish, cancelling the rest on the first error.

    A subclass says how to submit the jobs, wait for some to finish, read results (raising the
    job's exception) and cancel a handle.
    """

    def _run(
        self, fn: Callable[[T], R], jobs: Sequence[T], progress: ProgressFn | None, total: int
    ) -> list[R]:
        handles = self._submit(fn, jobs)
        _report(progress, 0, total)
        pending: Collection[H] = list(handles)
        done_count = 0
        try:
            while pending:
                finished, pending = self._wait(pending)
                for handle in finished:
                    self._results([handle])  # raises the job's exception, if any
                    done_count += 1
                    _report(progress, done_count, total)
        except BaseException:
            for handle in pending:
                self._cancel(handle)
            raise
        return self._results(handles)

    @abstractmethod
    def _submit(self, fn: Callable[[T], R], jobs: Sequence[T]) -> list[H]:
        """Start every job; one handle per job, in job order."""

    @abstractmethod
    def _wait(self, pending: Collection[H]) -> tuple[Collection[H], Collection[H]]:
        """Block until at least one pending handle finishes: ``(finished, still pending)``."""

    @abstractmethod
    def _results(self, handles: Sequence[H]) -> list[Any]:
        """The results of finished handles, in their order; raises a job's exception."""

    @abstractmethod
    def _cancel(self, handle: H) -> None:
        """Drop a job that has not started (best effort)."""


class SerialExecutor(Executor):
    """Runs the jobs one after another in this process (tests, ``n_workers = 1``)."""

    def __init__(self, torch_threads: int | None = 1) -> None:
        """Args:
        torch_threads: torch intra-op threads while :meth:`map` runs (restored afterwards), so
            results match the single-threaded pool and Ray workers bit for bit; None leaves
            torch's setting alone.
        """
        if torch_threads is not None and torch_threads < 1:
            raise ValueError(f"torch_threads must be >= 1 or None, got {torch_threads}")
        self.torch_threads = torch_threads

    def _run(
        self, fn: Callable[[T], R], jobs: Sequence[T], progress: ProgressFn | None, total: int
    ) -> list[R]:
        """``[fn(job) for job in jobs]`` in this process, one progress call per job."""
        n_threads = self.torch_threads
        threads = nullcontext() if n_threads is None else _torch_threads(n_threads)
        _report(progress, 0, total)
        results: list[R] = []
        with threads:
            for job in jobs:
                results.append(fn(job))
                _report(progress, len(results), total)
        return results

    def close(self) -> None:
        """Nothing to release."""

    def __repr__(self) -> str:
        return "SerialExecutor()"


class LocalExecutor(_PoolExecutor[Future]):
    """A process pool on this machine ("spawn" start method, one torch thread per worker).

    The pool is created here and reused by every :meth:`map` until :meth:`close`. Workers start
    lazily on the first job and import torch and the job function's module once each.
    """

    def __init__(self, n_workers: int | None = None) -> None:
        """Args:
        n_workers: number of worker processes; default ``os.cpu_count()``.
        """
        if n_workers is None:
            n_workers = os.cpu_count() or 1
        if n_workers < 1:
            raise ValueError(f"n_workers must be >= 1, got {n_workers}")
        self.n_workers = n_workers
        self._pool: ProcessPoolExecutor | None = ProcessPoolExecutor(
            max_workers=n_workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
        )

    def _closed(self) -> bool:
        return self._pool is None

    def _submit(self, fn: Callable[[T], R], jobs: Sequence[T]) -> list[Future]:
        assert self._pool is not None  # map checked
        return [self._pool.submit(fn, job) for job in jobs]

    def _wait(self, pending: Collection[Future]) -> tuple[Collection[Future], Collection[Future]]:
        return wait(pending, return_when=FIRST_COMPLETED)

    def _results(self, handles: Sequence[Future]) -> list[Any]:
        return [future.result() for future in handles]

    def _cancel(self, handle: Future) -> None:
        handle.cancel()

    def close(self) -> None:
        """Shut the pool down, waiting for running jobs; idempotent."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __repr__(self) -> str:
        return f"LocalExecutor(n_workers={self.n_workers})"


def _call_single_threaded(fn: Callable[[Any], Any], job: Any) -> Any:
    """Body of the Ray task: ``fn(job)`` with one torch intra-op thread."""
    torch.set_num_threads(1)
    return fn(job)


class RayExecutor(_PoolExecutor[Any]):
    """Jobs as Ray tasks (one CPU each) on a Ray cluster.

    Connects to the cluster at ``address``, or with ``address=None`` starts a local Ray cluster
    on this machine, unless Ray is already initialised in this process (then that connection is
    used and ``address``/``num_cpus`` are ignored). :meth:`close` shuts Ray down only if this
    executor started it.

    On a local cluster the driver's ``sys.path`` is passed to the workers (as ``PYTHONPATH``), so
    any module the driver imported its job function from is importable there too, as with the
    "spawn" process pool.
    """

    def __init__(self, address: str | None = None, num_cpus: int | None = None) -> None:
        """Args:
        address: Ray cluster address (e.g. ``"ray://head:10001"`` or ``"auto"``); None starts
            a local cluster on this machine.
        num_cpus: CPUs of the local cluster (default: all); only with ``address=None``.
        """
        if address is not None and num_cpus is not None:
            raise ValueError(
                "num_cpus applies only to a local Ray cluster (address=None); the CPUs of an "
                "existing cluster are set when it is started"
            )
        if num_cpus is not None and num_cpus < 1:
            raise ValueError(f"num_cpus must be >= 1, got {num_cpus}")
        import ray  # lazy: only RayExecutor users need Ray

        self._ray = ray
        self.address = address
        self.num_cpus = num_cpus
        self._started_ray = False
        if not ray.is_initialized():
            runtime_env = None
            if address is None:
                paths = [p for p in sys.path if p and os.path.isdir(p)]
                runtime_env = {"env_vars": {"PYTHONPATH": os.pathsep.join(paths)}}
            ray.init(
                address=address,
                num_cpus=num_cpus,
                include_dashboard=False,
                log_to_driver=False,
                ignore_reinit_error=True,
                runtime_env=runtime_env,
            )
            self._started_ray = True
        self._remote = ray.remote(num_cpus=1)(_call_single_threaded)
        self._is_closed = False

    def _closed(self) -> bool:
        return self._is_closed

    def _submit(self, fn: Callable[[T], R], jobs: Sequence[T]) -> list[Any]:
        fn_ref = self._ray.put(fn)
        return [self._remote.remote(fn_ref, job) for job in jobs]

    def _wait(self, pending: Collection[Any]) -> tuple[Collection[Any], Collection[Any]]:
        return self._ray.wait(list(pending), num_returns=1)

    def _results(self, handles: Sequence[Any]) -> list[Any]:
        return list(self._ray.get(list(handles)))

    def _cancel(self, handle: Any) -> None:
        self._ray.cancel(handle)

    def close(self) -> None:
        """Shut Ray down if this executor started it; idempotent."""
        if self._is_closed:
            return
        self._is_closed = True
        if self._started_ray and self._ray.is_initialized():
            self._ray.shutdown()

    def __repr__(self) -> str:
        return f"RayExecutor(address={self.address!r}, num_cpus={self.num_cpus!r})"


def make_executor(
    kind: str = "local", *, address: str | None = None, n_workers: int | None = None
) -> Executor:
    """Build an executor by name.

    Args:
        kind: ``"serial"`` (in-process), ``"local"`` (process pool on this machine) or ``"ray"``.
        address: Ray cluster address; only for ``kind="ray"`` (None: a local Ray cluster).
        n_workers: worker processes (``"local"``; 1 gives a :class:`SerialExecutor`) or CPUs of
            a local Ray cluster (``"ray"``); default all CPUs. Ignored by ``"serial"``.

    Raises:
        ValueError: unknown ``kind``, ``n_workers < 1``, or ``address`` with a non-Ray kind.
    """
    if kind not in EXECUTOR_KINDS:
        raise ValueError(
            f"unknown executor kind {kind!r}; expected one of {', '.join(EXECUTOR_KINDS)}"
        )
    if n_workers is not None and n_workers < 1:
        raise ValueError(f"n_workers must be >= 1, got {n_workers}")
    if address is not None and kind != "ray":
        raise ValueError(f"address is only used by the 'ray' executor, not {kind!r}")
    if kind == "serial":
        return SerialExecutor()
    if kind == "local":
        return SerialExecutor() if n_workers == 1 else LocalExecutor(n_workers)
    return RayExecutor(address=address, num_cpus=n_workers)


def text_progress(desc: str = "", *, width: int = 30, stream: IO[str] | None = None) -> ProgressFn:
    """A progress callback drawing ``\\r[#####.....] 12/48 desc`` in place on stderr.

    Args:
        desc: label printed after the counts.
        width: bar width, characters.
        stream: where to draw (default ``sys.stderr``, looked up at each call).

    Returns:
        ``progress(done, total)``; it ends the line once ``done == total``.
    """

    def progress(done: int, total: int) -> None:
        out = stream if stream is not None else sys.stderr
        filled = width if total <= 0 else min(width, width * done // total)
        bar = "#" * filled + "." * (width - filled)
        label = f" {desc}" if desc else ""
        out.write(f"\r[{bar}] {done}/{total}{label}")
        if done >= total:
            out.write("\n")
        out.flush()

    return progress
