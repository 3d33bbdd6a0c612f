"""engine.arclids.learning: a tiny Learning Mode job end to end (store → worker → version), cancel,
hash checks of the written version, and the clinic table's validation."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.arclids import learning
from engine.arclids.cohort import generate_cohort
from engine.arclids.recommend import input_hash
from engine.arclids.serving import load_learned_version
from engine.core.protocols import load_protocol
from engine.platform import registry
from engine.platform.jobs import Cancelled
from engine.platform.store import CaseRecord, Store

PROTOCOL = load_protocol("nsclc")
ROOT = Path(__file__).resolve().parents[3]


def _store_cases(store: Store, n: int) -> None:
    cohort = generate_cohort("nsclc", seed=321, n_patients=3 * n).complete_table.head(n)
    columns = [*PROTOCOL.id_columns, *PROTOCOL.feature_names, "dose_eval_gy", "dose_adapt_gy",
               *PROTOCOL.outcome_names]
    records = [CaseRecord(f"C-{i}", f"C-{i}", None, {**row, "patient_id": f"C-{i}"},
                          input_hash(cohort.iloc[i], PROTOCOL))
               for i, row in enumerate(cohort[columns].to_dict("records"))]
    store.save_cases("nsclc", records, source="upload", username="phil")


def test_tiny_job_registers_a_hash_checked_version(sqlite_store: Store, tmp_path: Path) -> None:
    tmp_path = tmp_path / "learning"
    _store_cases(sqlite_store, 20)
    url = sqlite_store.url.render_as_string(hide_password=False)
    config = learning.LearningConfig("nsclc", budget="tiny", pool_virtual_trial=True)
    job = sqlite_store.create_job("nsclc", config.to_dict(), username="phil")
    version = learning.run_job(url, job, str(tmp_path))
    info = sqlite_store.job(job)
    assert info.status == "done", info.error
    assert info.progress == 1.0 and info.model_version == version
    registered = sqlite_store.model_version(version)
    assert registered.source == "learning" and registered.created_by == "phil"
    assert registered.training["n_clinic_cases"] == 20
    assert registered.training["n_virtual_cases"] > 0
    cand = registered.metrics["candidate"]
    for key in ("tcp", "ntcp"):
        # scored against the truth on a fresh cohort: no model beats the Bayes ceiling (beyond
        # sampling noise), and the ceiling is the trial's, not a degenerate 0.5
        assert 0.7 <= cand[key]["auroc_bayes_ceiling"] <= 0.9
        assert cand[key]["auroc_vs_truth"] <= cand[key]["auroc_bayes_ceiling"] + 0.03
        assert cand[key]["monotonicity_violation_rate"] == 0.0  # GLoGD: monotone by design
        assert cand[key]["n_cases"] == 20
    model = load_learned_version("nsclc", "glogd", registered.location, version, "x")
    curves = model.predict_curves(generate_cohort("nsclc").complete_table.head(3), PROTOCOL)
    assert curves.tcp.shape[:2] == (5, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == [version]  # no temporary left
    # A changed artifact is refused.
    member = next((tmp_path / version / "rtoe").glob("*.pt"))
    member.write_bytes(member.read_bytes() + b"x")
    with pytest.raises(registry.ArtifactError, match="sha256"):
        load_learned_version("nsclc", "glogd", registered.location, version, "x")


def test_cancelled_job_leaves_nothing(sqlite_store: Store, tmp_path: Path) -> None:
    tmp_path = tmp_path / "learning"
    tmp_path.mkdir()
    url = sqlite_store.url.render_as_string(hide_password=False)
    config = learning.LearningConfig("nsclc", budget="tiny")
    job = sqlite_store.create_job("nsclc", config.to_dict(), username="phil")
    sqlite_store.request_cancel(job, username="phil")
    assert learning.run_job(url, job, str(tmp_path)) is None
    assert sqlite_store.job(job).status == "cancelled"
    assert list(tmp_path.iterdir()) == []


def test_cancel_midway_removes_the_partial_version(tmp_path: Path) -> None:
    class Reporter:
        def __init__(self) -> None:
            self.calls: list[float] = []

        def progress(self, share: float, message: str) -> None:
            self.calls.append(share)

        def cancelled(self) -> bool:
            return self.calls[-1] > 0.3

    reporter = Reporter()
    empty = learning.clinic_table(PROTOCOL, [])
    with pytest.raises(Cancelled):
        learning.train_version(learning.LearningConfig("nsclc", budget="tiny"), empty,
                               tmp_path, reporter=reporter)
    calls = reporter.calls
    assert calls == sorted(calls) and calls[-1] > 0.3 and list(tmp_path.iterdir()) == []


def test_no_data_without_pooling_is_refused(tmp_path: Path) -> None:
    empty = learning.clinic_table(PROTOCOL, [])
    with pytest.raises(ValueError, match="no stored case has a known outcome"):
        learning.train_version(learning.LearningConfig("nsclc", budget="tiny",
                                                       pool_virtual_trial=False), empty, tmp_path)
    with pytest.raises(ValueError, match="budget"):
        learning.LearningConfig("nsclc", budget="huge")


def test_training_worker_exits_when_the_app_is_killed(tmp_path: Path) -> None:
    # The "app": starts a worker like app/runtime.py does, then dies without shutting
    # the pool down (as when it is killed).
    script = (
        "import multiprocessing, os, sys\n"
        "from concurrent.futures import ProcessPoolExecutor\n"
        "from engine.platform.jobs import worker_init\n"
        "if __name__ == '__main__':\n"
        "    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context('spawn'),\n"
        "                               initializer=worker_init, initargs=(os.getpid(), 0.2))\n"
        "    print(pool.submit(os.getpid).result(), flush=True)\n"
        "    os._exit(0)\n"
    )
    (tmp_path / "app.py").write_text(script)
    done = subprocess.run([sys.executable, str(tmp_path / "app.py")], capture_output=True,
                          text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          timeout=120)
    worker = int(done.stdout.split()[0])

    def running() -> bool:  # a zombie (exited, not yet reaped) counts as gone
        try:
            return Path(f"/proc/{worker}/stat").read_text().split(") ")[1][0] != "Z"
        except (FileNotFoundError, IndexError):
            return False

    deadline = time.monotonic() + 30
    while running() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not running(), "the worker outlived the app"


def test_a_worker_killed_mid_training_leaves_no_version_and_no_scratch(
    sqlite_store: Store, tmp_path: Path
) -> None:
    """The real job runner and ``run_job``: ``kill -9`` of the training worker fails the job with
    the reason, registers nothing, removes the half-written files, and frees the runner."""
    import signal

    out = tmp_path / "learning"
    url = sqlite_store.url.render_as_string(hide_password=False)
    runner = learning.job_runner(url, out, poll_s=0.1, heartbeat_s=0.5, cancel_grace_s=1.0)
    config = learning.LearningConfig("nsclc", budget="standard")  # minutes: still running
    job = sqlite_store.create_job("nsclc", config.to_dict(), username="phil")
    runner.start()
    try:
        deadline = time.monotonic() + 180
        while "member" not in sqlite_store.job(job).message:  # writing members to scratch
            assert time.monotonic() < deadline, sqlite_store.job(job)
            time.sleep(0.1)
        assert [p.name.startswith(f".job-{job}-") for p in out.iterdir()] == [True]
        pid = runner.worker_pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        while sqlite_store.job(job).status == "running":
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        runner.stop()
    info = sqlite_store.job(job)
    assert info.status == "failed" and "killed (SIGKILL)" in info.error
    assert info.model_version is None
    assert [v.source for v in sqlite_store.model_versions("nsclc")] == []
    assert list(out.iterdir()) == []  # the half-written version is gone
