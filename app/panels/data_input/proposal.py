"""Data input: the physician's own proposed adaptive dose for a shown case, saved as a new input
version; the recommendation is then compared with it (Outcome space panel, report)."""

from __future__ import annotations

import pandas as pd
from shiny import reactive, render, ui
from shiny.session import Inputs

from app.panels.data_input.messages import error_box, form_labels, result_line
from app.panels.data_input.state import DataInputState
from engine.core.schema import PROPOSAL_COLUMN, case_labels, column_specs
from engine.core.tabular import Problem, SchemaError
from engine.platform.inputs import with_proposal

__all__ = ["proposal_card", "proposal_server"]


def proposal_card() -> ui.Tag:
    return ui.card(
        ui.card_header("Your proposed dose"),
        ui.output_ui("proposal_form"),
        ui.div(ui.input_action_button("save_proposal", "Compare with the recommendation",
                                      class_="btn-primary btn-sm")),
        ui.output_ui("proposal_status"),
    )


def proposal_server(input: Inputs, state: DataInputState) -> None:
    """Set (or, left empty, remove) the proposed adaptive dose per fraction of a shown case; it
    is validated like the file column and saved as a new input version."""
    message: reactive.Value[tuple[bool, str] | list[Problem] | None] = reactive.value(None)
    """(done, what happened), or the problems of a refused proposal."""

    @render.ui
    def proposal_form():
        p = state.protocol()
        shown = state.shown()
        labs = case_labels(shown)
        if not labs:
            return ui.div("Choose a case in the sidebar to enter your proposal.",
                          class_="artds-empty")
        spec = next(c for c in column_specs(p) if c.name == PROPOSAL_COLUMN)
        # Read (not isolated): choosing another case redraws the field with that case's proposal.
        chosen = input.prop_case() if "prop_case" in input else None
        label = chosen if chosen in labs else labs[0]
        current = None
        if PROPOSAL_COLUMN in shown.columns:
            value = shown[PROPOSAL_COLUMN].iloc[labs.index(label)]
            current = None if pd.isna(value) else float(value)
        return ui.TagList(
            ui.input_select("prop_case", "Case", choices=labs, selected=label),
            ui.input_numeric("prop_dose", f"{form_labels(p)[PROPOSAL_COLUMN]} (Gy, accepted "
                             f"{spec.min:g} – {spec.max:g}; empty: none)", value=current,
                             min=spec.min, max=spec.max,
                             step=round(p.dose_grid_gy[1] - p.dose_grid_gy[0], 6)),
        )

    @reactive.effect
    @reactive.event(input.save_proposal)
    def _save_proposal() -> None:
        p = state.protocol()
        current, labs = state.shown(), case_labels(state.shown())
        label = input.prop_case() if "prop_case" in input else None
        if not label or label not in labs:
            message.set((False, "Choose a case first."))
            return
        row = current.iloc[[labs.index(label)]].reset_index(drop=True)
        dose = input.prop_dose()
        try:
            new = with_proposal(row, p, dose)
        except SchemaError as err:
            message.set(err.problems)
            return
        text = (f"Proposal for {label} saved as a new input version"
                + ("." if dose is not None else " (no proposal)."))
        state.add_cases(new, "proposal", done=lambda _added, _replaced: message.set((True, text)),
                        refused=message.set)

    @render.ui
    def proposal_status():
        msg = message()
        if msg is None:
            return None
        if isinstance(msg, list):
            return error_box("The proposal was not saved.", msg, show_rows=False,
                             note="Correct the dose above and save again.",
                             labels=form_labels(state.protocol()))
        return result_line(*msg)
