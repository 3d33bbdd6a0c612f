"""engine.platform.jobs: progress and cancel through one interface, backed by the store (Learning
Mode) and by files (the planner); a planner run stops at its next checkpoint when cancelled."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import ClassVar

import pytest

from engine.planner import jobs as planner_jobs
from engine.platform.jobs import (
    Cancelled,
    FileJob,
    JobReporter,
    StoreJobReporter,
    checkpoint,
)
from engine.platform.store import Store
from tests.unit.planner.helpers import tiny_plan


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
