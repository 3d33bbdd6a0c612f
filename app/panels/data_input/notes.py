"""Data input: the physician notes of the shown cases ("Save notes" stores a new version)."""

from __future__ import annotations

import hashlib

from shiny import reactive, render, ui
from shiny.session import Inputs
from shiny.types import SilentException

from app import shared
from app.panels.data_input.messages import when
from app.panels.data_input.state import DataInputState
from app.runtime import in_database_thread
from engine.core.schema import MAX_NOTE_CHARS, case_labels
from engine.platform.inputs import case_records
from engine.platform.store import NoteInfo, Store

__all__ = ["notes_card", "notes_server"]


def _note_input_id(protocol_name: str, label: str) -> str:
    """A valid, stable input id for the note of a case (labels hold spaces and dots)."""
    digest = hashlib.sha1(f"{protocol_name}\x00{label}".encode()).hexdigest()[:12]
    return f"note_{digest}"


def notes_card() -> ui.Tag:
    return ui.card(
        ui.card_header("Physician notes"),
        ui.tags.small("One note per shown case; notes go into the report. “Save "
                      "notes” stores them with the patient (each save is a version).",
                      class_="text-muted"),
        ui.output_ui("notes_ui"),
        ui.div(ui.input_action_button("save_notes", "Save notes",
                                      class_="btn-primary btn-sm")),
        ui.output_ui("notes_saved"),
    )


def _stored_notes(db: Store, labels_by_protocol: dict[str, list[str]]) -> dict[str, dict[str, str]]:
    """Protocol → case label → newest stored note, for the given cases (a database thread)."""
    return {name: {lab: n.text for lab, n in db.latest_notes(name, labels).items()}
            for name, labels in labels_by_protocol.items()}


def notes_server(input: Inputs, state: DataInputState) -> None:
    """One text area per shown case; what is typed goes into the session's notes at once
    (and so into the report), "Save notes" stores the changed ones in the database. The stored
    notes of the start-up cases are read, and notes saved, in a database thread."""
    db = state.db
    message: reactive.Value[str | None] = reactive.value(None)
    """What the last "Save notes" did."""

    @reactive.extended_task
    async def startup_notes(labels: dict[str, list[str]]) -> dict[str, dict[str, str]]:
        return await in_database_thread(_stored_notes, db, labels)

    startup_notes({name: case_labels(cases) for name, cases in shared.STARTUP_CASES.items()})

    @reactive.effect
    def _startup_notes_arrived() -> None:
        if startup_notes.status() != "success":
            return
        stored = startup_notes.result()
        with reactive.isolate():
            current = state.note_texts()
            merged = {name: {**{lab: text for lab, text in stored.get(name, {}).items()},
                             **{lab: text for lab, text in notes.items() if text.strip()}}
                      for name, notes in current.items()}
            state.note_texts.set(merged)
            name = state.protocol().name
            for lab in case_labels(state.shown()):
                if lab in stored.get(name, {}) and not current[name].get(lab, "").strip():
                    ui.update_text_area(_note_input_id(name, lab), value=merged[name][lab])

    @reactive.effect
    def _collect_notes() -> None:
        name = state.protocol().name
        updates: dict[str, str] = {}
        for lab in case_labels(state.shown()):
            try:
                value = input[_note_input_id(name, lab)]()
            except SilentException:
                continue
            if value is not None:
                updates[lab] = str(value)[:MAX_NOTE_CHARS]
        with reactive.isolate():
            current = state.note_texts()
        merged = {**current[name], **updates}
        if merged != current[name]:
            state.note_texts.set({**current, name: merged})

    @render.ui
    def notes_ui():
        p = state.protocol()
        labs = case_labels(state.shown())
        if not labs:
            return ui.div("Choose cases to show to write notes for them.", class_="artds-empty")
        with reactive.isolate():
            current = state.note_texts()[p.name]
        return ui.TagList(*[
            ui.input_text_area(
                _note_input_id(p.name, lab), f"Notes for {lab}", value=current.get(lab, ""),
                rows=3, width="100%", placeholder="Assessment, plan, reasons for the dose…",
                autoresize=True,
            )
            for lab in labs
        ])

    @reactive.extended_task
    async def saving(protocol: str, notes: list[tuple[str, str, int | None, str]],
                     username: str) -> int:
        saved = await in_database_thread(db.save_notes, protocol, notes, username=username)
        return sum(n is not None for n in saved)

    @reactive.effect
    @reactive.event(input.save_notes)
    def _save_notes() -> None:
        p = state.protocol()
        written = state.notes()
        notes = [(r.label, r.patient_id, r.site_id, written.get(r.label, "")[:MAX_NOTE_CHARS])
                 for r in case_records(state.shown(), p)]
        saving(p.name, notes, state.user.username)

    @reactive.effect
    def _saved() -> None:
        status = saving.status()
        if status == "success":
            n = saving.result()
            message.set(f"{n} note{'s' if n != 1 else ''} saved." if n else "No change to save.")
        elif status == "error":
            message.set(f"The notes could not be saved ({type(saving.error.get()).__name__}); "
                        "try again.")
        else:
            return
        with reactive.isolate():
            state.mark_db_changed()

    @render.ui
    async def notes_saved():
        state.db_changed()
        p = state.protocol()
        labs = case_labels(state.shown())
        found: dict[str, NoteInfo] = (await in_database_thread(db.latest_notes, p.name, labs)
                                      if labs else {})
        lines = [ui.tags.li(ui.tags.strong(lab), f": saved {when(n.created_at)} by "
                            f"{n.created_by} (version {n.version})")
                 for lab, n in found.items()]
        msg = message()
        return ui.TagList(
            ui.p(msg, class_="small text-success mt-2 mb-1", role="status") if msg else None,
            ui.tags.ul(*lines, class_="small text-muted mb-0 notes-meta") if lines else None,
        )
