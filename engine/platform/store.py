"""Persistence (SQLAlchemy 2): users, sessions, patients, versioned inputs, notes, the audit trail.

One database holds everything that must survive a restart, so several app processes (containers
behind a load balancer) can share it: a SQLite file by default, PostgreSQL in a hospital
deployment (``$ARTDS_DATABASE_URL``, e.g. ``postgresql+psycopg://artds@db/artds``). The schema is
created and migrated by Alembic (``engine/platform/alembic/``): :meth:`Store.upgrade` runs at app
start-up
and from ``artds db upgrade``; on PostgreSQL it holds an advisory lock so containers starting
together migrate once.

What is kept, and how:

* **users** with argon2 password hashes (:mod:`engine.platform.accounts` hashes; nothing here sees a
  plain-text password for longer than the call) and one role each (:data:`ROLES`);
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
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    create_engine,
    event,
    func,
    select,
    text,
    update,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from engine import settings

__all__ = [
    "ROLES",
    "Base",
    "CaseRecord",
    "JobInfo",
    "ModelVersionInfo",
    "NoteInfo",
    "PatientSummary",
    "RecommendationInfo",
    "SavedInput",
    "Store",
    "StoreError",
    "UserInfo",
]

ROLES = ("clinician", "physicist", "admin")
"""Roles, each allowed what the previous one is plus more (see ``docs/clinic.md``)."""
JOB_STATES = ("queued", "running", "done", "failed", "cancelled")
"""States of a Learning Mode training job."""
_RETRIES = 5
_ADVISORY_LOCK_KEY = 0x61727464  # "artd": PostgreSQL advisory lock held while migrating


class StoreError(ValueError):
    """A request the store refuses (unknown user, duplicate name, bad role...): one line."""


def _now() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite keeps no zone: stored naive UTC)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use an aware UTC time")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base of every artds table."""

    type_annotation_map = {  # noqa: RUF012 (SQLAlchemy reads this class attribute)
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
    }


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(64))


class AuthSession(Base):
    __tablename__ = "auth_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    last_seen_at: Mapped[datetime | None]


class LoginAttempt(Base):
    __tablename__ = "login_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), index=True)
    remote: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[datetime] = mapped_column(index=True)
    success: Mapped[bool] = mapped_column(Boolean)


class Setting(Base):
    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Patient(Base):
    __tablename__ = "patients"
    __table_args__ = (UniqueConstraint("protocol", "label", name="uq_patients_protocol_label"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    protocol: Mapped[str] = mapped_column(String(16), index=True)
    patient_id: Mapped[str] = mapped_column(String(64))
    site_id: Mapped[int | None]
    label: Mapped[str] = mapped_column(String(96))
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(64))


class PatientInput(Base):
    __tablename__ = "patient_inputs"
    __table_args__ = (UniqueConstraint("patient_pk", "version", name="uq_inputs_version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_pk: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    values: Mapped[dict[str, Any]]
    input_hash: Mapped[str] = mapped_column(String(64), index=True)
    record_sha256: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(64))


class Note(Base):
    __tablename__ = "notes"
    __table_args__ = (UniqueConstraint("patient_pk", "version", name="uq_notes_version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_pk: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(64))


class RecommendationRecord(Base):
    __tablename__ = "recommendations"

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(index=True)
    username: Mapped[str] = mapped_column(String(64), index=True)
    protocol: Mapped[str] = mapped_column(String(16), index=True)
    case_label: Mapped[str] = mapped_column(String(96))
    patient_pk: Mapped[int | None] = mapped_column(ForeignKey("patients.id"))
    input_hash: Mapped[str] = mapped_column(String(64), index=True)
    model_name: Mapped[str] = mapped_column(String(200))
    model_version: Mapped[str] = mapped_column(String(200))
    model_versions: Mapped[dict[str, Any]]
    recommended_dose_gy: Mapped[float] = mapped_column(Float)
    outputs: Mapped[dict[str, Any]]
    session_ref: Mapped[str] = mapped_column(String(64))


class ModelVersion(Base):
    __tablename__ = "model_versions"

    id: Mapped[int] = mapped_column(primary_key=True)
    protocol: Mapped[str] = mapped_column(String(16), index=True)
    arch: Mapped[str] = mapped_column(String(16))
    version: Mapped[str] = mapped_column(String(200), unique=True)
    location: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(64))
    metrics: Mapped[dict[str, Any]]
    training: Mapped[dict[str, Any]]


class Promotion(Base):
    __tablename__ = "promotions"

    id: Mapped[int] = mapped_column(primary_key=True)
    protocol: Mapped[str] = mapped_column(String(16), index=True)
    model_version_pk: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    action: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(64))


class TrainingJob(Base):
    __tablename__ = "training_jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    protocol: Mapped[str] = mapped_column(String(16), index=True)
    status: Mapped[str] = mapped_column(String(16))
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    message: Mapped[str] = mapped_column(Text, default="")
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    config: Mapped[dict[str, Any]]
    error: Mapped[str] = mapped_column(Text, default="")
    model_version_pk: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(64))
    finished_at: Mapped[datetime | None]


class AuditEvent(Base):
    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    username: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    detail: Mapped[dict[str, Any]]


# --------------------------------------------------------------------------------------------
# Plain results


@dataclass(frozen=True)
class UserInfo:
    """A user as the rest of artds sees it (never the password hash)."""

    id: int
    """Database id."""
    username: str
    """Login name."""
    role: str
    """One of :data:`ROLES`."""
    active: bool
    """False once disabled: cannot log in."""
    created_at: datetime
    """When the account was made (UTC)."""
    created_by: str
    """Who made it (a username, or ``"cli"``/``"setup"``)."""


@dataclass(frozen=True)
class CaseRecord:
    """One case to store (see :meth:`Store.save_cases`)."""

    label: str
    """Case label (``"P-001"`` or ``"HCC-012 site 2"``), unique per protocol."""
    patient_id: str
    """Patient identifier."""
    site_id: int | None
    """Tumour-site number (HCC), else None."""
    values: dict[str, Any]
    """Id columns, features, doses and outcomes (None or NaN when unknown)."""
    input_hash: str
    """:func:`engine.arclids.recommend.input_hash` of the case."""


@dataclass(frozen=True)
class SavedInput:
    """One stored version of a case's inputs."""

    patient_pk: int
    """Database id of the patient (case)."""
    label: str
    """Case label (``"P-001"`` or ``"HCC-012 site 2"``)."""
    version: int
    """Input version, 1 for the first."""
    input_hash: str
    """:func:`engine.arclids.recommend.input_hash` of these inputs (what recommendations cite)."""
    values: dict[str, Any]
    """Id columns, features, ``dose_eval_gy`` and any known ``dose_adapt_gy`` and outcomes
    (None when unknown)."""
    source: str
    """Where they came from: ``"form"``, ``"upload"``, ``"example"``, ``"follow-up"``."""
    created_at: datetime
    """When this version was stored (UTC)."""
    created_by: str
    """Who stored it."""
    new: bool
    """True when this call stored a new version (False: identical to the latest one)."""


@dataclass(frozen=True)
class PatientSummary:
    """A stored case in the "Saved patients" list."""

    patient_pk: int
    """Database id."""
    label: str
    """Case label."""
    n_versions: int
    """Input versions stored."""
    latest_at: datetime
    """When the newest version was stored."""
    latest_by: str
    """Who stored it."""
    has_outcomes: bool
    """The newest version records the dose given and both outcomes (usable by Learning Mode)."""


@dataclass(frozen=True)
class NoteInfo:
    """The newest note of a patient."""

    label: str
    """Case label."""
    version: int
    """Note version, 1 for the first."""
    text: str
    """The note (plain text, escaped wherever it is shown)."""
    created_at: datetime
    """When it was saved."""
    created_by: str
    """Who saved it."""


@dataclass(frozen=True)
class RecommendationInfo:
    """One audit-trail row."""

    id: int
    """Database id."""
    created_at: datetime
    """When the recommendation was shown (UTC)."""
    username: str
    """Who it was shown to."""
    protocol: str
    """Protocol name."""
    case_label: str
    """Case label."""
    input_hash: str
    """Input hash of the case."""
    model_name: str
    """Outcome-model label."""
    model_version: str
    """Outcome-model version."""
    model_versions: dict[str, Any]
    """Every model version behind the recommendation (outcome model, recommender, ...)."""
    recommended_dose_gy: float
    """The recommended adaptive dose per fraction, Gy."""
    outputs: dict[str, Any]
    """Everything shown: curves, sds, reward, goals, recommended TCP/NTCP."""


@dataclass(frozen=True)
class ModelVersionInfo:
    """A registered outcome-model version."""

    id: int
    """Database id."""
    protocol: str
    """Protocol name."""
    arch: str
    """Architecture (``"glogd"``, ...)."""
    version: str
    """Version string (what the UI, reports and the audit trail show)."""
    location: str
    """Models folder holding its artifacts and manifest (hash-checked when loaded)."""
    source: str
    """``"shipped"`` (models/) or ``"learning"`` (trained in Learning Mode)."""
    created_at: datetime
    """When it was registered."""
    created_by: str
    """Who trained or registered it."""
    metrics: dict[str, Any]
    """Metrics per outcome (see :mod:`engine.arclids.learning`)."""
    training: dict[str, Any]
    """What it was trained on (cases, data hashes, config)."""


@dataclass(frozen=True)
class PromotionInfo:
    """One promotion or rollback."""

    id: int
    """Database id."""
    protocol: str
    """Protocol name."""
    version: str
    """The version that serves from then on."""
    action: str
    """``"promote"`` or ``"rollback"``."""
    reason: str
    """Why (free text typed by the physicist)."""
    created_at: datetime
    """When."""
    created_by: str
    """Who."""


@dataclass(frozen=True)
class JobInfo:
    """A Learning Mode training job."""

    id: int
    """Database id."""
    protocol: str
    """Protocol name."""
    status: str
    """One of :data:`JOB_STATES`."""
    progress: float
    """Share done, 0 … 1."""
    message: str
    """What it is doing now (or why it stopped)."""
    cancel_requested: bool
    """A cancel was asked for; the worker stops at its next step."""
    config: dict[str, Any]
    """The training configuration."""
    error: str
    """One-line error when it failed."""
    model_version: str | None
    """Version produced, once done."""
    created_at: datetime
    """When it was started."""
    created_by: str
    """Who started it."""
    finished_at: datetime | None
    """When it ended."""


def _user_info(u: User) -> UserInfo:
    return UserInfo(u.id, u.username, u.role, u.active, u.created_at, u.created_by)


def _model_info(m: ModelVersion) -> ModelVersionInfo:
    return ModelVersionInfo(m.id, m.protocol, m.arch, m.version, m.location, m.source,
                            m.created_at, m.created_by, dict(m.metrics), dict(m.training))


def _json_safe(value: Any) -> Any:
    """Plain JSON: NaN/inf and pandas NA become None, numpy scalars plain numbers."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, bool):
        return value
    if hasattr(value, "item") and not isinstance(value, str):  # numpy scalar
        with contextlib.suppress(ValueError, TypeError):
            value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, int | str):
        return value
    try:  # pandas NA and friends
        import pandas as pd

        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return str(value)


def _record_sha256(values: Mapping[str, Any]) -> str:
    body = json.dumps(_json_safe(values), sort_keys=True, allow_nan=False)
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------------------------
# The store


class Store:
    """The artds database: one per process, shared by every session (thread-safe).

    Args:
        url: SQLAlchemy URL (default :func:`database_url`). ``postgresql://`` URLs use psycopg 3.
    """

    def __init__(self, url: str | None = None) -> None:
        raw = url or settings.database_url()
        parsed = make_url(raw)
        if parsed.drivername in ("postgresql", "postgres"):
            parsed = parsed.set(drivername="postgresql+psycopg")
        self.url = parsed
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        kwargs: dict[str, Any] = {"future": True}
        if self.is_sqlite:
            path = parsed.database
            if path and path != ":memory:":
                Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
        else:
            kwargs.update(pool_pre_ping=True, pool_size=5, max_overflow=10)
        self.engine: Engine = create_engine(parsed, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def __repr__(self) -> str:
        return f"Store({self.url.render_as_string(hide_password=True)!r})"

    def dispose(self) -> None:
        """Close pooled connections (call before fork and at shutdown)."""
        self.engine.dispose()

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed on success, rolled back on error."""
        with self._sessions() as s, s.begin():
            yield s

    # ---------------------------------------------------------------- schema

    def upgrade(self, revision: str = "head") -> None:
        """Migrate the schema to ``revision`` with Alembic (idempotent; safe to run at start-up).

        On PostgreSQL an advisory lock makes concurrent start-ups migrate one after the other.
        """
        from alembic import command

        cfg = alembic_config()
        with self.engine.connect() as conn:
            if not self.is_sqlite:
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _ADVISORY_LOCK_KEY})
                conn.commit()
            try:
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, revision)
                conn.commit()
            finally:
                if not self.is_sqlite:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _ADVISORY_LOCK_KEY})
                    conn.commit()

    def current_revision(self) -> str | None:
        """The Alembic revision the database is at (None before the first migration)."""
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    # ---------------------------------------------------------------- settings

    def get_setting(self, key: str) -> str | None:
        with self.session() as s:
            row = s.get(Setting, key)
            return None if row is None else row.value

    def setting_or_create(self, key: str, make: Any) -> str:
        """The setting ``key``, created with ``make()`` if absent (first writer wins)."""
        existing = self.get_setting(key)
        if existing is not None:
            return existing
        try:
            with self.session() as s:
                s.add(Setting(key=key, value=str(make())))
        except IntegrityError:
            pass  # another process created it first: use theirs
        value = self.get_setting(key)
        assert value is not None
        return value

    # ---------------------------------------------------------------- users

    def add_user(
        self, username: str, password_hash: str, role: str, *, created_by: str
    ) -> UserInfo:
        """Create a user (the password already hashed by :mod:`engine.platform.accounts`)."""
        if role not in ROLES:
            raise StoreError(f"role {role!r} is not one of {', '.join(ROLES)}")
        try:
            with self.session() as s:
                user = User(username=username, password_hash=password_hash, role=role,
                            active=True, created_at=_now(), created_by=created_by)
                s.add(user)
                s.flush()
                info = _user_info(user)
                s.add(_event(created_by, "user_added", {"username": username, "role": role}))
        except IntegrityError:
            raise StoreError(f"user {username!r} already exists") from None
        return info

    def user(self, username: str) -> UserInfo | None:
        with self.session() as s:
            u = s.scalar(select(User).where(User.username == username))
            return None if u is None else _user_info(u)

    def password_hash(self, username: str) -> str | None:
        """The stored hash of an active user (for verification only), None if none."""
        with self.session() as s:
            u = s.scalar(select(User).where(User.username == username, User.active.is_(True)))
            return None if u is None else u.password_hash

    def set_password_hash(self, username: str, password_hash: str, *, by: str) -> None:
        with self.session() as s:
            n = s.execute(update(User).where(User.username == username)
                          .values(password_hash=password_hash)).rowcount
            if not n:
                raise StoreError(f"no user {username!r}")
            s.add(_event(by, "password_changed", {"username": username}))

    def set_role(self, username: str, role: str, *, by: str) -> None:
        if role not in ROLES:
            raise StoreError(f"role {role!r} is not one of {', '.join(ROLES)}")
        with self.session() as s:
            n = s.execute(update(User).where(User.username == username).values(role=role)).rowcount
            if not n:
                raise StoreError(f"no user {username!r}")
            s.add(_event(by, "role_changed", {"username": username, "role": role}))

    def set_active(self, username: str, active: bool, *, by: str) -> None:
        """Enable or disable a user; disabling also ends their sessions."""
        with self.session() as s:
            u = s.scalar(select(User).where(User.username == username))
            if u is None:
                raise StoreError(f"no user {username!r}")
            u.active = active
            if not active:
                s.execute(update(AuthSession).where(AuthSession.user_id == u.id,
                                                    AuthSession.revoked_at.is_(None))
                          .values(revoked_at=_now()))
            s.add(_event(by, "user_enabled" if active else "user_disabled",
                         {"username": username}))

    def users(self) -> list[UserInfo]:
        with self.session() as s:
            return [_user_info(u) for u in s.scalars(select(User).order_by(User.username))]

    def count_users(self) -> int:
        with self.session() as s:
            return int(s.scalar(select(func.count()).select_from(User)) or 0)

    # ---------------------------------------------------------------- login attempts, sessions

    def record_login_attempt(self, username: str, remote: str, success: bool) -> None:
        with self.session() as s:
            s.add(LoginAttempt(username=username[:64], remote=remote[:64], at=_now(),
                               success=success))
            if success:
                s.add(_event(username, "login", {"remote": remote}))
            else:
                s.add(_event(username[:64], "login_refused", {"remote": remote}))

    def failed_logins_since(self, since: datetime, *, username: str | None = None,
                            remote: str | None = None) -> tuple[int, datetime | None]:
        """Failed attempts after ``since`` for a user or a remote address, after the last success
        of that user (a good login clears the count); returns (count, time of the oldest)."""
        with self.session() as s:
            q = select(func.count(), func.min(LoginAttempt.at)).where(
                LoginAttempt.at > since, LoginAttempt.success.is_(False))
            if username is not None:
                last_ok = s.scalar(select(func.max(LoginAttempt.at)).where(
                    LoginAttempt.username == username, LoginAttempt.success.is_(True)))
                q = q.where(LoginAttempt.username == username)
                if last_ok is not None:
                    q = q.where(LoginAttempt.at > last_ok)
            if remote is not None:
                q = q.where(LoginAttempt.remote == remote)
            count, oldest = s.execute(q).one()
            if isinstance(oldest, datetime) and oldest.tzinfo is None:
                oldest = oldest.replace(tzinfo=UTC)
            return int(count or 0), oldest

    def create_session(self, username: str, token_sha256: str, max_age_s: float) -> datetime:
        """Store a new session of ``username``; returns its expiry (UTC)."""
        now = _now()
        expires = now + timedelta(seconds=max_age_s)
        with self.session() as s:
            u = s.scalar(select(User).where(User.username == username))
            if u is None:
                raise StoreError(f"no user {username!r}")
            s.add(AuthSession(token_sha256=token_sha256, user_id=u.id, created_at=now,
                              expires_at=expires, revoked_at=None, last_seen_at=now))
        return expires

    def session_user(self, token_sha256: str, *, idle_s: float | None = None,
                     touch_every_s: float | None = None) -> tuple[UserInfo, datetime] | None:
        """The active user of a live session, and its expiry.

        A session is live when it is not revoked, its user is active, its absolute lifetime has
        not passed and, with ``idle_s``, it was used within the last ``idle_s`` seconds.

        Args:
            token_sha256: sha256 of the session token.
            idle_s: idle timeout, seconds (None: no idle limit).
            touch_every_s: record this use as activity (for the idle timeout) when the last
                recorded use is older than this many seconds (None: a read-only check). The
                write is skipped otherwise, so frequent requests do not each take the
                database's write lock.
        """
        now = _now()
        with self.session() as s:
            row = s.execute(
                select(User, AuthSession.expires_at, AuthSession.last_seen_at,
                       AuthSession.created_at, AuthSession.id)
                .join(AuthSession, AuthSession.user_id == User.id)
                .where(AuthSession.token_sha256 == token_sha256,
                       AuthSession.revoked_at.is_(None), User.active.is_(True))
            ).first()
            if row is None or row[1] <= now:
                return None
            last_seen = row[2] or row[3]
            if idle_s is not None and last_seen + timedelta(seconds=idle_s) <= now:
                return None
            if touch_every_s is not None and last_seen + timedelta(seconds=touch_every_s) <= now:
                s.execute(update(AuthSession).where(AuthSession.id == row[4])
                          .values(last_seen_at=now))
            return _user_info(row[0]), row[1]

    def revoke_session(self, token_sha256: str, *, username: str) -> bool:
        with self.session() as s:
            n = s.execute(update(AuthSession).where(
                AuthSession.token_sha256 == token_sha256, AuthSession.revoked_at.is_(None))
                .values(revoked_at=_now())).rowcount
            if n:
                s.add(_event(username, "logout", {}))
            return bool(n)

    # ---------------------------------------------------------------- patients and inputs

    def save_inputs(
        self,
        protocol: str,
        label: str,
        patient_id: str,
        site_id: int | None,
        values: Mapping[str, Any],
        input_hash: str,
        *,
        source: str,
        username: str,
    ) -> SavedInput:
        """Store a case's inputs as a new version unless identical to its newest version.

        Nothing is overwritten: a change (any value, including a known outcome) adds a version.
        """
        record = CaseRecord(label, patient_id, site_id, dict(values), input_hash)
        return self.save_cases(protocol, [record], source=source, username=username)[0]

    def save_cases(self, protocol: str, records: Sequence[CaseRecord], *, source: str,
                   username: str) -> list[SavedInput]:
        """:meth:`save_inputs` for many cases in one transaction (e.g. an uploaded file)."""
        prepared = [(r, _json_safe(dict(r.values))) for r in records]
        for attempt in range(_RETRIES):  # a concurrent first save of a patient: retry
            try:
                out = []
                with self.session() as s:
                    for r, clean in prepared:
                        digest = _record_sha256(clean)
                        patient = self._patient(s, protocol, r.label, r.patient_id, r.site_id,
                                                username)
                        latest = s.scalar(select(PatientInput)
                                          .where(PatientInput.patient_pk == patient.id)
                                          .order_by(PatientInput.version.desc()).limit(1))
                        if latest is not None and latest.record_sha256 == digest:
                            out.append(_saved(latest, r.label, new=False))
                            continue
                        row = PatientInput(patient_pk=patient.id,
                                           version=1 if latest is None else latest.version + 1,
                                           values=clean, input_hash=r.input_hash,
                                           record_sha256=digest, source=source,
                                           created_at=_now(), created_by=username)
                        s.add(row)
                        s.flush()
                        out.append(_saved(row, r.label, new=True))
                return out
            except IntegrityError:
                if attempt == _RETRIES - 1:
                    raise
        raise AssertionError("unreachable")

    @staticmethod
    def _patient(s: Session, protocol: str, label: str, patient_id: str, site_id: int | None,
                 username: str) -> Patient:
        # FOR UPDATE (PostgreSQL) serialises writers of one patient, so version numbers never
        # collide; SQLite serialises all writers anyway. A patient created by two writers at
        # once trips the unique label: the caller retries.
        p = s.scalar(select(Patient).where(Patient.protocol == protocol, Patient.label == label)
                     .with_for_update())
        if p is None:
            p = Patient(protocol=protocol, patient_id=patient_id, site_id=site_id, label=label,
                        created_at=_now(), created_by=username)
            s.add(p)
            s.flush()
        return p

    def patients(self, protocol: str) -> list[PatientSummary]:
        """Stored cases of a protocol, newest change first."""
        with self.session() as s:
            newest = (select(PatientInput.patient_pk, func.max(PatientInput.version).label("v"),
                             func.count().label("n"))
                      .group_by(PatientInput.patient_pk).subquery())
            rows = s.execute(
                select(Patient, PatientInput, newest.c.n)
                .join(newest, newest.c.patient_pk == Patient.id)
                .join(PatientInput, (PatientInput.patient_pk == Patient.id)
                      & (PatientInput.version == newest.c.v))
                .where(Patient.protocol == protocol)
                .order_by(PatientInput.created_at.desc(), Patient.label)
            ).all()
            return [PatientSummary(p.id, p.label, int(n), i.created_at, i.created_by,
                                   _has_outcomes(protocol, i.values)) for p, i, n in rows]

    def latest_inputs(self, protocol: str, labels: Sequence[str]) -> dict[str, SavedInput]:
        """The newest stored version of each labelled case that exists."""
        if not labels:
            return {}
        with self.session() as s:
            newest = (select(PatientInput.patient_pk, func.max(PatientInput.version).label("v"))
                      .group_by(PatientInput.patient_pk).subquery())
            rows = s.execute(
                select(Patient.label, PatientInput)
                .join(PatientInput, PatientInput.patient_pk == Patient.id)
                .join(newest, (newest.c.patient_pk == Patient.id)
                      & (newest.c.v == PatientInput.version))
                .where(Patient.protocol == protocol, Patient.label.in_(list(labels)))
            ).all()
            return {label: _saved(row, label, new=False) for label, row in rows}

    def input_history(self, protocol: str, label: str) -> list[SavedInput]:
        """Every stored version of a case, oldest first."""
        with self.session() as s:
            rows = s.scalars(
                select(PatientInput).join(Patient, PatientInput.patient_pk == Patient.id)
                .where(Patient.protocol == protocol, Patient.label == label)
                .order_by(PatientInput.version)
            ).all()
            return [_saved(r, label, new=False) for r in rows]

    def inputs_with_outcomes(self, protocol: str) -> list[SavedInput]:
        """Newest version of every case of a protocol that records the dose given and both
        outcomes (what Learning Mode trains on)."""
        with self.session() as s:
            newest = (select(PatientInput.patient_pk, func.max(PatientInput.version).label("v"))
                      .group_by(PatientInput.patient_pk).subquery())
            rows = s.execute(
                select(Patient.label, PatientInput)
                .join(PatientInput, PatientInput.patient_pk == Patient.id)
                .join(newest, (newest.c.patient_pk == Patient.id)
                      & (newest.c.v == PatientInput.version))
                .where(Patient.protocol == protocol).order_by(Patient.label)
            ).all()
            return [_saved(r, label, new=False) for label, r in rows
                    if _has_outcomes(protocol, r.values)]

    # ---------------------------------------------------------------- notes

    def save_note(self, protocol: str, label: str, patient_id: str, site_id: int | None,
                  text_: str, *, username: str) -> NoteInfo | None:
        """Store a new note version; None (nothing stored) when equal to the newest one."""
        for attempt in range(_RETRIES):
            try:
                with self.session() as s:
                    patient = self._patient(s, protocol, label, patient_id, site_id, username)
                    latest = s.scalar(select(Note).where(Note.patient_pk == patient.id)
                                      .order_by(Note.version.desc()).limit(1))
                    if (latest.text if latest else "") == text_:
                        return None
                    note = Note(patient_pk=patient.id,
                                version=1 if latest is None else latest.version + 1,
                                text=text_, created_at=_now(), created_by=username)
                    s.add(note)
                    s.add(_event(username, "note_saved",
                                 {"protocol": protocol, "patient_pk": patient.id,
                                  "version": note.version}))
                    s.flush()
                    return NoteInfo(label, note.version, note.text, note.created_at,
                                    note.created_by)
            except IntegrityError:
                if attempt == _RETRIES - 1:
                    raise
        raise AssertionError("unreachable")

    def latest_notes(self, protocol: str, labels: Sequence[str]) -> dict[str, NoteInfo]:
        if not labels:
            return {}
        with self.session() as s:
            newest = (select(Note.patient_pk, func.max(Note.version).label("v"))
                      .group_by(Note.patient_pk).subquery())
            rows = s.execute(
                select(Patient.label, Note)
                .join(Note, Note.patient_pk == Patient.id)
                .join(newest, (newest.c.patient_pk == Patient.id) & (newest.c.v == Note.version))
                .where(Patient.protocol == protocol, Patient.label.in_(list(labels)))
            ).all()
            return {label: NoteInfo(label, n.version, n.text, n.created_at, n.created_by)
                    for label, n in rows}

    def note_history(self, protocol: str, label: str) -> list[NoteInfo]:
        with self.session() as s:
            rows = s.scalars(select(Note).join(Patient, Note.patient_pk == Patient.id)
                             .where(Patient.protocol == protocol, Patient.label == label)
                             .order_by(Note.version)).all()
            return [NoteInfo(label, n.version, n.text, n.created_at, n.created_by) for n in rows]

    # ---------------------------------------------------------------- recommendations (audit)

    def record_recommendation(
        self,
        *,
        username: str,
        protocol: str,
        case_label: str,
        input_hash: str,
        model_name: str,
        model_version: str,
        model_versions: Mapping[str, Any],
        recommended_dose_gy: float,
        outputs: Mapping[str, Any],
        session_ref: str,
    ) -> int:
        """Append one recommendation to the audit trail; returns its id."""
        with self.session() as s:
            patient = s.scalar(select(Patient.id).where(Patient.protocol == protocol,
                                                        Patient.label == case_label))
            row = RecommendationRecord(
                created_at=_now(), username=username, protocol=protocol, case_label=case_label,
                patient_pk=patient, input_hash=input_hash, model_name=model_name,
                model_version=model_version, model_versions=_json_safe(dict(model_versions)),
                recommended_dose_gy=float(recommended_dose_gy), outputs=_json_safe(dict(outputs)),
                session_ref=session_ref[:64])
            s.add(row)
            s.flush()
            return row.id

    def recommendations(self, *, protocol: str | None = None, username: str | None = None,
                        limit: int | None = 500) -> list[RecommendationInfo]:
        """Audit-trail rows, newest first."""
        with self.session() as s:
            q = select(RecommendationRecord).order_by(RecommendationRecord.id.desc())
            if protocol:
                q = q.where(RecommendationRecord.protocol == protocol)
            if username:
                q = q.where(RecommendationRecord.username == username)
            if limit:
                q = q.limit(limit)
            return [RecommendationInfo(r.id, r.created_at, r.username, r.protocol, r.case_label,
                                       r.input_hash, r.model_name, r.model_version,
                                       dict(r.model_versions), r.recommended_dose_gy,
                                       dict(r.outputs))
                    for r in s.scalars(q)]

    def audit_marker(self) -> tuple[int, int]:
        """(newest recommendation id, newest audit event id): changes whenever either grows."""
        with self.session() as s:
            return (int(s.scalar(select(func.max(RecommendationRecord.id))) or 0),
                    int(s.scalar(select(func.max(AuditEvent.id))) or 0))

    def recommendations_csv(self, *, protocol: str | None = None) -> str:
        """The audit trail as CSV (every row, oldest first), one line per recommendation."""
        rows = list(reversed(self.recommendations(protocol=protocol, limit=None)))
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["id", "time_utc", "user", "protocol", "case", "input_hash",
                         "outcome_model", "outcome_model_version", "model_versions_json",
                         "recommended_dose_gy", "recommended_tcp", "recommended_ntcp",
                         "recommended_goal", "n_members"])
        for r in rows:
            writer.writerow([
                r.id, r.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"), r.username, r.protocol,
                _csv_text(r.case_label), r.input_hash, _csv_text(r.model_name), r.model_version,
                json.dumps(r.model_versions, sort_keys=True), f"{r.recommended_dose_gy:g}",
                _fmt(r.outputs.get("recommended_tcp")), _fmt(r.outputs.get("recommended_ntcp")),
                r.outputs.get("recommended_goal") or "", r.outputs.get("n_members", ""),
            ])
        return out.getvalue()

    # ---------------------------------------------------------------- model versions

    def register_model_version(
        self, *, protocol: str, arch: str, version: str, location: str, source: str,
        created_by: str, metrics: Mapping[str, Any], training: Mapping[str, Any],
    ) -> ModelVersionInfo:
        """Record a model version (idempotent on ``version``: the existing row is returned)."""
        existing = self.model_version(version)
        if existing is not None:
            return existing
        try:
            with self.session() as s:
                row = ModelVersion(protocol=protocol, arch=arch, version=version,
                                   location=location, source=source, created_at=_now(),
                                   created_by=created_by, metrics=_json_safe(dict(metrics)),
                                   training=_json_safe(dict(training)))
                s.add(row)
                s.flush()
                return _model_info(row)
        except IntegrityError:
            found = self.model_version(version)
            assert found is not None
            return found

    def update_model_metrics(self, version: str, metrics: Mapping[str, Any]) -> None:
        with self.session() as s:
            s.execute(update(ModelVersion).where(ModelVersion.version == version)
                      .values(metrics=_json_safe(dict(metrics))))

    def model_version(self, version: str) -> ModelVersionInfo | None:
        with self.session() as s:
            m = s.scalar(select(ModelVersion).where(ModelVersion.version == version))
            return None if m is None else _model_info(m)

    def model_versions(self, protocol: str) -> list[ModelVersionInfo]:
        """Every version of a protocol, newest first."""
        with self.session() as s:
            return [_model_info(m) for m in s.scalars(
                select(ModelVersion).where(ModelVersion.protocol == protocol)
                .order_by(ModelVersion.id.desc()))]

    def promote(self, protocol: str, version: str, *, username: str, action: str = "promote",
                reason: str = "") -> PromotionInfo:
        """Make ``version`` the one Operation Mode serves for ``protocol`` (audited)."""
        if action not in ("promote", "rollback"):
            raise StoreError(f"action {action!r} is not promote or rollback")
        with self.session() as s:
            m = s.scalar(select(ModelVersion).where(ModelVersion.version == version))
            if m is None or m.protocol != protocol:
                raise StoreError(f"no {protocol} model version {version!r}")
            row = Promotion(protocol=protocol, model_version_pk=m.id, action=action,
                            reason=reason, created_at=_now(), created_by=username)
            s.add(row)
            s.add(_event(username, action, {"protocol": protocol, "version": version,
                                            "reason": reason}))
            s.flush()
            return PromotionInfo(row.id, protocol, version, action, reason, row.created_at,
                                 username)

    def serving_version(self, protocol: str) -> ModelVersionInfo | None:
        """The version the newest promotion of ``protocol`` names (None: never promoted)."""
        with self.session() as s:
            m = s.scalar(select(ModelVersion).join(Promotion,
                                                   Promotion.model_version_pk == ModelVersion.id)
                         .where(Promotion.protocol == protocol)
                         .order_by(Promotion.id.desc()).limit(1))
            return None if m is None else _model_info(m)

    def latest_promotion_id(self) -> int:
        """Id of the newest promotion of any protocol (0 when none): cheap to poll."""
        with self.session() as s:
            return int(s.scalar(select(func.max(Promotion.id))) or 0)

    def promotions(self, protocol: str) -> list[PromotionInfo]:
        """Promotions and rollbacks of a protocol, newest first."""
        with self.session() as s:
            rows = s.execute(select(Promotion, ModelVersion.version)
                             .join(ModelVersion, Promotion.model_version_pk == ModelVersion.id)
                             .where(Promotion.protocol == protocol)
                             .order_by(Promotion.id.desc())).all()
            return [PromotionInfo(p.id, p.protocol, v, p.action, p.reason, p.created_at,
                                  p.created_by) for p, v in rows]

    # ---------------------------------------------------------------- training jobs

    def create_job(self, protocol: str, config: Mapping[str, Any], *, username: str) -> int:
        with self.session() as s:
            job = TrainingJob(protocol=protocol, status="queued", progress=0.0,
                              message="queued", cancel_requested=False,
                              config=_json_safe(dict(config)), error="", model_version_pk=None,
                              created_at=_now(), created_by=username, finished_at=None)
            s.add(job)
            s.flush()
            s.add(_event(username, "training_started", {"protocol": protocol, "job": job.id}))
            return job.id

    def update_job(self, job_id: int, *, status: str | None = None,
                   progress: float | None = None, message: str | None = None,
                   error: str | None = None, model_version: str | None = None) -> bool:
        """Update a job; returns whether a cancel was requested meanwhile."""
        values: dict[str, Any] = {}
        if status is not None:
            if status not in JOB_STATES:
                raise StoreError(f"job status {status!r} is not one of {', '.join(JOB_STATES)}")
            values["status"] = status
            if status in ("done", "failed", "cancelled"):
                values["finished_at"] = _now()
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
        with self.session() as s:
            s.execute(update(TrainingJob).where(TrainingJob.id == job_id)
                      .values(cancel_requested=True))
            s.add(_event(username, "training_cancel", {"job": job_id}))

    def job(self, job_id: int) -> JobInfo | None:
        with self.session() as s:
            row = s.execute(select(TrainingJob, ModelVersion.version)
                            .outerjoin(ModelVersion,
                                       TrainingJob.model_version_pk == ModelVersion.id)
                            .where(TrainingJob.id == job_id)).first()
            return None if row is None else _job_info(row[0], row[1])

    def jobs(self, protocol: str | None = None, limit: int = 20) -> list[JobInfo]:
        with self.session() as s:
            q = (select(TrainingJob, ModelVersion.version)
                 .outerjoin(ModelVersion, TrainingJob.model_version_pk == ModelVersion.id)
                 .order_by(TrainingJob.id.desc()).limit(limit))
            if protocol:
                q = q.where(TrainingJob.protocol == protocol)
            return [_job_info(j, v) for j, v in s.execute(q).all()]

    # ---------------------------------------------------------------- audit events

    def log_event(self, username: str, action: str, detail: Mapping[str, Any]) -> None:
        with self.session() as s:
            s.add(_event(username, action, detail))

    def events(self, limit: int = 200, *, action: str | None = None) -> list[dict[str, Any]]:
        """Audit events, newest first, as dicts (at, username, action, detail)."""
        with self.session() as s:
            q = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
            if action:
                q = q.where(AuditEvent.action == action)
            return [{"at": e.at, "username": e.username, "action": e.action,
                     "detail": dict(e.detail)} for e in s.scalars(q)]


def alembic_config() -> Any:
    """Alembic configuration pointing at the migrations shipped in ``engine/platform/alembic``."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "alembic"))
    return cfg


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers work while a writer (e.g. a training worker) commits; foreign keys are
    # off by default in SQLite.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    with contextlib.suppress(Exception):  # in-memory databases have no WAL
        cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def _event(username: str, action: str, detail: Mapping[str, Any]) -> AuditEvent:
    return AuditEvent(at=_now(), username=username[:64], action=action,
                      detail=_json_safe(dict(detail)))


def _saved(row: PatientInput, label: str, *, new: bool) -> SavedInput:
    return SavedInput(row.patient_pk, label, row.version, row.input_hash, dict(row.values),
                      row.source, row.created_at, row.created_by, new)


def _has_outcomes(protocol: str, values: Mapping[str, Any]) -> bool:
    from engine.core.protocols import load_protocol

    outcomes = load_protocol(protocol).outcome_names
    return values.get("dose_adapt_gy") is not None and all(
        values.get(o) is not None for o in outcomes)


def _job_info(j: TrainingJob, version: str | None) -> JobInfo:
    return JobInfo(j.id, j.protocol, j.status, j.progress, j.message, j.cancel_requested,
                   dict(j.config), j.error, version, j.created_at, j.created_by, j.finished_at)


def _fmt(value: Any) -> str:
    return "" if value is None else f"{float(value):.6g}"


def _csv_text(value: str) -> str:
    """Neutralise spreadsheet formulas in user-typed text (CSV injection)."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value
