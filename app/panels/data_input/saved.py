"""Data input: the patients stored in the database (reload, version history) and follow-ups
(the adaptive dose given and the outcomes, saved as a new input version).

The stored cases are offered a page at a time (the :data:`SAVED_PAGE` most recently changed,
and a search by label), so a session never reads or sends the whole table; every read runs in a
database thread."""

from __future__ import annotations

import pandas as pd
from shiny import reactive, render, ui
from shiny.session import Inputs

from app.panels.data_input.messages import error_box, form_labels, result_line, summary, when
from app.panels.data_input.state import DataInputState
from app.runtime import in_database_thread
from engine.core.protocols import Protocol
from engine.core.schema import case_labels, column_specs
from engine.core.tabular import Problem, SchemaError
from engine.platform.inputs import cases_from_stored, with_follow_up
from engine.platform.store import PatientSummary, SavedInput, Store

__all__ = ["SAVED_PAGE", "followup_card", "followup_server", "saved_card", "saved_server"]


SAVED_PAGE = 100
"""Stored cases offered at once in "Saved patients" (the newest; a search finds the others)."""


def saved_card() -> ui.Tag:
    return ui.card(
        ui.card_header("Saved patients"),
        ui.input_text("saved_search", "Find stored cases (part of the case label)",
                      placeholder="e.g. P-012", width="100%", update_on="blur"),
        ui.input_selectize("saved", "Stored cases of this protocol", choices=[],
                           multiple=True, width="100%",
                           options={"placeholder": "No stored case yet",
                                    "plugins": ["remove_button"]}),
        ui.div(ui.input_action_button("load_saved", "Load selected",
                                      class_="btn-primary btn-sm")),
        ui.output_ui("saved_status"),
    )


def followup_card() -> ui.Tag:
    return ui.card(
        ui.card_header("Follow-up: dose given and outcomes"),
        ui.output_ui("followup_form"),
        ui.div(ui.input_action_button("save_followup", "Save follow-up",
                                      class_="btn-primary btn-sm")),
        ui.output_ui("followup_status"),
    )


def _version_details(history: list[SavedInput]) -> ui.Tag:
    """Every stored version of a case, with the values that changed from the one before."""
    rows = []
    previous: dict = {}
    for v in history:
        # Over both versions' keys: an optional value (the proposal) may be left out of one.
        keys = [*v.values, *(k for k in previous if k not in v.values)]
        changed = [k for k in keys if previous and previous.get(k) != v.values.get(k)]
        rows.append(ui.tags.li(
            f"v{v.version}: {when(v.created_at)}, {v.created_by} ({v.source})",
            f" — changed: {', '.join(changed)}" if changed else ""))
        previous = v.values
    return ui.tags.details(ui.tags.summary("history"), ui.tags.ul(*rows))


def _saved_page(db: Store, protocol: str, search: str) -> tuple[int, int, list[PatientSummary]]:
    """(stored cases of the protocol, of them matching ``search``, the newest page of those)."""
    total = db.count_patients(protocol)
    matching = db.count_patients(protocol, search=search) if search else total
    return total, matching, db.patients(protocol, search=search, limit=SAVED_PAGE)


def _saved_label(total: int, matching: int, search: str, shown: int) -> str:
    """The list's label: how many are stored, and which of them are offered."""
    label = f"Stored cases of this protocol ({total:,})"
    if search:
        label += f": {matching:,} matching “{search}”"
    if shown < matching:
        label += f", the {shown} most recently changed offered; search to find others"
    return label


def _load_stored(db: Store, protocol: Protocol, labels: list[str]) -> pd.DataFrame | list[Problem]:
    """The newest stored version of each labelled case, validated again (in a worker thread)."""
    found = db.latest_inputs(protocol.name, labels)
    try:
        return cases_from_stored(protocol, [found[lab].values for lab in labels if lab in found])
    except SchemaError as err:
        return [Problem(None, None, None, f"The stored inputs no longer validate: {err}")]


def _stored_versions(db: Store, protocol: str, labels: list[str]
                     ) -> tuple[dict[str, SavedInput], dict[str, list[SavedInput]]]:
    """The newest stored version of each labelled case and, for those, every version."""
    latest = db.latest_inputs(protocol, labels)
    return latest, {lab: db.input_history(protocol, lab) for lab in latest}


def saved_server(input: Inputs, state: DataInputState) -> None:
    """Offer the protocol's stored cases (a page of the newest, and a search), load the chosen
    ones, and list the stored versions of the shown cases (the ``versions`` output of the case
    list). Every database read runs in a database thread, never on the event loop."""
    db = state.db
    message: reactive.Value[tuple[bool, str] | None] = reactive.value(None)
    """(done, what happened) of the last "Load selected"."""

    @reactive.extended_task
    async def listing(protocol: str, search: str, _changes: int
                      ) -> tuple[str, str, int, int, list[PatientSummary]]:
        total, matching, page = await in_database_thread(_saved_page, db, protocol, search)
        return protocol, search, total, matching, page

    @reactive.effect
    def _ask_listing() -> None:
        listing(state.protocol().name, (input.saved_search() or "").strip(), state.db_changed())

    @reactive.effect
    def _saved_choices() -> None:
        if listing.status() != "success":
            return
        name, search, total, matching, page = listing.result()
        choices = {}
        for ps in page:
            extra = " · outcomes known" if ps.has_outcomes else ""
            choices[ps.label] = (f"{ps.label} (v{ps.n_versions}, {when(ps.latest_at)}, "
                                 f"{ps.latest_by}{extra})")
        with reactive.isolate():
            if name != state.protocol().name:
                return  # a newer listing for the current protocol is on its way
            keep = [lab for lab in (input.saved() or ()) if lab in choices]
        placeholder = ("Choose stored cases…" if page else
                       "No stored case matches" if search else "No stored case yet")
        ui.update_selectize(
            "saved", label=_saved_label(total, matching, search, len(page)), choices=choices,
            selected=keep, options={"placeholder": placeholder, "plugins": ["remove_button"]})

    @reactive.effect
    @reactive.event(input.load_saved)
    def _load_saved() -> None:
        p = state.protocol()
        labels = list(input.saved() or ())
        if not labels:
            message.set((False, "Choose stored cases to load first."))
            return
        message.set(None)
        state.add_cases(lambda: _load_stored(db, p, labels), "saved",
                        done=lambda added, replaced: message.set(
                            (True, summary(added, replaced, "the database"))),
                        refused=lambda problems: message.set(
                            (False, "; ".join(pr.message for pr in problems))))

    @render.ui
    def saved_status():
        msg = message()
        return None if msg is None else result_line(*msg)

    @render.ui
    async def versions():
        state.db_changed()
        p = state.protocol()
        labs = case_labels(state.shown())
        if not labs:
            return None
        latest, histories = await in_database_thread(_stored_versions, db, p.name, labs)
        items = []
        for lab in labs:
            v = latest.get(lab)
            if v is None:
                items.append(ui.tags.li(ui.tags.strong(lab), ": not saved (example shown at "
                                        "start; it is saved once you load or change it)"))
                continue
            history = histories[lab]
            items.append(ui.tags.li(
                ui.tags.strong(lab),
                f": version {v.version} of {len(history)}, saved {when(v.created_at)} by "
                f"{v.created_by} ({v.source}) · input hash ",
                ui.tags.code(v.input_hash[:12]),
                _version_details(history) if len(history) > 1 else None,
            ))
        return ui.div(ui.tags.strong("Stored versions of the shown cases", class_="small"),
                      ui.tags.ul(*items, class_="small mb-0 versions-list"), class_="mt-2")


def followup_server(input: Inputs, state: DataInputState) -> None:
    """Record, for a shown case, the adaptive dose given and the outcomes (each may stay
    unknown) as a new input version (what Learning Mode trains on)."""
    message: reactive.Value[tuple[bool, str] | list[Problem] | None] = reactive.value(None)
    """(done, what happened), or the problems of a refused follow-up."""

    @render.ui
    def followup_form():
        p = state.protocol()
        labs = case_labels(state.shown())
        if not labs:
            return ui.div("Choose a case in the sidebar to record its follow-up.",
                          class_="artds-empty")
        spec = next(c for c in column_specs(p) if c.name == "dose_adapt_gy")
        yes_no = {"": "unknown", "1": "1 (yes)", "0": "0 (no)"}
        return ui.layout_column_wrap(
            ui.input_select("fu_case", "Case", choices=labs),
            ui.input_numeric("fu_dose", f"Adaptive dose per fraction given (Gy, accepted "
                             f"{spec.min:g} – {spec.max:g})", value=None, min=spec.min,
                             max=spec.max, step=0.1),
            ui.input_select("fu_target", p.target.outcome_label, choices=yes_no),
            ui.input_select("fu_oar", p.oar.outcome_label, choices=yes_no),
            width="200px", fill=False,
        )

    @reactive.effect
    @reactive.event(input.save_followup)
    def _save_followup() -> None:
        p = state.protocol()
        current, labs = state.shown(), case_labels(state.shown())
        label = input.fu_case() if "fu_case" in input else None
        if not label or label not in labs:
            message.set((False, "Choose a case first."))
            return
        row = current.iloc[[labs.index(label)]].reset_index(drop=True)
        try:
            new = with_follow_up(row, p, dose_adapt_gy=input.fu_dose(),
                                 target_outcome=input.fu_target() or None,
                                 oar_outcome=input.fu_oar() or None)
        except SchemaError as err:
            message.set(err.problems)
            return
        state.add_cases(new, "follow-up", done=lambda _added, _replaced: message.set(
            (True, f"Follow-up of {label} saved as a new input version.")),
            refused=message.set)

    @render.ui
    def followup_status():
        msg = message()
        if msg is None:
            return None
        if isinstance(msg, list):
            return error_box("The follow-up was not saved.", msg, show_rows=False,
                             note="Correct the fields above and save again.",
                             labels=form_labels(state.protocol()))
        return result_line(*msg)
