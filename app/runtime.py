"""The app process's worker pools, in one place, and their shutdown.

Every session of an app process shares one event loop: anything slower than a moment runs in
one of these pools, created on first use and shared by all sessions of the process.

* :func:`recommendation_pool`: threads computing and auditing recommendations
  (:mod:`app.recommending`); torch releases the GIL, two at a time suit a 2-core machine.
* :func:`database_pool` and :func:`in_database_thread`: threads for the database reads sessions
  poll (:func:`app.db.poll_in_thread`, the Learning Mode job watch), never on the event loop.
* :func:`learning_pool`: the Learning Mode training worker process
  (:func:`engine.arclids.learning.run_job`).
* :func:`planner_pool`: the fractionation planner's worker process
  (:func:`engine.planner.jobs.run_plan_job`).

The two process pools have one worker each (one core per long job; jobs queue), start it with
"spawn" (torch starts clean in it) and :func:`engine.platform.jobs.worker_init` (it exits when
the app process is killed). :func:`shutdown` stops them all: the app's shutdown hook and, for a
process that ends without one, an ``atexit`` hook. A pool asked for after :func:`shutdown` is
created afresh.
"""

from __future__ import annotations

import asyncio
import atexit
import contextvars
import functools
import multiprocessing
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import ParamSpec, TypeVar, cast

__all__ = [
    "cheap_shiny_introspection",
    "database_pool",
    "freeze_startup_heap",
    "in_database_thread",
    "learning_pool",
    "planner_pool",
    "prompt_event_loop",
    "recommendation_pool",
    "shutdown",
    "single_inference_thread",
]

P = ParamSpec("P")
T = TypeVar("T")
E = TypeVar("E", bound=Executor)

RECOMMENDATION_THREADS = 2
"""Recommendations (and Model review contrasts) computed at a time (2-core machines)."""
DATABASE_THREADS = min(32, (os.cpu_count() or 1) + 4)
"""Database reads at a time: as many as asyncio's default executor, which served them before."""


@dataclass(frozen=True)
class _Running:
    """A pool created by this module and how :func:`shutdown` stops it."""

    pool: Executor
    """The pool."""
    stop: Callable[[Executor], None]
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


def cheap_shiny_introspection() -> None:
    """Take Shiny's source introspection off the session start (process-wide, idempotent).

    Shiny 1.8 labels its reactive objects for OpenTelemetry from their source, on the event
    loop every session shares, even when no telemetry is collected (artds collects none):

    * every ``reactive.value`` made without ``name=`` (and each extended task's status values)
      infers its variable name with :func:`inspect.stack`, which reads the source of every frame
      and searches ``sys.modules`` for each; with torch loaded, under a web server's call stack,
      that was 5.2 s of a 5.3 s session start on a loaded 2-core machine. The names are only
      used in telemetry logs: values are made without one.
    * every effect, output and extended task reads and tokenises its function's source
      (:func:`inspect.getsourcelines`): 0.1–0.3 s per panel. The result depends only on the
      function's code, so it is computed once per code object and reused by every session.

    A Shiny without these internals is left alone.
    """
    from shiny.otel import _attributes
    from shiny.reactive import _reactives

    value_class = getattr(_reactives, "Value", None)
    if value_class is not None and hasattr(value_class, "_try_infer_name"):
        value_class._try_infer_name = _no_name
    original = getattr(_attributes, "extract_source_ref", None)
    if original is None or getattr(original, "_artds_cached", False):
        return
    cached = _source_ref_by_code(original)
    for module_name in ("shiny.otel._attributes", "shiny.reactive._reactives",
                        "shiny.reactive._extended_task", "shiny.session._session"):
        module = sys.modules.get(module_name)
        if module is not None and getattr(module, "extract_source_ref", None) is original:
            module.extract_source_ref = cached


def freeze_startup_heap() -> None:
    """Leave the objects made at start-up (imports, models, protocols) out of every later
    garbage collection: collect once, then :func:`gc.freeze` them (process-wide).

    A full collection walks every tracked object and holds the GIL while it does. The app
    process holds about half a million of them after start-up, so a full collection triggered
    by any thread's allocations (a 10,000-row upload validated and saved in a database thread)
    stopped the event loop for 0.35–0.9 s (measured: 553 ms; 18–22 ms once frozen). Frozen
    objects are never freed, which suits these: they live as long as the process. Call it once
    the app is built.
    """
    import gc

    gc.collect()
    gc.freeze()


GIL_SWITCH_S = 0.001
"""How long a thread holds the GIL before another waiting thread gets it (Python's default:
5 ms)."""


def prompt_event_loop() -> None:
    """Hand the GIL to the event loop sooner while worker threads compute (process-wide).

    The loop needs the GIL a few times to answer any request; with a worker thread validating
    and saving a large upload in pure Python it waited up to the switch interval each time.
    A 1 ms interval halved the loop's longest wait in that case (measured: 19–23 ms → 11–16 ms
    with a 10,000-row upload in a thread) at no cost that matters here: the heavy numeric work
    (torch, numpy) releases the GIL anyway.
    """
    sys.setswitchinterval(GIL_SWITCH_S)


def _no_name(_value: object) -> None:
    return None


def _source_ref_by_code(extract: Callable[[Callable], dict]) -> Callable[[Callable], dict]:
    """``extract(func)`` computed once per code object of the (unwrapped) function."""
    import inspect

    seen: dict[object, dict] = {}
    lock = threading.Lock()

    def cached(func: Callable) -> dict:
        try:
            code = inspect.unwrap(func).__code__
        except (AttributeError, ValueError):  # no code object (builtins, callables): as before
            return extract(func)
        with lock:
            found = seen.get(code)
        if found is None:
            found = extract(func)
            with lock:
                seen[code] = found
        return dict(found)

    cached._artds_cached = True  # type: ignore[attr-defined]
    return cached


def _pool(name: str, create: Callable[[], E], stop: Callable[[Executor], None]) -> E:
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


def learning_pool() -> ProcessPoolExecutor:
    """The Learning Mode training worker process (a running job is left to finish at shutdown:
    its database row then records how it ended)."""
    return _pool("learning", _job_process_pool, _drop_queued)


def planner_pool() -> ProcessPoolExecutor:
    """The fractionation planner's worker process (terminated at shutdown: a run belongs to a
    session, which is gone then)."""
    return _pool("planner", _job_process_pool, _terminate)


def shutdown() -> None:
    """Stop every pool (the app's shutdown; idempotent).

    Queued work is dropped. A running planner job is abandoned (the app is going away; its
    worker is terminated); a running Learning Mode job is left to finish (its database row then
    records its outcome), and if the app process is killed meanwhile its worker exits too
    (:func:`engine.platform.jobs.worker_init`). Running threads finish their current call.
    """
    with _LOCK:
        pools = dict(_POOLS)
        _POOLS.clear()
    for running in pools.values():
        running.stop(running.pool)


atexit.register(shutdown)
