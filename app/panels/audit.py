"""Audit trail: every recommendation shown is recorded; physicists review and export it.

:mod:`app.recommending` runs in every session (any role): each recommendation the app shows is
written once per session to the database with the user, time, case, input hash, every model
version behind it and its outputs, and the ids are handed to the report so it can cite them. The
"Audit trail" panel (physicists) lists recommendations and events (logins, notes, promotions,
training) newest first, filters them, and downloads the recommendations as CSV.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pandas as pd
from shiny import module, reactive, render, ui

from app import shared
from app.db import poll_in_thread
from app.runtime import in_database_thread
from engine.core.protocols import Protocol
from engine.platform.store import Store, UserInfo

__all__ = ["audit_server", "audit_ui"]

SHOWN_ROWS = 500
"""Most rows listed in the panel (the CSV holds every row)."""


def _when(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


@module.ui
def audit_ui() -> ui.TagList:
    protocols = {"": "All protocols"} | {n: n.upper() for n in shared.PROTOCOLS}
    return ui.TagList(
        ui.card(
            ui.card_header("Recommendations shown"),
            ui.layout_columns(
                ui.input_select("protocol", "Protocol", choices=protocols, selected=""),
                ui.input_text("user", "User name contains", value=""),
                ui.div(ui.download_button("csv", "Download CSV (all rows)",
                                          class_="btn-primary"), class_="pt-4"),
                col_widths=(3, 3, 6),
            ),
            ui.output_ui("summary"),
            ui.output_data_frame("recommendations"),
        ),
        ui.card(
            ui.card_header("Events"),
            ui.output_data_frame("events"),
        ),
    )


@module.server
def audit_server(input, output, session, *, protocol: Callable[[], Protocol], store: Store,
                 user: UserInfo) -> None:
    """The audit trail for physicists (the caller registers it only for them)."""

    marker = poll_in_thread(store.audit_marker, 5)  # new recommendations or events

    @reactive.calc
    async def rows():
        marker()
        found = await in_database_thread(store.recommendations,
                                        protocol=input.protocol() or None, limit=SHOWN_ROWS)
        needle = (input.user() or "").strip().lower()
        return [r for r in found if needle in r.username.lower()] if needle else found

    @render.ui
    async def summary():
        n = len(await rows())
        if n == 0:
            return ui.div("No recommendation recorded yet for this filter.",
                          class_="artds-empty")
        return ui.p(f"{n} recommendation{'s' if n != 1 else ''} (newest first"
                    f"{', first ' + str(SHOWN_ROWS) if n == SHOWN_ROWS else ''}).",
                    class_="small text-muted mb-1")

    @render.data_frame
    async def recommendations():
        found = await rows()
        if not found:
            return None
        table = pd.DataFrame([{
            "time (UTC)": _when(r.created_at), "user": r.username,
            "protocol": r.protocol, "case": r.case_label,
            "dose (Gy/fx)": f"{r.recommended_dose_gy:g}",
            "TCP": _pct(r.outputs.get("recommended_tcp")),
            "NTCP": _pct(r.outputs.get("recommended_ntcp")),
            "model version": r.model_version, "input hash": r.input_hash[:16] + "…",
        } for r in found])
        return render.DataGrid(table, width="100%", height="420px", summary=False)

    @render.data_frame
    async def events():
        marker()
        found = await in_database_thread(store.events, 200)
        if not found:
            return None
        table = pd.DataFrame([{
            "time (UTC)": _when(e["at"]), "user": e["username"], "action": e["action"],
            "detail": ", ".join(f"{k}={v}" for k, v in e["detail"].items()
                                if k not in ("patient_pk",)),
        } for e in found])
        return render.DataGrid(table, width="100%", height="300px", summary=False)

    @render.download(filename=lambda: f"artds-audit-{datetime.now(UTC):%Y%m%d-%H%M}.csv",
                     media_type="text/csv")
    async def csv():
        chosen = input.protocol() or None
        await in_database_thread(store.log_event, user.username, "audit_exported",
                                {"protocol": chosen or "all"})
        yield await in_database_thread(store.recommendations_csv, protocol=chosen)


def _pct(x: object) -> str:
    return "–" if x is None else f"{100 * float(x):.1f} %"
