"""Data input: the session's case list (sidebar chooser, table, remove all, save inputs)."""

from __future__ import annotations

import asyncio

import pandas as pd
from shiny import reactive, render, ui
from shiny.session import Inputs

from app.panels.data_input.state import MAX_SELECTABLE, DataInputState, offer_cases
from app.runtime import in_database_thread
from engine.core.schema import PROPOSAL_COLUMN, case_labels
from engine.platform.inputs import inputs_csv as inputs_csv_text
from engine.platform.report import render_inputs

__all__ = ["EMPTY_STATE", "MAX_LISTED", "cases_card", "cases_server", "chooser"]

EMPTY_STATE = "Load an example patient or upload a file."
MAX_LISTED = 1000
"""Most cases the "Current cases" table lists (all of them stay in the sidebar chooser and the
downloads): the table is sent whole to the browser, and 30,000 rows took 0.24 s of the event
loop to serialise."""


def chooser() -> ui.Tag:
    """The case chooser, shown in the page sidebar so it is at hand on every panel."""
    return ui.input_selectize(
        "show",
        "Cases shown side by side",
        choices=[],
        multiple=True,
        options={
            "placeholder": "No cases loaded yet",
            "plugins": ["remove_button"],
            "maxItems": MAX_SELECTABLE,
        },
        width="100%",
    )


def cases_card() -> ui.Tag:
    """The current cases: count, table, actions, and the stored versions of the shown ones."""
    return ui.card(
        ui.card_header("Current cases"),
        ui.output_ui("cases_status"),
        ui.output_data_frame("cases_table"),
        ui.div(
            ui.input_action_button("clear", "Remove all cases",
                                   class_="btn-outline-danger btn-sm"),
            ui.download_button("inputs_csv", "Save inputs (CSV)",
                               class_="btn-outline-primary btn-sm"),
            ui.download_button("inputs_print", "Printable inputs (HTML)",
                               class_="btn-outline-primary btn-sm"),
            class_="mt-2 d-flex flex-wrap gap-2",
        ),
        ui.output_ui("versions"),
    )


def cases_server(input: Inputs, state: DataInputState) -> None:
    """Keep the sidebar chooser on the current protocol's cases (each protocol remembers its
    choice), list the cases, remove them all, and offer the inputs as CSV or a printable page."""

    @reactive.effect
    @reactive.event(state.protocol)
    def _on_protocol() -> None:
        name = state.protocol().name
        current = case_labels(state.case_tables()[name])
        offer_cases("show", current, [lab for lab in state.remembered[name] if lab in current])
        state.status.set({})

    @reactive.effect
    @reactive.event(input.show, ignore_none=False)
    def _remember_selection() -> None:
        with reactive.isolate():
            name = state.protocol().name
            valid = set(state.labels())
        state.remembered[name] = [lab for lab in (input.show() or ()) if lab in valid]

    @reactive.effect
    @reactive.event(input.clear)
    def _clear() -> None:
        name = state.protocol().name
        state.case_tables.set({**state.case_tables(), name: pd.DataFrame()})
        state.note_texts.set({**state.note_texts(), name: {}})
        state.update_chooser([])
        state.set_status("example", "")
        state.set_status("upload", "")

    @render.ui
    def cases_status():
        n = len(state.cases())
        if n == 0:
            return ui.div(EMPTY_STATE, class_="artds-empty")
        shown_n = len(state.shown())
        listed = (f" The table lists the first {MAX_LISTED:,}; all are in the sidebar and the "
                  "downloads." if n > MAX_LISTED else "")
        return ui.p(f"{n} case{'s' if n != 1 else ''} loaded, {shown_n} shown "
                    f"(choose them in the sidebar).{listed}", class_="small text-muted mb-1")

    @render.data_frame
    def cases_table():
        df = state.cases()
        if df.empty:
            return None
        df = df.iloc[:MAX_LISTED]
        p = state.protocol()
        table = pd.DataFrame({"case": case_labels(df)})
        table["dose_eval_gy"] = df["dose_eval_gy"].to_numpy()
        if PROPOSAL_COLUMN in df.columns and df[PROPOSAL_COLUMN].notna().any():
            table[PROPOSAL_COLUMN] = df[PROPOSAL_COLUMN].to_numpy()
        for name in p.feature_names:
            table[name] = df[name].round(4).to_numpy()
        # As tall as the rows need (a header and ~33 px per row), at most 300 px, then scroll.
        return render.DataGrid(
            table, width="100%", height=f"{min(300, 48 + 33 * len(table))}px", summary=False,
            styles=[{"cols": [0], "style": {"white-space": "nowrap", "font-weight": "600"}}],
        )

    @render.download(filename=lambda: f"artds-inputs-{state.protocol().name}.csv",
                     media_type="text/csv")
    async def inputs_csv():
        cases, p, notes = state.cases(), state.protocol(), state.notes()
        yield await asyncio.to_thread(inputs_csv_text, cases, p, notes)  # 10,000 rows: seconds

    @render.download(filename=lambda: f"artds-inputs-{state.protocol().name}.html",
                     media_type="text/html")
    async def inputs_print():
        cases, p, notes, labels = state.cases(), state.protocol(), state.notes(), state.labels()
        user = state.user.username

        def printable() -> str:  # in a database thread: a read, then the page
            saved = state.db.latest_inputs(p.name, labels)
            return render_inputs(cases, p, notes=notes, user=user,
                                 versions={lab: v.version for lab, v in saved.items()})

        yield await in_database_thread(printable)
