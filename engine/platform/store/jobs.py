"""Learning Mode training jobs: status, progress and the cancel flag, in the database.

The job lives in the database rather than in the worker so that any app process can show its
progress and ask it to stop; the worker polls the cancel flag on each :meth:`JobQueries.update_job`
and stops at its next step.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Select, select, update

from engine.platform.store.audit import audit_event
from engine.platform.store.connection import Database
from engine.platform.store.records import JOB_STATES, JobInfo, StoreError
from engine.platform.store.tables import ModelVersion, TrainingJob
from engine.platform.store.values import json_safe, utc_now

__all__ = ["JobQueries"]

_FINAL_STATES = ("done", "failed", "cancelled")
"""States of :data:`JOB_STATES` that end a job (its ``finished_at`` is set)."""


class JobQueries(Database):
    """Training jobs of Learning Mode."""

    def create_job(self, protocol: str, config: Mapping[str, Any], *, username: str) -> int:
        """Queue a training job (audited as ``training_started``); returns its id."""
        with self.session() as s:
            job = TrainingJob(protocol=protocol, status="queued", progress=0.0,
                              message="queued", cancel_requested=False,
                              config=json_safe(dict(config)), error="", model_version_pk=None,
                              created_at=utc_now(), created_by=username, finished_at=None)
            s.add(job)
            s.flush()
            s.add(audit_event(username, "training_started",
                              {"protocol": protocol, "job": job.id}))
            return job.id

    def update_job(self, job_id: int, *, status: str | None = None,
                   progress: float | None = None, message: str | None = None,
                   error: str | None = None, model_version: str | None = None) -> bool:
        """Update a job; returns whether a cancel was requested meanwhile.

        ``progress`` is clipped to 0 … 1, ``message`` to 500 and ``error`` to 2000 characters;
        a final status (done, failed, cancelled) stamps ``finished_at``.
        """
        values: dict[str, Any] = {}
        if status is not None:
            if status not in JOB_STATES:
                raise StoreError(f"job status {status!r} is not one of {', '.join(JOB_STATES)}")
            values["status"] = status
            if status in _FINAL_STATES:
                values["finished_at"] = utc_now()
        if progress is not None:
            values["progress"] = float(min(max(progress, 0.0), 1.0))
        if message is not None:
            values["message"] = message[:500]
        if error is not None:
            values["error"] = error[:2000]
        with self.session() as s:
            if model_version is not None:
                values["model_version_pk"] = s.scalar(
                    select(ModelVersion.id).where(ModelVersion.version == model_version))
            if values:
                s.execute(update(TrainingJob).where(TrainingJob.id == job_id).values(**values))
            return bool(s.scalar(select(TrainingJob.cancel_requested)
                                 .where(TrainingJob.id == job_id)))

    def request_cancel(self, job_id: int, *, username: str) -> None:
        """Ask a job to stop (audited as ``training_cancel``); the worker stops at its next step."""
        with self.session() as s:
            s.execute(update(TrainingJob).where(TrainingJob.id == job_id)
                      .values(cancel_requested=True))
            s.add(audit_event(username, "training_cancel", {"job": job_id}))

    def job(self, job_id: int) -> JobInfo | None:
        """The job ``job_id``, None when unknown."""
        with self.session() as s:
            row = s.execute(_jobs_query().where(TrainingJob.id == job_id)).first()
            return None if row is None else _job_info(row[0], row[1])

    def jobs(self, protocol: str | None = None, limit: int = 20) -> list[JobInfo]:
        """The newest ``limit`` jobs (of ``protocol`` when given), newest first."""
        with self.session() as s:
            q = _jobs_query().order_by(TrainingJob.id.desc()).limit(limit)
            if protocol:
                q = q.where(TrainingJob.protocol == protocol)
            return [_job_info(j, v) for j, v in s.execute(q).all()]


def _jobs_query() -> Select[tuple[TrainingJob, str | None]]:
    """Jobs with the version string they produced (None until done)."""
    return select(TrainingJob, ModelVersion.version).outerjoin(
        ModelVersion, TrainingJob.model_version_pk == ModelVersion.id)


def _job_info(j: TrainingJob, version: str | None) -> JobInfo:
    return JobInfo(j.id, j.protocol, j.status, j.progress, j.message, j.cancel_requested,
                   dict(j.config), j.error, version, j.created_at, j.created_by, j.finished_at)
