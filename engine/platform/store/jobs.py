"""Learning Mode training jobs: a queue, status, progress, the cancel flag and heartbeats, in the
database.

The job lives in the database rather than in a worker so that any app process can show its
progress, ask it to stop, run it, and notice when its worker is gone:

* a session queues a job (:meth:`JobQueries.create_job`); a job runner of any app process claims
  it (:meth:`JobQueries.claim_job`, one conditional UPDATE: of several processes claiming one job
  exactly one gets it) and runs it in a worker process;
* the worker writes its progress (:meth:`JobQueries.update_job`, which answers whether to stop)
  and a heartbeat (:meth:`JobQueries.heartbeat_job`) while it runs;
* a job whose worker is gone (no heartbeat for a while, or its process has ended) is ended by
  whoever notices (:meth:`JobQueries.abandon_job`, :meth:`JobQueries.abandon_stale_jobs`): failed
  with the reason, or cancelled when a cancel had been asked for;
* a job leaves ``queued``/``running`` once: every write is conditional on the job still being
  active, so a late write of a worker that was given up on changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select, update
from sqlalchemy.orm import Session

from engine.platform.store.audit import audit_event
from engine.platform.store.connection import Database
from engine.platform.store.records import ACTIVE_JOB_STATES, JOB_STATES, JobInfo, StoreError
from engine.platform.store.tables import ModelVersion, TrainingJob
from engine.platform.store.values import json_safe, utc_now

__all__ = ["JobQueries"]

_FINAL_STATES = tuple(s for s in JOB_STATES if s not in ACTIVE_JOB_STATES)
"""States of :data:`JOB_STATES` that end a job (its ``finished_at`` is set)."""
_CLAIM_ATTEMPTS = 20
"""Queued jobs tried by one :meth:`JobQueries.claim_job` when other processes take them first."""


class JobQueries(Database):
    """Training jobs of Learning Mode."""

    def create_job(self, protocol: str, config: Mapping[str, Any], *, username: str) -> int:
        """Queue a training job (audited as ``training_started``); returns its id."""
        with self.session() as s:
            job = TrainingJob(protocol=protocol, status="queued", progress=0.0,
                              message="queued", cancel_requested=False,
                              config=json_safe(dict(config)), error="", model_version_pk=None,
                              created_at=utc_now(), created_by=username, finished_at=None,
                              started_at=None, heartbeat_at=None, worker="")
            s.add(job)
            s.flush()
            s.add(audit_event(username, "training_started",
                              {"protocol": protocol, "job": job.id}))
            return job.id

    def claim_job(self, worker: str, job_id: int | None = None) -> JobInfo | None:
        """Claim the oldest queued job (only ``job_id`` when given) for ``worker``.

        The job becomes ``running`` with its start time, a first heartbeat and ``worker`` (who
        runs it, e.g. ``host:pid:start``); audited as ``training_claimed``. A conditional UPDATE
        (``… WHERE status = 'queued'``) makes the claim atomic on SQLite and PostgreSQL: of
        several processes claiming one job, exactly one gets it.

        Returns:
            The claimed job, or None when no job (or not ``job_id``) is queued.
        """
        for _ in range(_CLAIM_ATTEMPTS):
            with self.session() as s:
                q = select(TrainingJob.id).where(TrainingJob.status == "queued")
                if job_id is not None:
                    q = q.where(TrainingJob.id == job_id)
                found = s.scalar(q.order_by(TrainingJob.id).limit(1))
                if found is None:
                    return None
                now = utc_now()
                claimed = s.execute(
                    update(TrainingJob)
                    .where(TrainingJob.id == found, TrainingJob.status == "queued")
                    .values(status="running", started_at=now, heartbeat_at=now,
                            worker=worker[:160], message="starting")).rowcount
                if claimed:
                    s.add(audit_event("system", "training_claimed",
                                      {"job": found, "worker": worker[:160]}))
            if claimed:
                return self.job(found)
            if job_id is not None:  # another process claimed it first
                return None
        return None

    def set_job_worker(self, job_id: int, worker: str) -> None:
        """Record the process that runs a running job (its worker, once started)."""
        with self.session() as s:
            s.execute(update(TrainingJob).where(TrainingJob.id == job_id,
                                                TrainingJob.status == "running")
                      .values(worker=worker[:160], heartbeat_at=utc_now()))

    def heartbeat_job(self, job_id: int) -> bool:
        """A sign of life from a running job's worker; returns whether the job should stop
        (a cancel was requested, or it is no longer running)."""
        with self.session() as s:
            s.execute(update(TrainingJob).where(TrainingJob.id == job_id,
                                                TrainingJob.status == "running")
                      .values(heartbeat_at=utc_now()))
            return _should_stop(s, job_id)

    def update_job(self, job_id: int, *, status: str | None = None,
                   progress: float | None = None, message: str | None = None,
                   error: str | None = None, model_version: str | None = None) -> bool:
        """Update an active (queued or running) job; returns whether it should stop.

        It should stop when a cancel was requested or it is no longer active (it was ended
        elsewhere, e.g. given up on because its heartbeat stopped): a job in a final state is
        never changed again. ``progress`` is clipped to 0 … 1 (and counts as a heartbeat),
        ``message`` to 500 and ``error`` to 2000 characters; a final status (done, failed,
        cancelled) stamps ``finished_at``.
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
            values["heartbeat_at"] = utc_now()
        if message is not None:
            values["message"] = message[:500]
        if error is not None:
            values["error"] = error[:2000]
        with self.session() as s:
            if model_version is not None:
                values["model_version_pk"] = s.scalar(
                    select(ModelVersion.id).where(ModelVersion.version == model_version))
            if values:
                s.execute(update(TrainingJob).where(
                    TrainingJob.id == job_id, TrainingJob.status.in_(ACTIVE_JOB_STATES))
                    .values(**values))
            return _should_stop(s, job_id)

    def request_cancel(self, job_id: int, *, username: str) -> JobInfo | None:
        """Cancel a job (audited as ``training_cancel``); returns it as it is now.

        A queued job is cancelled at once (no runner will start it). A running one gets the
        cancel flag: its worker stops at its next step, and the job runner running it ends the
        worker process if it has not stopped within a few seconds
        (:class:`engine.platform.jobs.StoreJobRunner`). A job already ended is left as it is.
        """
        with self.session() as s:
            dequeued = s.execute(
                update(TrainingJob).where(TrainingJob.id == job_id,
                                          TrainingJob.status == "queued")
                .values(status="cancelled", cancel_requested=True, finished_at=utc_now(),
                        message="cancelled before it started")).rowcount
            if not dequeued:
                s.execute(update(TrainingJob).where(TrainingJob.id == job_id,
                                                    TrainingJob.status == "running")
                          .values(cancel_requested=True))
            s.add(audit_event(username, "training_cancel", {"job": job_id}))
        return self.job(job_id)

    def abandon_job(self, job_id: int, reason: str, *, worker: str | None = None) -> bool:
        """End an active job whose worker is gone or was stopped: ``cancelled`` when a cancel
        had been requested, else ``failed`` with ``reason`` (one line) as its error; audited.

        Args:
            job_id: the job.
            reason: why, e.g. "its worker process ended unexpectedly (killed by signal 9)".
            worker: only when the job is still claimed by this worker (None: whoever runs it).

        Returns:
            Whether the job was ended here (False: it had already ended, or another worker
            runs it).
        """
        conditions = [TrainingJob.id == job_id]
        if worker is not None:
            conditions.append(TrainingJob.worker == worker[:160])
        with self.session() as s:
            return bool(_abandon(s, conditions, reason))

    def abandon_stale_jobs(self, stale_before: datetime, reason: str) -> list[int]:
        """End every running job with no sign of life since ``stale_before`` (its last
        heartbeat, else its start, else its creation), as :meth:`abandon_job` does; returns
        their ids."""
        last_sign = func.coalesce(TrainingJob.heartbeat_at, TrainingJob.started_at,
                                  TrainingJob.created_at)
        with self.session() as s:
            return _abandon(s, [TrainingJob.status == "running", last_sign < stale_before],
                            reason)

    def job(self, job_id: int) -> JobInfo | None:
        """The job ``job_id``, None when unknown."""
        with self.session() as s:
            row = s.execute(_jobs_query().where(TrainingJob.id == job_id)).first()
            return None if row is None else _job_info(row[0], row[1])

    def jobs(self, protocol: str | None = None, limit: int = 20, *,
             status: str | None = None) -> list[JobInfo]:
        """The newest ``limit`` jobs (of ``protocol``, in ``status`` when given), newest first."""
        with self.session() as s:
            q = _jobs_query().order_by(TrainingJob.id.desc()).limit(limit)
            if protocol:
                q = q.where(TrainingJob.protocol == protocol)
            if status:
                q = q.where(TrainingJob.status == status)
            return [_job_info(j, v) for j, v in s.execute(q).all()]


def _should_stop(s: Session, job_id: int) -> bool:
    row = s.execute(select(TrainingJob.cancel_requested, TrainingJob.status)
                    .where(TrainingJob.id == job_id)).first()
    return row is None or bool(row[0]) or row[1] not in ACTIVE_JOB_STATES


def _abandon(s: Session, conditions: list[ColumnElement[bool]], reason: str) -> list[int]:
    """Give up on the active jobs matching ``conditions`` (see :meth:`JobQueries.abandon_job`);
    returns their ids."""
    reason = " ".join(reason.split())[:500]
    active = [*conditions, TrainingJob.status.in_(ACTIVE_JOB_STATES)]
    ids = list(s.scalars(select(TrainingJob.id).where(*active).with_for_update()))
    if not ids:
        return []
    now = utc_now()
    chosen = TrainingJob.id.in_(ids)
    s.execute(update(TrainingJob)
              .where(chosen, *active, TrainingJob.cancel_requested.is_(True))
              .values(status="cancelled", finished_at=now, message=f"cancelled: {reason}"))
    s.execute(update(TrainingJob).where(chosen, *active)
              .values(status="failed", finished_at=now, message="failed", error=reason))
    for job_id in ids:
        s.add(audit_event("system", "training_abandoned", {"job": job_id, "reason": reason}))
    return ids


def _jobs_query() -> Select[tuple[TrainingJob, str | None]]:
    """Jobs with the version string they produced (None until done)."""
    return select(TrainingJob, ModelVersion.version).outerjoin(
        ModelVersion, TrainingJob.model_version_pk == ModelVersion.id)


def _job_info(j: TrainingJob, version: str | None) -> JobInfo:
    return JobInfo(j.id, j.protocol, j.status, j.progress, j.message, j.cancel_requested,
                   dict(j.config), j.error, version, j.created_at, j.created_by, j.finished_at,
                   j.started_at, j.heartbeat_at, j.worker or "")
