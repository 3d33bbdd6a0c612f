"""Data input: the physician notes of the shown cases ("Save notes" stores a new version)."""

from __future__ import annotations

import hashlib

from shiny import reactive, render, ui
from shiny.session import Inputs
from shiny.types import SilentException

from app.panels.data_input.messages import when
from app.panels.data_input.state import DataInputState
from engine.core.schema import MAX_NOTE_CHARS, case_labels
from engine.platform.inputs import case_records
from engine.platform.store import NoteInfo

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


def notes_server(input: Inputs, state: DataInputState) -> None:
    """One text area per shown case; what is typed goes into the session's notes at once
    (and so into the report), "Save notes" stores the changed ones in the database."""
    db = state.db
    message: reactive.Value[str | None] = reactive.value(None)
    """What the last "Save notes" did."""

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

    @reactive.effect
    @reactive.event(input.save_notes)
    def _save_notes() -> None:
        p = state.protocol()
        written = state.notes()
        saved = 0
        for r in case_records(state.shown(), p):
            text = written.get(r.label, "")[:MAX_NOTE_CHARS]
            if db.save_note(p.name, r.label, r.patient_id, r.site_id, text,
                            username=state.user.username) is not None:
                saved += 1
        message.set(f"{saved} note{'s' if saved != 1 else ''} saved." if saved
                    else "No change to save.")
        state.mark_db_changed()

    @render.ui
    def notes_saved():
        state.db_changed()
        p = state.protocol()
        labs = case_labels(state.shown())
        found: dict[str, NoteInfo] = db.latest_notes(p.name, labs) if labs else {}
        lines = [ui.tags.li(ui.tags.strong(lab), f": saved {when(n.created_at)} by "
                            f"{n.created_by} (version {n.version})")
                 for lab, n in found.items()]
        msg = message()
        return ui.TagList(
            ui.p(msg, class_="small text-success mt-2 mb-1", role="status") if msg else None,
            ui.tags.ul(*lines, class_="small text-muted mb-0 notes-meta") if lines else None,
        )
