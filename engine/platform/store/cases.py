"""Patients, their versioned inputs and notes, and the cases Learning Mode trains on.

A patient row is one case of a protocol (a patient, or a tumour site for HCC), unique by label.
Inputs and notes are immutable versions: a changed value (a follow-up outcome too) adds a version,
a save identical to the newest version adds nothing, and nothing is overwritten. Two processes
saving the same new patient at once trip its unique label; the loser retries
(:meth:`~engine.platform.store.connection.Database._retried`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from engine.platform.store.audit import audit_event
from engine.platform.store.connection import Database
from engine.platform.store.records import CaseRecord, NoteInfo, PatientSummary, SavedInput
from engine.platform.store.tables import Note, Patient, PatientInput
from engine.platform.store.values import json_safe, utc_now

__all__ = ["CaseQueries"]

_Versioned = TypeVar("_Versioned", PatientInput, Note)
"""A table of immutable per-patient versions (``patient_pk``, ``version``)."""


class CaseQueries(Database):
    """Patients, versioned inputs and versioned notes."""

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
        prepared = [(r, json_safe(dict(r.values))) for r in records]

        def save(s: Session) -> list[SavedInput]:
            out = []
            for r, clean in prepared:
                digest = _record_sha256(clean)
                patient = _patient(s, protocol, r.label, r.patient_id, r.site_id, username)
                latest = _newest_of(s, PatientInput, patient.id)
                if latest is not None and latest.record_sha256 == digest:
                    out.append(_saved(latest, r.label, new=False))
                    continue
                row = PatientInput(patient_pk=patient.id, version=_next_version(latest),
                                   values=clean, input_hash=r.input_hash, record_sha256=digest,
                                   source=source, created_at=utc_now(), created_by=username)
                s.add(row)
                s.flush()
                out.append(_saved(row, r.label, new=True))
            return out

        return self._retried(save)  # a concurrent first save of a patient: retry

    def patients(self, protocol: str) -> list[PatientSummary]:
        """Stored cases of a protocol, newest change first."""
        with self.session() as s:
            rows = s.execute(_newest_rows(PatientInput, protocol)
                             .order_by(PatientInput.created_at.desc(), Patient.label)).all()
            return [PatientSummary(p.id, p.label, int(n), i.created_at, i.created_by,
                                   _has_outcomes(protocol, i.values)) for p, i, n in rows]

    def latest_inputs(self, protocol: str, labels: Sequence[str]) -> dict[str, SavedInput]:
        """The newest stored version of each labelled case that exists."""
        if not labels:
            return {}
        with self.session() as s:
            rows = s.execute(_newest_rows(PatientInput, protocol, labels)).all()
            return {p.label: _saved(i, p.label, new=False) for p, i, _n in rows}

    def input_history(self, protocol: str, label: str) -> list[SavedInput]:
        """Every stored version of a case, oldest first."""
        with self.session() as s:
            rows = s.scalars(_history(PatientInput, protocol, label)).all()
            return [_saved(r, label, new=False) for r in rows]

    def inputs_with_outcomes(self, protocol: str) -> list[SavedInput]:
        """Newest version of every case of a protocol that records the dose given and both
        outcomes (what Learning Mode trains on), by label."""
        with self.session() as s:
            rows = s.execute(_newest_rows(PatientInput, protocol).order_by(Patient.label)).all()
            return [_saved(i, p.label, new=False) for p, i, _n in rows
                    if _has_outcomes(protocol, i.values)]

    # ---------------------------------------------------------------- notes

    def save_note(self, protocol: str, label: str, patient_id: str, site_id: int | None,
                  text_: str, *, username: str) -> NoteInfo | None:
        """Store a new note version; None (nothing stored) when equal to the newest one."""

        def save(s: Session) -> NoteInfo | None:
            patient = _patient(s, protocol, label, patient_id, site_id, username)
            latest = _newest_of(s, Note, patient.id)
            if (latest.text if latest else "") == text_:
                return None
            note = Note(patient_pk=patient.id, version=_next_version(latest), text=text_,
                        created_at=utc_now(), created_by=username)
            s.add(note)
            s.add(audit_event(username, "note_saved", {"protocol": protocol,
                                                       "patient_pk": patient.id,
                                                       "version": note.version}))
            s.flush()
            return _note_info(label, note)

        return self._retried(save)

    def latest_notes(self, protocol: str, labels: Sequence[str]) -> dict[str, NoteInfo]:
        """The newest note of each labelled case that has one."""
        if not labels:
            return {}
        with self.session() as s:
            rows = s.execute(_newest_rows(Note, protocol, labels)).all()
            return {p.label: _note_info(p.label, n) for p, n, _n in rows}

    def note_history(self, protocol: str, label: str) -> list[NoteInfo]:
        """Every note version of a case, oldest first."""
        with self.session() as s:
            return [_note_info(label, n) for n in s.scalars(_history(Note, protocol, label))]


def _patient(s: Session, protocol: str, label: str, patient_id: str, site_id: int | None,
             username: str) -> Patient:
    """The patient row of ``label``, created when new (flushed, so it has an id)."""
    # FOR UPDATE (PostgreSQL) serialises writers of one patient, so version numbers never
    # collide; SQLite serialises all writers anyway. A patient created by two writers at
    # once trips the unique label: the caller retries.
    p = s.scalar(select(Patient).where(Patient.protocol == protocol, Patient.label == label)
                 .with_for_update())
    if p is None:
        p = Patient(protocol=protocol, patient_id=patient_id, site_id=site_id, label=label,
                    created_at=utc_now(), created_by=username)
        s.add(p)
        s.flush()
    return p


def _newest_of(s: Session, model: type[_Versioned], patient_pk: int) -> _Versioned | None:
    """The newest version of one patient's inputs or notes, None when there is none."""
    return s.scalar(select(model).where(model.patient_pk == patient_pk)
                    .order_by(model.version.desc()).limit(1))


def _next_version(latest: PatientInput | Note | None) -> int:
    return 1 if latest is None else latest.version + 1


def _newest_rows(model: type[_Versioned], protocol: str,
                 labels: Sequence[str] | None = None) -> Select[Any]:
    """Rows (patient, its newest version of ``model``, number of versions) of a protocol's
    cases that have one, restricted to ``labels`` when given (unordered)."""
    newest = (select(model.patient_pk, func.max(model.version).label("v"),
                     func.count().label("n"))
              .group_by(model.patient_pk).subquery())
    q = (select(Patient, model, newest.c.n)
         .join(model, model.patient_pk == Patient.id)
         .join(newest, (newest.c.patient_pk == Patient.id) & (newest.c.v == model.version))
         .where(Patient.protocol == protocol))
    return q if labels is None else q.where(Patient.label.in_(list(labels)))


def _history(model: type[_Versioned], protocol: str, label: str) -> Select[tuple[_Versioned]]:
    """Every version of ``model`` of one case, oldest first."""
    return (select(model).join(Patient, model.patient_pk == Patient.id)
            .where(Patient.protocol == protocol, Patient.label == label)
            .order_by(model.version))


def _saved(row: PatientInput, label: str, *, new: bool) -> SavedInput:
    return SavedInput(row.patient_pk, label, row.version, row.input_hash, dict(row.values),
                      row.source, row.created_at, row.created_by, new)


def _note_info(label: str, n: Note) -> NoteInfo:
    return NoteInfo(label, n.version, n.text, n.created_at, n.created_by)


def _record_sha256(values: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of a case's values (equal values, equal digest)."""
    body = json.dumps(json_safe(values), sort_keys=True, allow_nan=False)
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def _has_outcomes(protocol: str, values: Mapping[str, Any]) -> bool:
    """The values record the dose given and every outcome of the protocol."""
    from engine.core.protocols import load_protocol

    outcomes = load_protocol(protocol).outcome_names
    return values.get("dose_adapt_gy") is not None and all(
        values.get(o) is not None for o in outcomes)
