"""Persistence (SQLAlchemy 2): users, sessions, patients, versioned inputs, notes, the audit trail.

One database holds everything that must survive a restart, so several app processes (containers
behind a load balancer) can share it: a SQLite file by default, PostgreSQL in a hospital
deployment (``$ARTDS_DATABASE_URL``, e.g. ``postgresql+psycopg://artds@db/artds``). The schema is
created and migrated by Alembic (``engine/platform/alembic/``): :meth:`Store.upgrade` runs at app
start-up and from ``artds db upgrade``; on PostgreSQL it holds an advisory lock so containers
starting together migrate once.

What is kept, and how:

* **users** with argon2 password hashes (:mod:`engine.platform.accounts` hashes; nothing here sees
  a plain-text password for longer than the call) and one role each (:data:`ROLES`);
* **auth sessions**: only the sha256 of a session token is stored, with its expiry, the time
  it was last used (for the idle timeout) and its logout time; **login attempts** (for
  throttling, shared by every process);
* **patients** (one row per case: a patient, or a tumour site for HCC) and their **inputs**, one
  immutable row per version: a changed value makes a new version, nothing is overwritten;
* **notes** per patient, also versioned (the newest is shown, the older ones stay);
* **recommendations**: every recommendation the app shows, with user, time, input hash, model
  versions and outputs (the audit trail physicists review and export as CSV);
* **model versions** and **promotions** (which version serves a protocol; promotions and
  rollbacks are rows, never updates) and Learning Mode **training jobs** (progress and cancel
  flags live here so any process can show and stop them);
* **audit events**: logins, logouts, refused logins, users added, notes saved, promotions.

Methods take and return plain data (frozen dataclasses, dicts); ORM objects never leave a
method. Times are timezone-aware UTC. Patient identifiers are never logged.

The package, one module per part:

* :mod:`~engine.platform.store.tables`: the declarative :class:`Base` and the ORM tables (what
  the Alembic migrations build);
* :mod:`~engine.platform.store.records`: the frozen records callers get back, :data:`ROLES`,
  :data:`JOB_STATES` (:data:`ACTIVE_JOB_STATES`) and :class:`StoreError`;
* :mod:`~engine.platform.store.connection`: engine, pool, SQLite pragmas, transactions, retries
  and migrations (:class:`~engine.platform.store.connection.Database`);
* the queries by domain, each a mixin over that connection: :mod:`~engine.platform.store.users`
  (settings, users, login attempts, sessions), :mod:`~engine.platform.store.cases` (patients,
  inputs, notes), :mod:`~engine.platform.store.audit` (recommendations, audit events, CSV
  export), :mod:`~engine.platform.store.models` (model versions, promotions) and
  :mod:`~engine.platform.store.jobs` (training jobs);
* :mod:`~engine.platform.store.values`: the current UTC time and JSON-safe values for columns.

:class:`Store` composes the mixins: callers hold one ``Store`` and call ``store.method(...)``.
"""

from __future__ import annotations

from engine.platform.store.audit import AuditQueries
from engine.platform.store.cases import CaseQueries
from engine.platform.store.jobs import JobQueries
from engine.platform.store.models import ModelQueries
from engine.platform.store.records import (
    ACTIVE_JOB_STATES,
    JOB_STATES,
    ROLES,
    CaseRecord,
    JobInfo,
    ModelVersionInfo,
    NoteInfo,
    PatientSummary,
    PromotionInfo,
    RecommendationInfo,
    SavedInput,
    StoreError,
    UserInfo,
)
from engine.platform.store.tables import Base
from engine.platform.store.users import UserQueries

__all__ = [
    "ACTIVE_JOB_STATES",
    "JOB_STATES",
    "ROLES",
    "Base",
    "CaseRecord",
    "JobInfo",
    "ModelVersionInfo",
    "NoteInfo",
    "PatientSummary",
    "PromotionInfo",
    "RecommendationInfo",
    "SavedInput",
    "Store",
    "StoreError",
    "UserInfo",
]


class Store(UserQueries, CaseQueries, AuditQueries, ModelQueries, JobQueries):
    """The artds database: one per process, shared by every session (thread-safe).

    Args:
        url: SQLAlchemy URL (default :func:`engine.settings.database_url`). ``postgresql://``
            URLs use psycopg 3.
    """
