"""Report panel: what the report will hold, and the download of the self-contained HTML file."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pandas as pd
from shiny import module, render, ui

from app import shared
from engine.arclids.recommend import Recommendation
from engine.core.protocols import Protocol
from engine.dvh import PlanImport
from engine.platform.report import DISCLAIMER, render_report, report_filename
from engine.platform.store import UserInfo

__all__ = ["report_server", "report_ui"]


@module.ui
def report_ui() -> ui.TagList:
    return ui.layout_columns(
        ui.card(
            ui.card_header("Report"),
            ui.p(
                "One HTML file with the summary per case (TCP and NTCP with their stated "
                "intervals, the predicted reward, the best dose's interval, any caution, and "
                "the comparison with your proposal), the interactive figures (outcome space "
                "with the interval ellipses, dose response with the interval band, "
                "population), for a case given an imported plan's features the plan's DVHs and "
                "constraint checks, the inputs, your notes, the outcome model with its version "
                "and ensemble size, your user name and the time, and per case its input hash "
                "and the audit-trail id of its recommendation. It opens offline in any browser "
                "and prints on A4."
            ),
            ui.output_ui("contents"),
            ui.div(ui.download_button("download", "Download report (HTML)", class_="btn-primary")),
            ui.p(DISCLAIMER, class_="small text-muted mt-3"),
        ),
        col_widths=(8,),
    )


@module.server
def report_server(
    input, output, session, *,
    protocol: Callable[[], Protocol],
    recs: Callable[[], list[Recommendation]],
    cases: Callable[[], pd.DataFrame],
    notes: Callable[[], dict[str, str]],
    plans: Callable[[], dict[str, PlanImport]],
    user: UserInfo,
    settled: Callable[[], Awaitable[tuple[list[Recommendation], dict[str, int]]]],
) -> None:
    """Offer the report of the shown cases for download (with the user, the audit ids and the
    imported plans whose features the cases hold, ``plans()`` keyed by case label).

    ``settled()`` gives the current recommendations and their audit ids once computed (see
    :mod:`app.recommending`); the report is rendered in a worker thread so that building its
    figures does not hold up other sessions.
    """

    @render.ui
    def contents():
        current = recs()
        if not current:
            return ui.div(
                "No case is shown yet: the report would be empty. Load an example patient or "
                "upload a file, then choose the cases in the sidebar.",
                class_="artds-empty",
            )
        written = notes()
        n_notes = sum(bool(written.get(r.label, "").strip()) for r in current)
        imported = plans()
        with_plan = [r.label for r in current if r.label in imported]
        return ui.tags.ul(
            ui.tags.li(f"Protocol: {protocol().label}"),
            ui.tags.li("Cases: " + ", ".join(r.label for r in current)),
            ui.tags.li(f"Physician notes: {n_notes} of {len(current)} cases"),
            ui.tags.li("Imported plans (DVHs and constraint checks): "
                       + (", ".join(with_plan) if with_plan else "none"), class_="report-plans"),
            ui.tags.li(f"Model: {current[0].model} (version {current[0].model_version}"
                       + (f", ensemble of {current[0].n_members} members)"
                          if current[0].n_members > 1 else ")")),
        )

    @render.download(filename=lambda: report_filename(protocol()), media_type="text/html")
    async def download():
        p, shown, written, imported = protocol(), cases(), notes(), plans()
        current, ids = await settled()
        yield await asyncio.to_thread(
            render_report, current, shown, p, population=shared.POPULATIONS[p.name],
            notes=written, user=user.username, audit_ids=ids, plans=imported,
            odm_summary=shared.ODM_REVIEWS[p.name].odm_summary,
            probability_quality=shared.probability_quality_of(p.name, current[0].model_version)
            if current else None)
