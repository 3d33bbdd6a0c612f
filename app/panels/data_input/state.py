"""What the parts of the Data input panel share: the session's cases and notes, and how cases
are added.

One :class:`DataInputState` per session, made by :func:`new_state` inside the panel's module
server and passed to each part's server function (examples, upload, form, case list, saved
patients and follow-up, notes). Each part keeps its own messages; only what several parts read or
write lives here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
from shiny import reactive, ui
from shiny.session import Inputs

from app import shared
from engine.core.protocols import Protocol
from engine.core.schema import case_labels
from engine.dvh import PlanImport
from engine.platform.inputs import case_records, merge_cases
from engine.platform.store import Store, UserInfo

__all__ = ["MAX_SELECTABLE", "MAX_SHOWN", "CaseSelection", "DataInputState", "PlanLink",
           "new_state"]

MAX_SHOWN = 4
"""Cases selected automatically after a load (users may pick more, up to MAX_SELECTABLE)."""
MAX_SELECTABLE = 7
"""Most cases shown side by side (one colour each)."""


@dataclass(frozen=True)
class CaseSelection:
    """Reactive views of the session's cases that sibling panels read."""

    cases: Callable[[], pd.DataFrame]
    """All cases of the current protocol (validated)."""
    shown: Callable[[], pd.DataFrame]
    """The cases chosen for display, in the chosen order."""
    notes: Callable[[], dict[str, str]]
    """Physician notes of the current protocol keyed by case label."""
    plans: Callable[[], dict[str, PlanImport]]
    """Imported plans of the current protocol keyed by case label: those whose dosimetric
    features the case still holds (for the report)."""


@dataclass(frozen=True)
class PlanLink:
    """An imported plan whose dosimetric features were used for a case (kept in the session
    only, never on disk)."""

    result: PlanImport
    """The plan's evaluation for the protocol."""
    values: dict[str, float]
    """Feature → the value given to the case, Gy (the plan's value rounded as the form shows
    it); the link holds while the case keeps these values."""


@dataclass(frozen=True)
class DataInputState:
    """A session's cases and notes (per protocol) and the reactive views of them."""

    input: Inputs
    """The panel module's inputs (the sidebar chooser ``show`` among them)."""
    protocol: Callable[[], Protocol]
    """Reactive: the current protocol."""
    db: Store
    """The database every added case, note and follow-up is saved in."""
    user: UserInfo
    """The logged-in user (saved with every version)."""
    case_tables: reactive.Value[dict[str, pd.DataFrame]]
    """Protocol name → the session's validated cases of that protocol."""
    note_texts: reactive.Value[dict[str, dict[str, str]]]
    """Protocol name → case label → the note as written in this session (saved or not)."""
    db_changed: reactive.Value[int]
    """Counts the session's writes to the database; outputs that list stored data read it."""
    status: reactive.Value[dict[str, str]]
    """Success line of a part ("example", "upload", "form"), empty when there is none."""
    plan_links: reactive.Value[dict[str, dict[str, PlanLink]]]
    """Protocol name → case label → the imported plan whose features the case was given."""
    remembered: dict[str, list[str]]
    """Protocol name → the cases chosen in the sidebar when that protocol was last shown."""
    cases: Callable[[], pd.DataFrame]
    """Reactive: all cases of the current protocol."""
    labels: Callable[[], list[str]]
    """Reactive: their case labels."""
    shown: Callable[[], pd.DataFrame]
    """Reactive: the cases chosen in the sidebar, in the chosen order."""
    notes: Callable[[], dict[str, str]]
    """Reactive: the notes of the current protocol keyed by case label."""
    plans: Callable[[], dict[str, PlanImport]]
    """Reactive: the imported plans of the current protocol's cases that still hold the plan's
    dosimetric features, keyed by case label."""

    def set_status(self, key: str, text: str) -> None:
        """Set (or clear, with "") the success line of part ``key``."""
        self.status.set({**self.status(), key: text})

    def mark_db_changed(self) -> None:
        self.db_changed.set(self.db_changed() + 1)

    def update_chooser(self, selected: list[str]) -> None:
        """Offer the current protocol's cases in the sidebar with ``selected`` chosen."""
        name = self.protocol().name
        self.remembered[name] = selected
        ui.update_selectize("show", choices=case_labels(self.case_tables()[name]),
                            selected=selected)

    def add_cases(self, new: pd.DataFrame, source: str) -> tuple[int, int]:
        """Merge validated cases (same id: replaced), save them to the database as new input
        versions where they changed, and bring in their stored notes (a ``note`` column of
        ``new`` wins and is saved); returns (added, replaced)."""
        p, db, username = self.protocol(), self.db, self.user.username
        db.save_cases(p.name, case_records(new, p), source=source, username=username)
        self.mark_db_changed()
        with reactive.isolate():
            current = self.case_tables()[p.name]
            current_labels = case_labels(current)
            chosen = [lab for lab in (self.input.show() or ()) if lab in current_labels]
        new_labels = case_labels(new)
        merged, replaced = merge_cases(current, new)
        self.case_tables.set({**self.case_tables(), p.name: merged})
        with reactive.isolate():
            current_notes = dict(self.note_texts()[p.name])
        for lab, note in db.latest_notes(p.name, new_labels).items():
            if not current_notes.get(lab, "").strip():
                current_notes[lab] = note.text
        if "note" in new.columns:
            records = {r.label: r for r in case_records(new, p)}
            for lab, text in zip(new_labels, new["note"].fillna(""), strict=True):
                if str(text).strip():
                    current_notes[lab] = str(text)
                    r = records[lab]
                    db.save_note(p.name, lab, r.patient_id, r.site_id, str(text),
                                 username=username)
        self.note_texts.set({**self.note_texts(), p.name: current_notes})
        if len(new_labels) >= MAX_SHOWN:
            selection = new_labels[:MAX_SHOWN]
        else:
            selection = ([lab for lab in chosen if lab not in new_labels] + new_labels)[-MAX_SHOWN:]
        self.update_chooser(selection)
        return len(new_labels) - replaced, replaced


def new_state(
    input: Inputs, *, protocol: Callable[[], Protocol], db: Store, user: UserInfo
) -> DataInputState:
    """A session's state, starting with each protocol's first example patient (and its stored
    notes); call inside the panel's module server."""
    case_tables: reactive.Value[dict[str, pd.DataFrame]] = reactive.value(
        {name: shared.STARTUP_CASES[name].copy() for name in shared.PROTOCOLS}
    )
    note_texts: reactive.Value[dict[str, dict[str, str]]] = reactive.value({
        name: {lab: n.text for lab, n in db.latest_notes(
            name, case_labels(shared.STARTUP_CASES[name])).items()}
        for name in shared.PROTOCOLS
    })

    @reactive.calc
    def cases() -> pd.DataFrame:
        return case_tables()[protocol().name]

    @reactive.calc
    def labels() -> list[str]:
        return case_labels(cases())

    @reactive.calc
    def shown() -> pd.DataFrame:
        df, all_labels = cases(), labels()
        chosen = [all_labels.index(lab) for lab in (input.show() or ()) if lab in all_labels]
        return df.iloc[chosen].reset_index(drop=True) if chosen else df.iloc[0:0]

    @reactive.calc
    def notes() -> dict[str, str]:
        return dict(note_texts()[protocol().name])

    plan_links: reactive.Value[dict[str, dict[str, PlanLink]]] = reactive.value(
        {name: {} for name in shared.PROTOCOLS})

    @reactive.calc
    def plans() -> dict[str, PlanImport]:
        df, all_labels = cases(), labels()
        out = {}
        for label, link in plan_links()[protocol().name].items():
            if label not in all_labels:
                continue
            row = df.iloc[all_labels.index(label)]
            # A later upload, form or version may have changed the features: the plan no
            # longer describes the case then.
            if all(abs(float(row[k]) - v) <= 1e-9 for k, v in link.values.items()):
                out[label] = link.result
        return out

    return DataInputState(
        input=input, protocol=protocol, db=db, user=user, case_tables=case_tables,
        note_texts=note_texts, db_changed=reactive.value(0), status=reactive.value({}),
        plan_links=plan_links,
        remembered={name: case_labels(shared.STARTUP_CASES[name]) for name in shared.PROTOCOLS},
        cases=cases, labels=labels, shown=shown, notes=notes, plans=plans,
    )
