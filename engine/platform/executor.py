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
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from types import TracebackType
from typing import IO, Any, Protocol, Self, TypeVar

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

ProgressFn = Callable[[int, int], None]
"""Progress callback: ``progress(done, total)``, counts of jobs."""

EXECUTOR_KINDS = ("serial", "local", "ray")
"""Accepted ``kind`` values of :func:`make_executor`."""


class Executor(Protocol):
    """Runs independent jobs ``fn(job)`` and returns their results in job order."""

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
            Exception: the first exception raised by a job (not yet started jobs are dropped).
        """
        ...

    def close(self) -> None:
        """Release the workers; idempotent."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class _ContextMixin:
    """``with executor:`` support: closes the executor on exit."""

    def close(self) -> None:  # pragma: no cover - overridden
        """Release resources."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


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


class SerialExecutor(_ContextMixin):
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

    def map(
        self,
        fn: Callable[[T], R],
        jobs: Sequence[T],
        *,
        progress: ProgressFn | None = None,
        desc: str = "",
    ) -> list[R]:
        """Return ``[fn(job) for job in jobs]`` computed in this process; see :class:`Executor`."""
        total = len(jobs)
        if total == 0:
            return []
        _report(progress, 0, total)
        results: list[R] = []
        if self.torch_threads is None:
            for job in jobs:
                results.append(fn(job))
                _report(progress, len(results), total)
            return results
        with _torch_threads(self.torch_threads):
            for job in jobs:
                results.append(fn(job))
                _report(progress, len(results), total)
        return results

    def close(self) -> None:
        """Nothing to release."""

    def __repr__(self) -> str:
        return "SerialExecutor()"


class LocalExecutor(_ContextMixin):
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

    def map(
        self,
        fn: Callable[[T], R],
        jobs: Sequence[T],
        *,
        progress: ProgressFn | None = None,
        desc: str = "",
    ) -> list[R]:
        """Run the jobs in the pool; results in job order; see :class:`Executor`."""
        if self._pool is None:
            raise RuntimeError("LocalExecutor is closed")
        total = len(jobs)
        if total == 0:
            return []
        futures: list[Future[R]] = [self._pool.submit(fn, job) for job in jobs]
        _report(progress, 0, total)
        pending: set[Future[R]] = set(futures)
        done_count = 0
        try:
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    future.result()  # raises the job's exception, if any
                    done_count += 1
                    _report(progress, done_count, total)
        except BaseException:
            for future in pending:
                future.cancel()
            raise
        return [future.result() for future in futures]

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


class RayExecutor(_ContextMixin):
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
        self._closed = False

    def map(
        self,
        fn: Callable[[T], R],
        jobs: Sequence[T],
        *,
        progress: ProgressFn | None = None,
        desc: str = "",
    ) -> list[R]:
        """Run the jobs as Ray tasks; results in job order; see :class:`Executor`."""
        if self._closed:
            raise RuntimeError("RayExecutor is closed")
        ray = self._ray
        total = len(jobs)
        if total == 0:
            return []
        fn_ref = ray.put(fn)
        refs = [self._remote.remote(fn_ref, job) for job in jobs]
        _report(progress, 0, total)
        pending = list(refs)
        done_count = 0
        try:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                ray.get(ready)  # raises the job's exception, if any
                done_count += len(ready)
                _report(progress, done_count, total)
        except BaseException:
            for ref in pending:
                ray.cancel(ref)
            raise
        return list(ray.get(refs))

    def close(self) -> None:
        """Shut Ray down if this executor started it; idempotent."""
        if self._closed:
            return
        self._closed = True
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
