"""Audit trail: every recommendation shown is recorded; physicists review and export it.

:func:`record_shown` runs in every session (any role): each recommendation the app shows is
written once per session to the database with the user, time, case, input hash, every model
version behind it and its outputs, and the ids are handed to the report so it can cite them. The
"Audit trail" panel (physicists) lists recommendations and events (logins, notes, promotions,
training) newest first, filters them, and downloads the recommendations as CSV.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime

import pandas as pd
from shiny import module, reactive, render, ui

from app import shared
from engine.protocols import Protocol
from engine.recommend import Recommendation
from engine.store import Store, UserInfo

__all__ = ["audit_server", "audit_ui", "model_versions_of", "record_shown"]

SHOWN_ROWS = 500
"""Most rows listed in the panel (the CSV holds every row)."""


def model_versions_of(rec: Recommendation) -> dict[str, str]:
    """Every version field of a recommendation (outcome model, and any decision maker)."""
    out = {"outcome_model": rec.model}
    out.update({k: str(v) for k, v in rec.to_dict().items() if k.endswith("version")})
    return out


def record_shown(store: Store, user: UserInfo, session_id: str,
                 recs: Callable[[], list[Recommendation]]) -> Callable[[], dict[str, int]]:
    """Write each recommendation the session shows to the audit trail (once per session and
    content); returns a reactive mapping case label → audit id of what is shown now."""
    ref = hashlib.sha256(session_id.encode()).hexdigest()[:16]  # never the live session id
    seen: dict[tuple, int] = {}
    ids: reactive.Value[dict[str, int]] = reactive.value({})

    @reactive.effect
    def _record() -> None:
        out: dict[str, int] = {}
        for rec in recs():
            versions = model_versions_of(rec)
            key = (rec.protocol, rec.label, rec.input_hash, tuple(sorted(versions.items())),
                   rec.recommended_dose_gy)
            if key not in seen:
                seen[key] = store.record_recommendation(
                    username=user.username, protocol=rec.protocol, case_label=rec.label,
                    input_hash=rec.input_hash, model_name=rec.model,
                    model_version=rec.model_version, model_versions=versions,
                    recommended_dose_gy=rec.recommended_dose_gy, outputs=rec.to_dict(),
                    session_ref=ref)
            out[rec.label] = seen[key]
        ids.set(out)

    return ids


def _when(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


@module.ui
def audit_ui() -> ui.TagList:
    protocols = {"": "All protocols"} | {n: n.upper() for n in shared.PROTOCOLS}
    return ui.TagList(
        ui.tags.details(
            ui.tags.summary("Help: the audit trail"),
            ui.p("Every recommendation any user was shown, with the time (UTC), the user, the "
                 "case, the hash of its inputs (the same hash the report prints), the outcome "
                 "model and every model version behind it, and the recommended dose. Rows are "
                 "never changed or deleted. Events list who logged in, saved notes, trained, "
                 "promoted or rolled back models, and managed users."),
            class_="artds-help",
        ),
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

    @reactive.poll(store.audit_marker, 5)
    def marker() -> tuple[int, int]:
        return store.audit_marker()

    @reactive.calc
    def rows():
        marker()
        found = store.recommendations(protocol=input.protocol() or None, limit=SHOWN_ROWS)
        needle = (input.user() or "").strip().lower()
        return [r for r in found if needle in r.username.lower()] if needle else found

    @render.ui
    def summary():
        n = len(rows())
        if n == 0:
            return ui.div("No recommendation recorded yet for this filter.",
                          class_="artds-empty")
        return ui.p(f"{n} recommendation{'s' if n != 1 else ''} (newest first"
                    f"{', first ' + str(SHOWN_ROWS) if n == SHOWN_ROWS else ''}).",
                    class_="small text-muted mb-1")

    @render.data_frame
    def recommendations():
        found = rows()
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
    def events():
        marker()
        found = store.events(limit=200)
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
    def csv():
        store.log_event(user.username, "audit_exported", {"protocol": input.protocol() or "all"})
        yield store.recommendations_csv(protocol=input.protocol() or None)


def _pct(x: object) -> str:
    return "–" if x is None else f"{100 * float(x):.1f} %"
