"""The artds tables (SQLAlchemy 2 declarative ORM): :class:`Base` and one class per table.

Alembic (``engine/platform/alembic/``) creates and migrates the schema; these classes must
describe exactly what the migrations build (``tests/unit/platform/test_store.py`` compares them).
Times are stored as :class:`UTCDateTime` (timezone-aware UTC on every backend) and ``dict``
columns as JSON. The classes never leave the store: its methods return the records of
:mod:`engine.platform.store.records`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

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
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "AuditEvent",
    "AuthSession",
    "Base",
    "LoginAttempt",
    "ModelVersion",
    "Note",
    "Patient",
    "PatientInput",
    "Promotion",
    "RecommendationRecord",
    "Setting",
    "TrainingJob",
    "UTCDateTime",
    "User",
]


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

    type_annotation_map: ClassVar[dict[Any, Any]] = {  # column type of each annotated type
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
    }


class User(Base):
    """A login: argon2 hash and one role (rows are disabled, never deleted)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(64))


class AuthSession(Base):
    """A login session; only the sha256 of its token is kept."""

    __tablename__ = "auth_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    last_seen_at: Mapped[datetime | None]


class LoginAttempt(Base):
    """One login attempt, good or refused (throttling, shared by every process)."""

    __tablename__ = "login_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), index=True)
    remote: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[datetime] = mapped_column(index=True)
    success: Mapped[bool] = mapped_column(Boolean)


class Setting(Base):
    """A key/value setting of the installation (e.g. the cookie-signing key)."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Patient(Base):
    """One case of a protocol: a patient, or a tumour site for HCC."""

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
    """One immutable version of a case's inputs (a change adds a version)."""

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
    """One immutable version of a patient's note."""

    __tablename__ = "notes"
    __table_args__ = (UniqueConstraint("patient_pk", "version", name="uq_notes_version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_pk: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(64))


class RecommendationRecord(Base):
    """One recommendation shown by the app (the audit trail)."""

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
    """A registered outcome-model version (shipped or trained in Learning Mode)."""

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
    """A promotion or rollback: which version serves a protocol from then on."""

    __tablename__ = "promotions"

    id: Mapped[int] = mapped_column(primary_key=True)
    protocol: Mapped[str] = mapped_column(String(16), index=True)
    model_version_pk: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    action: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(64))


class TrainingJob(Base):
    """A Learning Mode training job: progress, the cancel flag, and who runs it (the claiming
    process and its worker's last heartbeat), seen by every process."""

    __tablename__ = "training_jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    protocol: Mapped[str] = mapped_column(String(16), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    message: Mapped[str] = mapped_column(Text, default="")
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    config: Mapped[dict[str, Any]]
    error: Mapped[str] = mapped_column(Text, default="")
    model_version_pk: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(64))
    finished_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    worker: Mapped[str] = mapped_column(String(160), default="", server_default="")


class AuditEvent(Base):
    """A logged action: logins, users added, notes saved, promotions, ..."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    username: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    detail: Mapped[dict[str, Any]]
