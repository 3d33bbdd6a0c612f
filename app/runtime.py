"""The app process's worker pools, in one place, and their shutdown.

Every session of an app process shares one event loop: anything slower than a moment runs in
one of these pools, created on first use and shared by all sessions of the process.

* :func:`recommendation_pool`: threads computing and auditing recommendations
  (:mod:`app.recommending`); torch releases the GIL, two at a time suit a 2-core machine.
* :func:`database_pool` and :func:`in_database_thread`: threads for the database reads sessions
  poll (:func:`app.db.poll_in_thread`, the Learning Mode job watch), never on the event loop.
* :func:`plan_pool`: threads reading and evaluating imported plans (DICOM-RT or DVH tables,
  :mod:`app.panels.data_input.plan`). Threads, not a process: the plan read (its dose grid and
  the DVHs already computed) stays in the session's memory for quick re-evaluation; an import
  takes a few seconds, during which it holds the GIL part of the time.
* :func:`learning_runner`: the Learning Mode job runner
  (:class:`engine.platform.jobs.StoreJobRunner` over :func:`engine.arclids.learning.run_job`):
  it runs the jobs queued in the database, one at a time in a worker process, and gives up on
  jobs whose worker is gone; started with the app (:func:`on_startup`), so its first pass finds
  the jobs an earlier run of the app left behind.
* :func:`planner_pool`: the fractionation planner's worker process
  (:func:`engine.planner.jobs.run_plan_job`).

Job worker processes (one core per long job) start with "spawn" (torch starts clean in them) and
:func:`engine.platform.jobs.worker_init` (they exit when the app process is killed).
:func:`shutdown` stops them all: the app's shutdown hook and, for a process that ends without
one, an ``atexit`` hook. A pool asked for after :func:`shutdown` is created afresh.
"""

from __future__ import annotations

import asyncio
import atexit
import contextvars
import functools
import multiprocessing
import os
import threading
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar, cast

__all__ = [
    "database_pool",
    "in_database_thread",
    "learning_runner",
    "on_startup",
    "plan_pool",
    "planner_pool",
    "recommendation_pool",
    "shutdown",
    "single_inference_thread",
]

P = ParamSpec("P")
T = TypeVar("T")
E = TypeVar("E")

RECOMMENDATION_THREADS = 2
"""Recommendations (and Model review contrasts) computed at a time (2-core machines)."""
PLAN_THREADS = 2
"""Plan imports read and evaluated at a time (2-core machines; more queue)."""
DATABASE_THREADS = min(32, (os.cpu_count() or 1) + 4)
"""Database reads at a time: as many as asyncio's default executor, which served them before."""


@dataclass(frozen=True)
class _Running:
    """A pool created by this module and how :func:`shutdown` stops it."""

    pool: Any
    """The pool (an executor, or the job runner)."""
    stop: Callable[[Any], None]
    """Shuts it down."""


_LOCK = threading.Lock()
_POOLS: dict[str, _Running] = {}


def single_inference_thread() -> None:
    """Serve with one torch intra-op thread (process-wide; also the recommendation workers').

    The served ensembles are small: one recommendation is milliseconds of arithmetic that two
    OpenMP threads cannot speed up, but on a busy machine (other sessions, training, other
    processes) their barrier spin-waits made it ~100× slower (measured: 4 NSCLC cases took
    0.03 s with one thread and a median 3.2 s with two at load average 12 on 2 cores).
    Parallelism comes from serving several sessions at once instead.
    """
    try:
        import torch
    except ImportError:  # the reference model needs no torch
        return
    torch.set_num_threads(1)


def _pool(name: str, create: Callable[[], E], stop: Callable[[Any], None]) -> E:
    """The pool ``name``, created with ``create()`` on first use (and after :func:`shutdown`)."""
    with _LOCK:
        running = _POOLS.get(name)
        if running is None:
            running = _POOLS[name] = _Running(create(), stop)
        return cast(E, running.pool)


def _drop_queued(pool: Executor) -> None:
    """Shut a pool down: queued work is dropped, running work finishes."""
    pool.shutdown(wait=False, cancel_futures=True)


def _terminate(pool: Executor) -> None:
    """Shut a process pool down and end its workers now (a running job is abandoned).

    ``shutdown(wait=False)`` alone leaves an idle spawned worker orphaned when the server exits
    right after it, so the workers are terminated and joined explicitly."""
    workers = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in workers:
        proc.terminate()
    for proc in workers:
        proc.join(timeout=5)


def _job_process_pool() -> ProcessPoolExecutor:
    from engine.platform.jobs import worker_init

    return ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                               initializer=worker_init, initargs=(os.getpid(),))


def recommendation_pool() -> ThreadPoolExecutor:
    """Threads for recommendations (each with one torch thread, see
    :func:`single_inference_thread`)."""
    return _pool("recommend", lambda: ThreadPoolExecutor(
        max_workers=RECOMMENDATION_THREADS, thread_name_prefix="artds-recommend",
        initializer=single_inference_thread), _drop_queued)


def plan_pool() -> ThreadPoolExecutor:
    """Threads for reading and evaluating imported plans."""
    return _pool("plan", lambda: ThreadPoolExecutor(
        max_workers=PLAN_THREADS, thread_name_prefix="artds-plan"), _drop_queued)


def database_pool() -> ThreadPoolExecutor:
    """Threads for the database reads sessions poll."""
    return _pool("database", lambda: ThreadPoolExecutor(
        max_workers=DATABASE_THREADS, thread_name_prefix="artds-db"), _drop_queued)


async def in_database_thread(read: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``await in_database_thread(store.jobs, name, 1)``: run a database call in
    :func:`database_pool`, with the caller's context variables (as :func:`asyncio.to_thread`)."""
    loop = asyncio.get_running_loop()
    call = functools.partial(contextvars.copy_context().run, read, *args, **kwargs)
    return await loop.run_in_executor(database_pool(), call)


def learning_runner() -> Any:
    """The Learning Mode job runner of this process
    (:class:`engine.platform.jobs.StoreJobRunner`), created and started on first use. At
    shutdown it ends a job running here, worker and all, and fails it with the reason."""

    def create() -> Any:
        from app.db import get_store
        from engine import settings
        from engine.arclids.learning import job_runner

        url = get_store().url.render_as_string(hide_password=False)
        runner = job_runner(url, settings.learning_dir())
        runner.start()
        return runner

    return _pool("learning", create, lambda runner: runner.stop())


ASGIApp = Callable[[dict, Callable[[], Any], Callable[[dict], Any]], Any]


def on_startup(app: ASGIApp, callback: Callable[[], object]) -> ASGIApp:
    """``app`` (an ASGI app) with ``callback()`` run when the server starts it (ASGI lifespan
    ``startup``, before the app itself sees it)."""

    async def wrapped(scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await app(scope, receive, send)
            return

        async def starting() -> dict:
            message = await receive()
            if message.get("type") == "lifespan.startup":
                await asyncio.get_running_loop().run_in_executor(None, callback)
            return message

        await app(scope, starting, send)

    return wrapped


def planner_pool() -> ProcessPoolExecutor:
    """The fractionation planner's worker process (terminated at shutdown: a run belongs to a
    session, which is gone then)."""
    return _pool("planner", _job_process_pool, _terminate)


def shutdown() -> None:
    """Stop every pool (the app's shutdown; idempotent).

    Queued work is dropped. A running planner job is abandoned (the app is going away; its
    worker is terminated); a Learning Mode job running here is ended and failed with the reason
    (another app process, or this one restarted, takes the next queued job), and if the app
    process is killed instead, its worker exits too (:func:`engine.platform.jobs.worker_init`)
    and the job is given up on by the next job runner pass of any app process. Running threads
    finish their current call.
    """
    with _LOCK:
        pools = dict(_POOLS)
        _POOLS.clear()
    for running in pools.values():
        running.stop(running.pool)


atexit.register(shutdown)
