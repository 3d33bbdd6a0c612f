"""The Data input panel put together: its page, its sidebar chooser and its module server."""

from __future__ import annotations

from collections.abc import Callable

from shiny import module, ui

from app import shared
from app.panels.data_input.cases import cases_card, cases_server, chooser
from app.panels.data_input.examples import examples_card, examples_server
from app.panels.data_input.form import form_card, form_server
from app.panels.data_input.notes import notes_card, notes_server
from app.panels.data_input.plan import plan_card, plan_server
from app.panels.data_input.proposal import proposal_card, proposal_server
from app.panels.data_input.saved import followup_card, followup_server, saved_card, saved_server
from app.panels.data_input.state import CaseSelection, new_state
from app.panels.data_input.upload import upload_card, upload_server
from engine.core.protocols import Protocol
from engine.platform.store import Store, UserInfo

__all__ = ["data_input_server", "data_input_sidebar_ui", "data_input_ui"]


@module.ui
def data_input_sidebar_ui() -> ui.TagList:
    """The case chooser, shown in the page sidebar so it is at hand on every panel."""
    return ui.TagList(chooser())


@module.ui
def data_input_ui() -> ui.TagList:
    """Example loader, CSV upload, manual form, the case table, saved patients, the physician's
    proposed dose, follow-ups, the plan import and the physician notes."""
    return ui.TagList(
        ui.layout_columns(
            ui.div(examples_card(next(iter(shared.PROTOCOLS))), upload_card()),
            cases_card(),
            col_widths=(5, 7),
        ),
        ui.layout_columns(saved_card(), proposal_card(), followup_card(),
                          col_widths=(4, 3, 5)),
        plan_card(),
        ui.layout_columns(form_card(), notes_card(), col_widths=(8, 4)),
    )


@module.server
def data_input_server(
    input, output, session, *, protocol: Callable[[], Protocol], db: Store, user: UserInfo
) -> CaseSelection:
    """Own the session's cases and notes (saved to ``db`` as ``user``); return the reactive
    views siblings need."""
    state = new_state(input, protocol=protocol, db=db, user=user)
    for part in (cases_server, examples_server, upload_server, form_server, saved_server,
                 proposal_server, followup_server, plan_server, notes_server):
        part(input, state)
    return CaseSelection(cases=state.cases, shown=state.shown, notes=state.notes,
                         plans=state.plans)
