"""Learning Mode jobs through the real app process (no browser): a job survives nothing it
should not. ``kill -9`` of the app mid-training, then a restart: the job is failed at start-up
with the reason; SIGTERM (a container's stop) mid-training: failed with the reason at shutdown;
each time a new run is accepted and runs to its end on the next start."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from engine.arclids.learning import LearningConfig
from engine.platform.store import JobInfo, Store
from tests.served import start_app

pytestmark = pytest.mark.e2e

HANG_GUARD_S = 300.0
"""Give up waiting for a job after this long (a hang guard on a loaded machine)."""


def _wait_job(store: Store, job_id: int, done: str) -> JobInfo:
    """Wait until job ``job_id`` is ``running`` with its worker training (``done="training"``)
    or has ended (``done="ended"``)."""
    deadline = time.monotonic() + HANG_GUARD_S
    while True:
        job = store.job(job_id)
        assert job is not None
        if done == "training" and job.status == "running" and ":" in job.message:
            return job  # e.g. "TCP: member 1 of 20": its worker is training
        if done == "ended" and job.status not in ("queued", "running"):
            return job
        assert job.status != "done" or done == "ended", "the standard run ended already"
        assert time.monotonic() < deadline, f"job {job_id}: {job}"
        time.sleep(0.2)


def test_jobs_outlive_no_app_restart(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'artds.sqlite3'}"
    env = {"ARTDS_DATABASE_URL": url, "ARTDS_LEARNING_DIR": str(tmp_path / "learning")}
    log = tmp_path / "app.log"
    store = Store(url)
    store.upgrade()
    standard = LearningConfig("nsclc", budget="standard").to_dict()  # minutes: still running
    try:
        # 1. The app is killed (kill -9) while its worker trains.
        app = start_app(env, log)
        killed = store.create_job("nsclc", standard, username="phil")
        _wait_job(store, killed, "training")
        app.stop(signal.SIGKILL)
        assert store.job(killed).status == "running"  # nothing could record the end
        # 2. The restarted app gives up on it at start-up (its worker exited with the app), and
        #    accepts the next job; then it is stopped as a container is (SIGTERM).
        app = start_app(env, log)
        info = _wait_job(store, killed, "ended")
        assert info.status == "failed" and "no longer exists" in info.error, info
        stopped = store.create_job("nsclc", standard, username="phil")
        _wait_job(store, stopped, "training")
        app.stop(signal.SIGTERM)  # uvicorn shuts down, then exits by the signal it caught
        info = store.job(stopped)
        assert info.status == "failed" and "was stopped" in info.error, info
        # 3. Started again, the app runs a new job to its end.
        app = start_app(env, log)
        tiny = LearningConfig("nsclc", budget="tiny").to_dict()
        done = _wait_job(store, store.create_job("nsclc", tiny, username="phil"), "ended")
        assert done.status == "done" and done.model_version is not None, done
        app.stop(signal.SIGTERM)
        assert list((tmp_path / "learning").iterdir()) == [tmp_path / "learning" /
                                                           done.model_version]  # no scratch
    finally:
        app.stop(signal.SIGKILL)
        store.dispose()
