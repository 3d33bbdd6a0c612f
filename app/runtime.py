"""The app process's worker pools, in one place, and their shutdown.

Every session of an app process shares one event loop: anything slower than a moment runs in
one of these pools, created on first use and shared by all sessions of the process.

* :func:`cpu_pool`: worker processes, one per core, doing the sessions' CPU-bound work: the
  recommendations (:mod:`app.recommending`) and the plotly figures (:mod:`app.plots`). Threads
  would not do: building a figure is pure Python (plotly validates every property: ~0.1 s for
  the outcome space), run one thread at a time under the GIL; and torch, which releases the
  GIL around every small operation, must win it back each time from an event loop busy with
  other sessions — measured, a 13 ms recommendation took 15 s while twenty sessions started.
  In processes, both cores work and the event loop only routes messages.
* :func:`recommendation_pool`: threads waiting for those processes, auditing recommendations and
  computing the few things that stay in the app process (:mod:`app.recommending`); two at a
  time suit a 2-core machine.
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
one, an ``atexit`` hook. A pool asked for after :func:`shutdown` is created afresh; so is a CPU
pool whose worker died (:func:`in_cpu_pool` and :func:`in_cpu_pool_blocking` retry there once).

:class:`LruCache` holds what the sessions of a process share once computed: recommendations per
input and model version (:mod:`app.recommending`) and figures per content (:mod:`app.plots`).
"""

from __future__ import annotations

import asyncio
import atexit
import contextvars
import functools
import inspect
import multiprocessing
import os
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Generic, ParamSpec, TypeVar, cast

__all__ = [
    "CPU_PROCESSES",
    "LruCache",
    "cheap_shiny_introspection",
    "cpu_pool",
    "cpu_pool_ready",
    "database_pool",
    "freeze_startup_heap",
    "in_cpu_pool",
    "in_cpu_pool_blocking",
    "in_database_thread",
    "learning_runner",
    "on_startup",
    "plan_pool",
    "planner_pool",
    "prompt_event_loop",
    "recommendation_pool",
    "shutdown",
    "single_inference_thread",
    "warm_up_cpu_pool",
]

P = ParamSpec("P")
T = TypeVar("T")
E = TypeVar("E")
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

RECOMMENDATION_THREADS = 2
"""Recommendations (and Model review contrasts) computed at a time (2-core machines)."""
PLAN_THREADS = 2
"""Plan imports read and evaluated at a time (2-core machines; more queue)."""
DATABASE_THREADS = min(32, (os.cpu_count() or 1) + 4)
"""Database reads at a time: as many as asyncio's default executor, which served them before."""
CPU_PROCESSES = 2
"""Worker processes of :func:`cpu_pool` (one per core of a 2-core machine)."""


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
    """``extract(func)`` computed once per code object and name of the (unwrapped) function
    (closures of one definition share both)."""

    seen: dict[object, dict] = {}
    lock = threading.Lock()

    @functools.wraps(extract)
    def cached(func: Callable) -> dict:
        try:
            code = (inspect.unwrap(func).__code__, getattr(func, "__name__", None))
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


def _cpu_worker_init(parent_pid: int) -> None:
    """Initialiser of a CPU worker: one torch thread (two workers on two cores must not
    oversubscribe them; see :func:`single_inference_thread`) and exit when the app process is
    gone."""
    from engine.platform.jobs import worker_init

    single_inference_thread()
    worker_init(parent_pid)


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
def cpu_pool() -> ProcessPoolExecutor:
    """The processes doing the sessions' CPU-bound work (short: a running call is abandoned at
    shutdown)."""
    return _pool("cpu", lambda: ProcessPoolExecutor(
        max_workers=CPU_PROCESSES, mp_context=multiprocessing.get_context("spawn"),
        initializer=_cpu_worker_init, initargs=(os.getpid(),)), _terminate)


def _forget(name: str, pool: Executor) -> None:
    """Drop pool ``name`` if it is still ``pool`` (a broken pool: the next ask makes a new one)."""
    with _LOCK:
        running = _POOLS.get(name)
        if running is None or running.pool is not pool:
            return
        del _POOLS[name]
    running.stop(pool)


async def in_cpu_pool(fn: Callable[[], T]) -> T:
    """``await in_cpu_pool(job)``: run the picklable ``job`` (a module-level function or a
    ``functools.partial`` of one, with picklable arguments) in :func:`cpu_pool`. A pool whose
    worker died (killed, out of memory) is replaced and the job tried once more."""
    loop = asyncio.get_running_loop()
    for attempt in (1, 2):
        pool = cpu_pool()
        try:
            return await loop.run_in_executor(pool, fn)
        except BrokenProcessPool:
            _forget("cpu", pool)
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


_CPU_WARM = threading.Event()


def warm_up_cpu_pool(fn: Callable[..., object], *args: object) -> None:
    """Start the :func:`cpu_pool` workers now and run ``fn(*args)`` (picklable) once per
    worker in the background (e.g. load the default models): :func:`cpu_pool_ready` is True
    once every run ended (failed ones included: a worker then loads what it needs on use)."""
    pool = cpu_pool()
    left = [CPU_PROCESSES]
    lock = threading.Lock()

    def done(_future: object) -> None:
        with lock:
            left[0] -= 1
            if left[0] == 0:
                _CPU_WARM.set()

    _CPU_WARM.clear()
    for _ in range(CPU_PROCESSES):
        pool.submit(fn, *args).add_done_callback(done)


def cpu_pool_ready() -> bool:
    """Whether the warm-up of :func:`warm_up_cpu_pool` ended (True when none was asked for):
    until then work sent to :func:`cpu_pool` would queue behind it, so callers do it in this
    process instead."""
    return _CPU_WARM.is_set() or "cpu" not in _POOLS


def in_cpu_pool_blocking(fn: Callable[[], T]) -> T:
    """:func:`in_cpu_pool` for a worker thread: blocks it (not the GIL) until done."""
    for attempt in (1, 2):
        pool = cpu_pool()
        try:
            return pool.submit(fn).result()
        except BrokenProcessPool:
            _forget("cpu", pool)
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


class LruCache(Generic[K, V]):
    """A thread-safe least-recently-used cache of at most ``maxsize`` entries (values are
    shared, never copied: store immutable ones)."""

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError(f"LruCache maxsize must be at least 1, got {maxsize}")
        self.maxsize = maxsize
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()
        self._running: dict[K, threading.Event] = {}
        self.hits = 0
        """Lookups that found their key (for tests and benchmarks)."""
        self.misses = 0
        """Lookups that did not."""

    def get(self, key: K) -> V | None:
        """The value of ``key`` (now the most recently used), or None."""
        with self._lock:
            if key not in self._items:
                self.misses += 1
                return None
            self.hits += 1
            self._items.move_to_end(key)
            return self._items[key]

    def put(self, key: K, value: V) -> None:
        """Store ``value`` under ``key``, dropping the least recently used entry when full."""
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.maxsize:
                self._items.popitem(last=False)

    def get_or_compute(self, key: K, compute: Callable[[], V]) -> V:
        """The value of ``key``, computed with ``compute()`` and stored when missing (blocking:
        call it from a worker thread). Threads asking for a key being computed wait for that
        computation instead of repeating it (twenty sessions opening on the same example
        patient compute it once); if it fails, each of them tries itself."""
        while True:
            with self._lock:
                if key in self._items:
                    self.hits += 1
                    self._items.move_to_end(key)
                    return self._items[key]
                running = self._running.get(key)
                if running is None:
                    self.misses += 1
                    running = self._running[key] = threading.Event()
                    mine = True
                else:
                    mine = False
            if not mine:
                running.wait()
                continue
            try:
                value = compute()
                self.put(key, value)
                return value
            finally:
                with self._lock:
                    del self._running[key]
                running.set()

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()



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

