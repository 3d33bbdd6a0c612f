"""Data input: the patients stored in the database (reload, version history) and follow-ups
(the adaptive dose given and the outcomes, saved as a new input version)."""

from __future__ import annotations

from shiny import reactive, render, ui
from shiny.session import Inputs

from app.panels.data_input.messages import error_box, form_labels, result_line, summary, when
from app.panels.data_input.state import DataInputState
from engine.core.schema import case_labels, column_specs
from engine.core.tabular import Problem, SchemaError
from engine.platform.inputs import cases_from_stored, with_follow_up
from engine.platform.store import SavedInput

__all__ = ["followup_card", "followup_server", "saved_card", "saved_server"]


def saved_card() -> ui.Tag:
    return ui.card(
        ui.card_header("Saved patients"),
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


def saved_server(input: Inputs, state: DataInputState) -> None:
    """Offer the protocol's stored cases, load the chosen ones, and list the stored versions
    of the shown cases (the ``versions`` output of the case list)."""
    db = state.db
    message: reactive.Value[tuple[bool, str] | None] = reactive.value(None)
    """(done, what happened) of the last "Load selected"."""

    @reactive.effect
    def _saved_choices() -> None:
        state.db_changed()
        name = state.protocol().name
        choices = {}
        for ps in db.patients(name):
            extra = " · outcomes known" if ps.has_outcomes else ""
            choices[ps.label] = (f"{ps.label} (v{ps.n_versions}, {when(ps.latest_at)}, "
                                 f"{ps.latest_by}{extra})")
        with reactive.isolate():
            keep = [lab for lab in (input.saved() or ()) if lab in choices]
        n = len(choices)
        ui.update_selectize(
            "saved", label=f"Stored cases of this protocol ({n})", choices=choices,
            selected=keep,
            options={"placeholder": "Choose stored cases…" if n else "No stored case yet",
                     "plugins": ["remove_button"]})

    @reactive.effect
    @reactive.event(input.load_saved)
    def _load_saved() -> None:
        p = state.protocol()
        labels = list(input.saved() or ())
        if not labels:
            message.set((False, "Choose stored cases to load first."))
            return
        found = db.latest_inputs(p.name, labels)
        try:
            new = cases_from_stored(p, [found[lab].values for lab in labels if lab in found])
        except SchemaError as err:
            message.set((False, f"The stored inputs no longer validate: {err}"))
            return
        added, replaced = state.add_cases(new, "saved")
        message.set((True, summary(added, replaced, "the database")))

    @render.ui
    def saved_status():
        msg = message()
        return None if msg is None else result_line(*msg)

    @render.ui
    def versions():
        state.db_changed()
        p = state.protocol()
        labs = case_labels(state.shown())
        if not labs:
            return None
        latest = db.latest_inputs(p.name, labs)
        items = []
        for lab in labs:
            v = latest.get(lab)
            if v is None:
                items.append(ui.tags.li(ui.tags.strong(lab), ": not saved (example shown at "
                                        "start; it is saved once you load or change it)"))
                continue
            history = db.input_history(p.name, lab)
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
        state.add_cases(new, "follow-up")
        message.set((True, f"Follow-up of {label} saved as a new input version."))

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
