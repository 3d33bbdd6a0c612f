"""The audit trail: every recommendation shown, logged actions, and the CSV export.

Recommendations are appended with the user, time, input hash, model versions and everything
shown; physicists review them in the app and export them as CSV
(:meth:`AuditQueries.recommendations_csv`, spreadsheet formulas neutralised). Audit events record
logins, refused logins, users added, notes saved, promotions and training jobs; every other query
module appends them through :func:`audit_event`, in the same transaction as the change they
describe.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select

from engine.core.tabular import neutralise_formula
from engine.platform.store.connection import Database
from engine.platform.store.records import RecommendationInfo
from engine.platform.store.tables import AuditEvent, Patient, RecommendationRecord
from engine.platform.store.values import json_safe, utc_now

__all__ = ["AuditQueries", "audit_event"]

_CSV_HEADER = ("id", "time_utc", "user", "protocol", "case", "input_hash", "outcome_model",
               "outcome_model_version", "model_versions_json", "recommended_dose_gy",
               "recommended_tcp", "recommended_ntcp", "recommended_goal", "n_members")
"""Columns of :meth:`AuditQueries.recommendations_csv`, in order."""


def audit_event(username: str, action: str, detail: Mapping[str, Any]) -> AuditEvent:
    """An audit-event row stamped now (the caller adds it to its transaction)."""
    return AuditEvent(at=utc_now(), username=username[:64], action=action,
                      detail=json_safe(dict(detail)))


class AuditQueries(Database):
    """Recommendations (the audit trail) and audit events."""

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
                created_at=utc_now(), username=username, protocol=protocol,
                case_label=case_label, patient_pk=patient, input_hash=input_hash,
                model_name=model_name, model_version=model_version,
                model_versions=json_safe(dict(model_versions)),
                recommended_dose_gy=float(recommended_dose_gy), outputs=json_safe(dict(outputs)),
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
        writer.writerow(_CSV_HEADER)
        for r in rows:
            writer.writerow([
                r.id, r.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"), r.username, r.protocol,
                neutralise_formula(r.case_label), r.input_hash, neutralise_formula(r.model_name),
                r.model_version,
                json.dumps(r.model_versions, sort_keys=True), f"{r.recommended_dose_gy:g}",
                _fmt(r.outputs.get("recommended_tcp")), _fmt(r.outputs.get("recommended_ntcp")),
                r.outputs.get("recommended_goal") or "", r.outputs.get("n_members", ""),
            ])
        return out.getvalue()

    def log_event(self, username: str, action: str, detail: Mapping[str, Any]) -> None:
        """Append one audit event (``detail`` made JSON-safe)."""
        with self.session() as s:
            s.add(audit_event(username, action, detail))

    def events(self, limit: int = 200, *, action: str | None = None) -> list[dict[str, Any]]:
        """Audit events, newest first, as dicts (at, username, action, detail)."""
        with self.session() as s:
            q = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
            if action:
                q = q.where(AuditEvent.action == action)
            return [{"at": e.at, "username": e.username, "action": e.action,
                     "detail": dict(e.detail)} for e in s.scalars(q)]


def _fmt(value: Any) -> str:
    """A probability for the CSV: 6 significant digits, empty when unknown."""
    return "" if value is None else f"{float(value):.6g}"

