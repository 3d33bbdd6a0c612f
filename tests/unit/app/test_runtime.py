"""app.runtime: the app's worker pools are created once, shared, and all stopped by shutdown()."""

from __future__ import annotations

import os
import threading
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
