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
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import Select, func, insert, select
from sqlalchemy.orm import Session

from engine.platform.store.connection import Database
from engine.platform.store.records import CaseRecord, NoteInfo, PatientSummary, SavedInput
from engine.platform.store.tables import AuditEvent, Note, Patient, PatientInput
from engine.platform.store.values import json_safe, utc_now

__all__ = ["CaseQueries"]

_Versioned = TypeVar("_Versioned", PatientInput, Note)
"""A table of immutable per-patient versions (``patient_pk``, ``version``)."""
T = TypeVar("T")

_CHUNK = 500
"""Cases per statement when many are read or written at once (bound parameters stay far below
every backend's limit)."""


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
        """:meth:`save_inputs` for many cases in one transaction (e.g. an uploaded file).

        All or nothing, in a bounded number of statements: the cases' patients and newest
        versions are read and the new rows written in chunks of :data:`_CHUNK` (a 10,000-row
        upload is a few dozen statements, not four per case). A label given twice is saved in
        order, as two calls would."""
        prepared = [(r, clean, _record_sha256(clean))
                    for r in records for clean in (json_safe(dict(r.values)),)]
        first: dict[str, CaseRecord] = {}
        for r in records:
            first.setdefault(r.label, r)

        def save(s: Session) -> list[SavedInput]:
            pks = _patient_pks(s, protocol, list(first))
            # (version, record digest, the version's fields) of each stored case's newest input;
            # an unchanged case returns the values just given, equal to the stored ones
            latest = _newest_inputs(s, list(pks.values()))
            by_label = {lab: latest[pk] for lab, pk in pks.items() if pk in latest}
            now = utc_now()
            pks.update(_insert_patients(s, protocol, [r for lab, r in first.items()
                                                      if lab not in pks], username, now))
            out, rows = [], []
            for r, clean, digest in prepared:
                last = by_label.get(r.label)
                if last is not None and last.record_sha256 == digest:
                    out.append(SavedInput(pks[r.label], r.label, last.version, last.input_hash,
                                          clean, last.source, last.created_at, last.created_by,
                                          False))
                    continue
                row = _InputRow(1 if last is None else last.version + 1, digest, r.input_hash,
                                source, now, username)
                by_label[r.label] = row
                rows.append({"patient_pk": pks[r.label], "version": row.version,
                             "values": clean, "input_hash": r.input_hash,
                             "record_sha256": digest, "source": source, "created_at": now,
                             "created_by": username})
                out.append(SavedInput(pks[r.label], r.label, row.version, r.input_hash, clean,
                                      source, now, username, True))
            for chunk in _chunks(rows):
                s.execute(insert(PatientInput), chunk)
            return out

        return self._retried(save)  # a concurrent first save of a patient: retry

    def patients(self, protocol: str, *, search: str = "",
                 limit: int | None = None) -> list[PatientSummary]:
        """Stored cases of a protocol, newest change first (then by label).

        Args:
            search: only cases whose label contains this text (any case; "" for all).
            limit: at most this many (None: all). The "Saved patients" list asks for a page:
                only those rows' values are read, however many cases are stored.
        """
        with self.session() as s:
            q = (_newest_rows(PatientInput, protocol, search=search)
                 .order_by(PatientInput.created_at.desc(), Patient.label))
            rows = s.execute(q if limit is None else q.limit(limit)).all()
            return [PatientSummary(p.id, p.label, i.version, i.created_at, i.created_by,
                                   _has_outcomes(protocol, i.values)) for p, i in rows]

    def count_patients(self, protocol: str, *, search: str = "") -> int:
        """How many cases of a protocol are stored (whose label contains ``search``)."""
        q = select(func.count()).select_from(Patient).where(Patient.protocol == protocol)
        if search:
            q = q.where(_label_contains(search))
        with self.session() as s:
            return int(s.scalar(q) or 0)

    def latest_inputs(self, protocol: str, labels: Sequence[str]) -> dict[str, SavedInput]:
        """The newest stored version of each labelled case that exists."""
        out: dict[str, SavedInput] = {}
        with self.session() as s:
            for chunk in _chunks(list(labels)):
                rows = s.execute(_newest_rows(PatientInput, protocol, labels=chunk)).all()
                out.update((p.label, _saved(i, p.label, new=False)) for p, i in rows)
        return out

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
            return [_saved(i, p.label, new=False) for p, i in rows
                    if _has_outcomes(protocol, i.values)]

    def latest_input_id(self) -> int:
        """Id of the newest stored input version of any case (0 when none): cheap to poll."""
        with self.session() as s:
            return int(s.scalar(select(func.max(PatientInput.id))) or 0)

    def outcome_counts(self, protocol: str) -> tuple[int, dict[str, int]]:
        """How many cases of a protocol record the dose given and every outcome in their newest
        version (:meth:`inputs_with_outcomes`, counted by the database: no values are read),
        and of those how many had each outcome (value 1), by outcome name."""
        from engine.core.protocols import load_protocol

        outcomes = load_protocol(protocol).outcome_names
        values = PatientInput.values
        known = [values["dose_adapt_gy"].as_float().is_not(None),
                 *(values[o].as_integer().is_not(None) for o in outcomes)]
        q = (_newest_rows(PatientInput, protocol).where(*known)
             .with_only_columns(func.count(), *(func.sum(values[o].as_integer())
                                                for o in outcomes)))
        with self.session() as s:
            n, *events = s.execute(q).one()
        return int(n or 0), {o: int(e or 0) for o, e in zip(outcomes, events, strict=True)}

    # ---------------------------------------------------------------- notes

    def save_note(self, protocol: str, label: str, patient_id: str, site_id: int | None,
                  text_: str, *, username: str) -> NoteInfo | None:
        """Store a new note version; None (nothing stored) when equal to the newest one."""
        return self.save_notes(protocol, [(label, patient_id, site_id, text_)],
                               username=username)[0]

    def save_notes(self, protocol: str, notes: Sequence[tuple[str, str, int | None, str]], *,
                   username: str) -> list[NoteInfo | None]:
        """:meth:`save_note` for many cases, ``(label, patient_id, site_id, text)`` each, in one
        transaction and a bounded number of statements (a file's note column); one
        ``note_saved`` audit event per stored version."""
        first: dict[str, CaseRecord] = {}
        for label, patient_id, site_id, _text in notes:
            first.setdefault(label, CaseRecord(label, patient_id, site_id, {}, ""))

        def save(s: Session) -> list[NoteInfo | None]:
            pks = _patient_pks(s, protocol, list(first))
            now = utc_now()
            pks.update(_insert_patients(s, protocol, [r for lab, r in first.items()
                                                      if lab not in pks], username, now))
            newest = _newest_notes(s, list(pks.values()))
            texts = {lab: newest[pk] for lab, pk in pks.items() if pk in newest}
            out: list[NoteInfo | None] = []
            rows, events = [], []
            for label, _pid, _site, text_ in notes:
                version, last = texts.get(label, (0, ""))
                if last == text_:
                    out.append(None)
                    continue
                texts[label] = (version + 1, text_)
                rows.append({"patient_pk": pks[label], "version": version + 1, "text": text_,
                             "created_at": now, "created_by": username})
                events.append({"at": now, "username": username[:64], "action": "note_saved",
                               "detail": {"protocol": protocol, "patient_pk": pks[label],
                                          "version": version + 1}})
                out.append(NoteInfo(label, version + 1, text_, now, username))
            for chunk in _chunks(rows):
                s.execute(insert(Note), chunk)
            for chunk in _chunks(events):
                s.execute(insert(AuditEvent), chunk)
            return out

        return self._retried(save)

    def latest_notes(self, protocol: str, labels: Sequence[str]) -> dict[str, NoteInfo]:
        """The newest note of each labelled case that has one."""
        out: dict[str, NoteInfo] = {}
        with self.session() as s:
            for chunk in _chunks(list(labels)):
                rows = s.execute(_newest_rows(Note, protocol, labels=chunk)).all()
                out.update((p.label, _note_info(p.label, n)) for p, n in rows)
        return out

    def note_history(self, protocol: str, label: str) -> list[NoteInfo]:
        """Every note version of a case, oldest first."""
        with self.session() as s:
            return [_note_info(label, n) for n in s.scalars(_history(Note, protocol, label))]


def _newest_rows(model: type[_Versioned], protocol: str, *, labels: Sequence[str] | None = None,
                 search: str = "") -> Select[Any]:
    """Rows (patient, its newest version of ``model``) of a protocol's cases that have one,
    restricted to ``labels`` or to labels containing ``search`` when given (unordered).

    The newest version is found per case through the ``(patient_pk, version)`` index, so a query
    for a few cases reads those cases only, not every stored version."""
    newest = (select(func.max(model.version)).where(model.patient_pk == Patient.id)
              .correlate(Patient).scalar_subquery())
    q = (select(Patient, model).join(model, model.patient_pk == Patient.id)
         .where(Patient.protocol == protocol, model.version == newest))
    if labels is not None:
        q = q.where(Patient.label.in_(list(labels)))
    if search:
        q = q.where(_label_contains(search))
    return q


def _label_contains(search: str) -> Any:
    """Labels containing ``search``, in any letter case (``%`` and ``_`` are plain text)."""
    return func.lower(Patient.label).contains(search.lower(), autoescape=True)


def _chunks(items: list[T], size: int | None = None) -> Iterator[list[T]]:
    """``items`` in lists of at most ``size`` (default :data:`_CHUNK`): bounded statements."""
    size = size or _CHUNK
    for start in range(0, len(items), size):
        yield items[start:start + size]


class _InputRow(NamedTuple):
    """The columns of a stored input version that a save compares with (not its values)."""

    version: int
    record_sha256: str
    input_hash: str
    source: str
    created_at: datetime
    created_by: str


def _patient_pks(s: Session, protocol: str, labels: Sequence[str]) -> dict[str, int]:
    """Label → database id of the stored ones of ``labels``, their rows locked for update
    (PostgreSQL: writers of one patient take turns, so versions never collide; SQLite
    serialises every writer anyway)."""
    out: dict[str, int] = {}
    for chunk in _chunks(list(labels)):
        q = (select(Patient.label, Patient.id)
             .where(Patient.protocol == protocol, Patient.label.in_(chunk)).with_for_update())
        out.update((label, pk) for label, pk in s.execute(q))
    return out


def _newest_inputs(s: Session, patient_pks: Sequence[int]) -> dict[int, _InputRow]:
    """Patient id → its newest input version's columns (values left out), for those that
    have one."""
    out: dict[int, _InputRow] = {}
    for chunk in _chunks(list(patient_pks)):
        newest = (select(PatientInput.patient_pk, func.max(PatientInput.version).label("v"))
                  .where(PatientInput.patient_pk.in_(chunk))
                  .group_by(PatientInput.patient_pk).subquery())
        q = (select(PatientInput.patient_pk, PatientInput.version, PatientInput.record_sha256,
                    PatientInput.input_hash, PatientInput.source, PatientInput.created_at,
                    PatientInput.created_by)
             .join(newest, (newest.c.patient_pk == PatientInput.patient_pk)
                   & (newest.c.v == PatientInput.version)))
        out.update((pk, _InputRow(*rest)) for pk, *rest in s.execute(q))
    return out


def _newest_notes(s: Session, patient_pks: Sequence[int]) -> dict[int, tuple[int, str]]:
    """Patient id → (version, text) of its newest note, for those that have one."""
    out: dict[int, tuple[int, str]] = {}
    for chunk in _chunks(list(patient_pks)):
        newest = (select(Note.patient_pk, func.max(Note.version).label("v"))
                  .where(Note.patient_pk.in_(chunk)).group_by(Note.patient_pk).subquery())
        q = (select(Note.patient_pk, Note.version, Note.text)
             .join(newest, (newest.c.patient_pk == Note.patient_pk)
                   & (newest.c.v == Note.version)))
        out.update((pk, (version, text_)) for pk, version, text_ in s.execute(q))
    return out


def _insert_patients(s: Session, protocol: str, records: Sequence[CaseRecord], username: str,
                     now: datetime) -> dict[str, int]:
    """Insert patient rows for ``records`` (labels not stored yet); label → new id.

    One INSERT ... RETURNING per chunk, each id with its label (rows may come back in any
    order). A first save racing another writer trips the unique label: the caller's
    transaction reruns (:meth:`~engine.platform.store.connection.Database._retried`)."""
    out: dict[str, int] = {}
    for chunk in _chunks(list(records)):
        created = s.execute(
            insert(Patient).returning(Patient.id, Patient.label),
            [{"protocol": protocol, "patient_id": r.patient_id, "site_id": r.site_id,
              "label": r.label, "created_at": now, "created_by": username} for r in chunk])
        out.update((label, pk) for pk, label in created)
    return out


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
    """sha256 of the canonical JSON of a case's values, already :func:`json_safe` (equal
    values, equal digest)."""
    body = json.dumps(values, sort_keys=True, allow_nan=False)
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def _has_outcomes(protocol: str, values: Mapping[str, Any]) -> bool:
    """The values record the dose given and every outcome of the protocol."""
    from engine.core.protocols import load_protocol

    outcomes = load_protocol(protocol).outcome_names
    return values.get("dose_adapt_gy") is not None and all(
        values.get(o) is not None for o in outcomes)
