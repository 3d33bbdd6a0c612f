"""What the store returns and accepts: frozen records, the roles and job states, its error.

Every :class:`engine.platform.store.Store` method takes and returns these plain values (or
dicts), never ORM rows, so callers need no database session. Times are timezone-aware UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = [
    "ACTIVE_JOB_STATES",
    "JOB_STATES",
    "ROLES",
    "CaseRecord",
    "JobInfo",
    "ModelVersionInfo",
    "NoteInfo",
    "PatientSummary",
    "PromotionInfo",
    "RecommendationInfo",
    "SavedInput",
    "StoreError",
    "UserInfo",
]

ROLES = ("clinician", "physicist", "admin")
"""Roles, each allowed what the previous one is plus more (see ``docs/clinic.md``)."""
JOB_STATES = ("queued", "running", "done", "failed", "cancelled")
"""States of a Learning Mode training job: queued (waiting for a job runner to claim it), running
(claimed; its worker heartbeats), then one final state that never changes again."""
ACTIVE_JOB_STATES = ("queued", "running")
"""States of :data:`JOB_STATES` a job leaves exactly once, for a final one."""


class StoreError(ValueError):
    """A request the store refuses (unknown user, duplicate name, bad role...): one line."""


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
    (None when unknown), and ``proposed_dose_adapt_gy`` when a proposal was given."""
    source: str
    """Where they came from: ``"form"``, ``"upload"``, ``"example"``, ``"follow-up"``,
    ``"proposal"``."""
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
    """When it was queued."""
    created_by: str
    """Who started it."""
    finished_at: datetime | None
    """When it ended."""
    started_at: datetime | None = None
    """When a job runner claimed it (None while queued)."""
    heartbeat_at: datetime | None = None
    """The worker's last heartbeat (None before the first)."""
    worker: str = ""
    """Who runs it: ``host:pid:start`` of the worker process (or of the claiming app process
    until its worker started); empty while queued."""
