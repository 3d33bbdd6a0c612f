"""engine.platform.jobs: progress and cancel through one interface, backed by the store (Learning
Mode) and by files (the planner); a planner run stops at its next checkpoint when cancelled; the
job runner claims each queued job once, gives up on jobs whose worker is gone (killed worker,
killed app, silent replica) with the reason, ends a worker that ignores a cancel, and runs the
next job afterwards."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ClassVar

import pytest
from sqlalchemy import update

from engine.planner import jobs as planner_jobs
from engine.platform.jobs import (
    Cancelled,
    FileJob,
    JobReporter,
    StoreJobReporter,
    StoreJobRunner,
    checkpoint,
    identity_alive,
    process_identity,
)
from engine.platform.store import JobInfo, Store
from engine.platform.store.tables import TrainingJob
from tests.unit.planner.helpers import tiny_plan
from tests.unit.platform import job_targets

ROOT = Path(__file__).resolve().parents[3]
HANG_GUARD_S = 120.0
"""Give up waiting after this long (a hang guard on a loaded machine, not a speed check)."""


class _Recorder:
    """An in-memory reporter: records progress, cancels when told."""

    def __init__(self, cancel_when: float = 2.0) -> None:
        self.calls: list[tuple[float, str]] = []
        self.cancel_when = cancel_when

    def progress(self, share: float, message: str) -> None:
        self.calls.append((share, message))

    def cancelled(self) -> bool:
        return bool(self.calls) and self.calls[-1][0] >= self.cancel_when


def test_checkpoint_reports_then_raises_when_cancelled() -> None:
    reporter = _Recorder(cancel_when=0.5)
    assert isinstance(reporter, JobReporter)
    checkpoint(reporter, 0.25, "first")
    with pytest.raises(Cancelled, match="second"):
        checkpoint(reporter, 0.5, "second")
    assert reporter.calls == [(0.25, "first"), (0.5, "second")]  # reported before stopping


def test_file_job_progress_and_cancel(tmp_path: Path) -> None:
    job = FileJob(tmp_path)
    assert isinstance(job, JobReporter)
    assert job.read() is None and not job.cancelled()
    job.progress(0.5, "half")
    assert job.read() == {"share": 0.5, "message": "half"}
    job.progress(1, "done")
    assert job.read() == {"share": 1.0, "message": "done"}
    assert [p.name for p in tmp_path.iterdir()] == ["progress.json"]  # no temporary left
    # The session and the worker process each hold their own copy: the flag is in the folder.
    worker_side = pickle.loads(pickle.dumps(job))
    job.request_cancel()
    assert worker_side.cancelled()
    with pytest.raises(Cancelled):
        checkpoint(worker_side, 0.6, "next")
    assert job.read() == {"share": 0.6, "message": "next"}


def test_store_job_reporter_progress_and_cancel(sqlite_store: Store) -> None:
    job = sqlite_store.create_job("nsclc", {"budget": "tiny"}, username="phil")
    sqlite_store.claim_job("host:1:1", job)  # running (a queued job's cancel ends it at once)
    reporter = StoreJobReporter(sqlite_store, job)
    assert isinstance(reporter, JobReporter)
    checkpoint(reporter, 0.25, "split 1 of 2")
    info = sqlite_store.job(job)
    assert (info.progress, info.message) == (0.25, "split 1 of 2")
    sqlite_store.request_cancel(job, username="phil")
    assert reporter.cancelled()  # no write since: read afresh
    with pytest.raises(Cancelled, match="split 2 of 2"):
        checkpoint(reporter, 0.5, "split 2 of 2")
    info = sqlite_store.job(job)
    assert (info.progress, info.message, info.cancel_requested) == (0.5, "split 2 of 2", True)


def test_store_checkpoint_is_one_round_trip() -> None:
    class Rows:
        def __init__(self) -> None:
            self.calls: list[dict] = []

        def update_job(self, job_id: int, **values: object) -> bool:
            self.calls.append(values)
            return len(self.calls) >= 2  # a cancel arrives with the second write

    rows = Rows()
    reporter = StoreJobReporter(rows, 7)
    checkpoint(reporter, 0.1, "a")
    assert rows.calls == [{"progress": 0.1, "message": "a"}]
    with pytest.raises(Cancelled):
        checkpoint(reporter, 0.2, "b")
    assert len(rows.calls) == 2


class _CancelAt(FileJob):
    """A planner job folder whose user presses Cancel right after ``message`` was reported."""

    message: ClassVar[str] = ""
    seen: ClassVar[list[str]] = []

    def progress(self, share: float, message: str) -> None:
        super().progress(share, message)
        self.seen.append(message)
        if message == self.message:
            self.request_cancel()


@pytest.mark.parametrize("after", ["training the Double-DQN planner", "training: episode 1 of 3"])
def test_planner_run_cancelled_after_a_report_stops_there(
    after: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_CancelAt, "message", after)
    monkeypatch.setattr(_CancelAt, "seen", [])
    monkeypatch.setattr(planner_jobs, "FileJob", _CancelAt)
    assert planner_jobs.run_plan_job(tiny_plan().to_dict(), tmp_path) is None
    # It stopped at the first checkpoint after the cancel: nothing more was reported, and the
    # last word is "cancelled" at the share reached.
    assert _CancelAt.seen[-2:] == [after, planner_jobs.CANCELLED_MESSAGE]
    assert _CancelAt.seen.count(after) == 1
    assert "evaluating on fresh scenarios" not in _CancelAt.seen
    last = FileJob(tmp_path).read()
    assert last is not None and last["message"] == "cancelled"
    assert last["share"] == (0.0 if after.startswith("training the") else pytest.approx(0.8 / 3))


def test_planner_run_cancelled_while_queued_never_starts(tmp_path: Path) -> None:
    FileJob(tmp_path).request_cancel()
    assert planner_jobs.run_plan_job(tiny_plan().to_dict(), tmp_path) is None
    assert FileJob(tmp_path).read() == {"share": 0.0, "message": "cancelled"}


# --------------------------------------------------------------------------------------------
# The queue in the store: claims, give-ups, final states


def _wait_for(what: Callable[[], object], description: str) -> object:
    deadline = time.monotonic() + HANG_GUARD_S
    while True:
        found = what()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {description}")
        time.sleep(0.05)


def test_each_queued_job_is_claimed_once_by_concurrent_claimers(store: Store) -> None:
    url = store.url.render_as_string(hide_password=False)
    jobs = [store.create_job("nsclc", {"budget": "tiny"}, username="phil") for _ in range(6)]
    skipped = store.create_job("nsclc", {}, username="phil")
    cancelled = store.request_cancel(skipped, username="phil")  # queued: ends at once
    assert cancelled is not None and cancelled.status == "cancelled"
    assert cancelled.finished_at is not None
    claimed: list[int] = []
    start = threading.Barrier(4)

    def claimer(name: str) -> None:
        own = Store(url)  # a process of its own would hold its own connections
        try:
            start.wait()
            while (job := own.claim_job(name)) is not None:
                claimed.append(job.id)
                assert (job.status, job.worker) == ("running", name)
        finally:
            own.dispose()

    threads = [threading.Thread(target=claimer, args=(f"host:{i}:0",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == jobs  # every job once; the cancelled one never
    events = [e for e in store.events(limit=100) if e["action"] == "training_claimed"]
    assert sorted(e["detail"]["job"] for e in events) == jobs
    assert store.claim_job("host:9:0") is None


def _last_sign(store: Store, job_id: int, ago_s: float) -> None:
    with store.session() as s:
        s.execute(update(TrainingJob).where(TrainingJob.id == job_id).values(
            heartbeat_at=datetime.now(UTC) - timedelta(seconds=ago_s)))


def test_a_silent_job_is_given_up_on_and_stays_ended(store: Store) -> None:
    silent, cancelled, alive = (store.create_job("nsclc", {}, username="phil") for _ in range(3))
    for job in (silent, cancelled, alive):
        assert store.claim_job("otherhost:7:1", job) is not None
    assert store.heartbeat_job(alive) is False  # running, no cancel: go on
    store.request_cancel(cancelled, username="phil")
    _last_sign(store, silent, 120)
    _last_sign(store, cancelled, 120)
    ended = store.abandon_stale_jobs(datetime.now(UTC) - timedelta(seconds=60),
                                     "no heartbeat from its worker")
    assert sorted(ended) == [silent, cancelled]
    info = store.job(silent)
    assert (info.status, info.error) == ("failed", "no heartbeat from its worker")
    assert info.finished_at is not None
    info = store.job(cancelled)  # the user had asked to stop it: cancelled, with the reason
    assert (info.status, info.message) == ("cancelled", "cancelled: no heartbeat from its worker")
    assert store.job(alive).status == "running"
    # A late write of the worker given up on changes nothing, and tells it to stop.
    assert store.update_job(silent, status="done", progress=1.0, message="done") is True
    assert store.heartbeat_job(silent) is True
    assert (store.job(silent).status, store.job(silent).message) == ("failed", "failed")
    assert store.abandon_job(silent, "again") is False
    # Only the worker that claimed it: another worker's name changes nothing.
    assert store.abandon_job(alive, "gone", worker="otherhost:8:1") is False
    assert store.abandon_job(alive, "gone", worker="otherhost:7:1") is True
    actions = [e["action"] for e in store.events(limit=5)]
    assert actions.count("training_abandoned") == 3


def test_process_identity_tells_a_live_process_from_a_gone_one() -> None:
    me = process_identity()
    assert identity_alive(me) is True
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    theirs = process_identity(child.pid)
    child.wait()
    assert identity_alive(theirs) is False
    host, pid, start = me.split(":")
    assert identity_alive(f"{host}:{pid}:{start}1") is False  # a later process with my pid
    assert identity_alive(f"another-{host}:{pid}:{start}") is None  # only a heartbeat can tell


# --------------------------------------------------------------------------------------------
# The job runner, with real worker processes


def _runner(store: Store, target: Callable[..., object], *args: object,
            **options: float) -> StoreJobRunner:
    timings = {"poll_s": 0.1, "heartbeat_s": 0.2, "stale_after_s": 30.0,
               "cancel_grace_s": 0.5} | options
    return StoreJobRunner(store.url.render_as_string(hide_password=False), target, args,
                          **timings)


@pytest.fixture
def started() -> Iterator[list[StoreJobRunner]]:
    """Runners a test starts; each is stopped after the test."""
    runners: list[StoreJobRunner] = []
    yield runners
    for runner in runners:
        runner.stop()


def _running_worker(store: Store, runner: StoreJobRunner, job_id: int) -> int:
    """The pid of the worker running ``job_id`` once it has reported (after the claim)."""
    def reported() -> bool:
        pid = runner.worker_pid
        job = store.job(job_id)
        return (runner.running_job == job_id and pid is not None
                and job.message not in ("queued", "starting")
                and job.worker == process_identity(pid))

    _wait_for(reported, f"job {job_id} to run")
    pid = runner.worker_pid
    assert pid is not None and pid != os.getpid()
    return pid


def _ended(store: Store, job_id: int) -> JobInfo:
    return _wait_for(lambda: (j := store.job(job_id)).status not in ("queued", "running") and j,
                     f"job {job_id} to end")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_killed_worker_fails_its_job_with_the_reason_and_the_next_job_runs(
    sqlite_store: Store, started: list[StoreJobRunner], sig: signal.Signals
) -> None:
    runner = _runner(sqlite_store, job_targets.stepping_job, 30.0)
    started.append(runner)
    runner.start()
    first = sqlite_store.create_job("nsclc", {}, username="phil")
    pid = _running_worker(sqlite_store, runner, first)
    os.kill(pid, sig)
    info = _ended(sqlite_store, first)
    assert info.status == "failed"
    assert f"its worker process was killed ({sig.name})" in info.error
    # The runner is free again: the next job runs to its end.
    runner.stop()
    quick = _runner(sqlite_store, job_targets.stepping_job, 0.0)
    started.append(quick)
    quick.start()
    second = sqlite_store.create_job("nsclc", {}, username="phil")
    quick.kick()
    assert _ended(sqlite_store, second).status == "done"


def test_cancel_ends_a_worker_that_does_not_stop(sqlite_store: Store,
                                                 started: list[StoreJobRunner]) -> None:
    runner = _runner(sqlite_store, job_targets.stubborn_job)
    started.append(runner)
    runner.start()
    job = sqlite_store.create_job("nsclc", {}, username="phil")
    pid = _running_worker(sqlite_store, runner, job)
    sqlite_store.request_cancel(job, username="phil")
    runner.kick()
    info = _ended(sqlite_store, job)
    assert info.status == "cancelled"
    assert "did not stop at a checkpoint within 0.5 s and was ended" in info.message
    assert identity_alive(process_identity(pid)) is not True
    _wait_for(lambda: runner.running_job is None, "the runner to be idle")


def test_a_cooperative_worker_stops_at_its_next_checkpoint(
    sqlite_store: Store, started: list[StoreJobRunner]
) -> None:
    runner = _runner(sqlite_store, job_targets.stepping_job, 0.5, 100, cancel_grace_s=60.0)
    started.append(runner)
    runner.start()
    job = sqlite_store.create_job("nsclc", {}, username="phil")
    _running_worker(sqlite_store, runner, job)
    sqlite_store.request_cancel(job, username="phil")
    info = _ended(sqlite_store, job)
    assert (info.status, info.message) == ("cancelled", "cancelled")  # its own words


def test_a_job_of_a_silent_replica_is_given_up_on(sqlite_store: Store) -> None:
    job = sqlite_store.create_job("nsclc", {}, username="phil")
    sqlite_store.claim_job("another-machine:1:1", job)
    _last_sign(sqlite_store, job, 45)
    runner = _runner(sqlite_store, job_targets.stepping_job, 0.0, stale_after_s=30.0)
    try:
        runner.run_once()
    finally:
        runner.stop()
    info = sqlite_store.job(job)
    assert info.status == "failed" and "no heartbeat from its worker for more than 30 s" in \
        info.error


_APP = """
import sys, time
from engine.platform.jobs import StoreJobRunner
from tests.unit.platform.job_targets import stepping_job
if __name__ == "__main__":
    runner = StoreJobRunner(sys.argv[1], stepping_job, (60.0,), poll_s=0.1, heartbeat_s=0.2,
                            stale_after_s=3600)
    runner.start()
    time.sleep(3600)
"""


def test_a_job_of_an_app_killed_mid_run_fails_when_the_app_restarts(
    sqlite_store: Store, tmp_path: Path, started: list[StoreJobRunner]
) -> None:
    url = sqlite_store.url.render_as_string(hide_password=False)
    (tmp_path / "app.py").write_text(_APP)
    app = subprocess.Popen([sys.executable, str(tmp_path / "app.py"), url], cwd=ROOT,
                           env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        job = sqlite_store.create_job("nsclc", {}, username="phil")
        _wait_for(lambda: (j := sqlite_store.job(job)).message.startswith("step")
                  and j.worker != process_identity(app.pid), "the app's worker to run the job")
    finally:
        app.kill()  # kill -9: no shutdown hook runs
        app.wait()
    worker = sqlite_store.job(job).worker
    _wait_for(lambda: identity_alive(worker) is False, "the orphaned worker to exit")
    assert sqlite_store.job(job).status == "running"  # nobody has noticed yet
    # The restarted app's runner: its first pass, long before any heartbeat could go stale.
    restarted = _runner(sqlite_store, job_targets.stepping_job, 0.0, stale_after_s=3600.0)
    started.append(restarted)
    restarted.run_once()
    info = sqlite_store.job(job)
    assert info.status == "failed"
    assert "its worker process no longer exists" in info.error
    # ... and a new run is accepted and runs.
    again = sqlite_store.create_job("nsclc", {}, username="phil")
    restarted.start()
    assert _ended(sqlite_store, again).status == "done"


def test_the_clinic_guide_states_the_runners_timings() -> None:
    from engine.platform import jobs

    guide = " ".join((ROOT / "docs" / "clinic.md").read_text(encoding="utf-8").split())
    assert f"a heartbeat every {jobs.HEARTBEAT_S:g} seconds" in guide
    assert f"heartbeat stops (after {jobs.STALE_AFTER_S:g} seconds)" in guide
    assert f"{jobs.STALE_AFTER_S:g} s after the last heartbeat" in guide
    assert f"stopped {jobs.CANCEL_GRACE_S:g} seconds later is ended" in guide
