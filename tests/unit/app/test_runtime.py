"""app.runtime: the app's worker pools are created once, shared, and all stopped by shutdown()."""

from __future__ import annotations

import functools
import os
import signal
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from app import runtime
from tests.unit.app import run_async


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, exited but not yet reaped, counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def test_pools_are_shared_and_shutdown_stops_them_all() -> None:
    recommend = runtime.recommendation_pool()
    database = runtime.database_pool()
    assert runtime.recommendation_pool() is recommend and runtime.database_pool() is database
    # Recommendation threads serve with one torch thread.
    assert recommend.submit(lambda: __import__("torch").get_num_threads()).result() == 1
    planner = runtime.planner_pool()
    assert runtime.planner_pool() is planner
    worker = planner.submit(os.getpid).result(timeout=120)
    assert worker != os.getpid() and _alive(worker)
    runtime.shutdown()
    assert not _alive(worker)  # the planner's worker is terminated, not left idle
    for pool in (recommend, database, planner):
        with pytest.raises(RuntimeError):
            pool.submit(os.getpid)
    runtime.shutdown()  # idempotent
    fresh = runtime.recommendation_pool()  # asked again: created afresh
    assert fresh is not recommend and fresh.submit(lambda: 2).result() == 2
    runtime.shutdown()


def test_database_calls_run_off_the_event_loop() -> None:
    async def main() -> tuple[str, str]:
        return threading.current_thread().name, await runtime.in_database_thread(
            lambda prefix: prefix + threading.current_thread().name, "in ")

    try:
        loop_thread, called = run_async(main())
    finally:
        runtime.shutdown()
    assert called.startswith("in artds-db") and loop_thread != called[3:]


def test_plan_pool_is_shared_and_stopped() -> None:
    pool = runtime.plan_pool()
    try:
        assert runtime.plan_pool() is pool
        assert pool.submit(lambda: threading.current_thread().name).result().startswith(
            "artds-plan")
    finally:
        runtime.shutdown()
    with pytest.raises(RuntimeError):
        pool.submit(os.getpid)


def test_on_startup_runs_before_the_app_sees_the_startup() -> None:
    order: list[str] = []

    async def app(scope: dict, receive, send) -> None:
        if scope["type"] == "lifespan":
            order.append((await receive())["type"])
            await send({"type": "lifespan.startup.complete"})
        else:
            order.append(scope["type"])

    wrapped = runtime.on_startup(app, lambda: order.append("callback"))

    async def main() -> None:
        async def receive() -> dict:
            return {"type": "lifespan.startup"}

        async def send(message: dict) -> None:
            order.append(message["type"])

        await wrapped({"type": "lifespan"}, receive, send)
        await wrapped({"type": "http"}, receive, send)

    try:
        run_async(main())
    finally:
        runtime.shutdown()
    assert order == ["callback", "lifespan.startup", "lifespan.startup.complete", "http"]
def test_lru_cache_keeps_the_most_recently_used() -> None:
    cache: runtime.LruCache[str, int] = runtime.LruCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # "a" is now the most recent: "b" goes first
    cache.put("c", 3)
    assert cache.get("b") is None and cache.get("a") == 1 and cache.get("c") == 3
    assert len(cache) == 2 and (cache.hits, cache.misses) == (3, 1)
    with pytest.raises(ValueError, match="maxsize"):
        runtime.LruCache(0)


def test_lru_cache_computes_a_key_once_for_concurrent_askers() -> None:
    cache: runtime.LruCache[str, int] = runtime.LruCache(4)
    calls: list[int] = []
    started = threading.Event()
    release = threading.Event()

    def compute() -> int:
        calls.append(1)
        started.set()
        release.wait(30)
        return 42

    with ThreadPoolExecutor(max_workers=6) as pool:
        first = pool.submit(cache.get_or_compute, "k", compute)
        assert started.wait(30)
        others = [pool.submit(cache.get_or_compute, "k", compute) for _ in range(5)]
        release.set()
        assert first.result(30) == 42 and [f.result(30) for f in others] == [42] * 5
    assert calls == [1]


def test_lru_cache_failed_computation_is_not_stored_and_others_retry() -> None:
    cache: runtime.LruCache[str, int] = runtime.LruCache(4)

    def fail() -> int:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        cache.get_or_compute("k", fail)
    assert cache.get_or_compute("k", lambda: 7) == 7


def test_cpu_pool_runs_in_worker_processes_with_one_torch_thread_and_survives_a_killed_worker(
) -> None:
    try:
        pid, threads = runtime.in_cpu_pool_blocking(_pid_and_threads)
        assert pid != os.getpid() and threads == 1
        os.kill(pid, signal.SIGKILL)  # the pool is broken now: the next call gets a fresh one
        again, _ = runtime.in_cpu_pool_blocking(_pid_and_threads)
        assert again != pid and _alive(again)
        assert run_async(runtime.in_cpu_pool(functools.partial(pow, 2, 10))) == 1024
    finally:
        runtime.shutdown()


def _pid_and_threads() -> tuple[int, int]:
    import torch

    return os.getpid(), torch.get_num_threads()


def test_shiny_reads_a_reactive_s_source_once_per_definition(monkeypatch) -> None:
    """Every session creates its calcs anew (closures of the same code): after
    lighten_shiny_session_start the source is read once per definition, not per session, and
    the recorded location is the one shiny finds itself."""
    import inspect

    from shiny import reactive
    from shiny.otel import _attributes

    def make() -> Callable[[], int]:
        def total() -> int:
            return 1

        return total

    functions = [make() for _ in range(5)]
    reads: list[object] = []
    original = inspect.getsourcelines
    monkeypatch.setattr(inspect, "getsourcelines",
                        lambda obj: reads.append(obj) or original(obj))
    runtime.lighten_shiny_session_start()
    runtime.lighten_shiny_session_start()  # idempotent
    calcs = [reactive.calc(fn) for fn in functions]
    assert len(reads) == 1
    shiny_own = inspect.unwrap(_attributes.extract_source_ref)(functions[3])
    assert shiny_own["code.function.name"] == "total"
    assert all(c._otel_attrs == calcs[0]._otel_attrs for c in calcs)
    assert {k: calcs[0]._otel_attrs[k] for k in shiny_own} == shiny_own
