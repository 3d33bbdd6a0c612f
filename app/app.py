"""artds Shiny app: adaptive radiotherapy decision support (five panels).

Run with ``uvicorn app.app:app`` (or ``shiny run app/app.py``). The app serves the learned
outcome-estimator ensembles of models/ (GLoGD-GNN by default) or the virtual trial's reference
model, chosen in the sidebar and named with its version on every panel; all maths is in
``engine``.
"""

from __future__ import annotations

from shiny import App, reactive, ui

from app import shared
from app.panels.data_input import data_input_server, data_input_sidebar_ui, data_input_ui
from app.panels.model_choice import model_choice_server, model_choice_sidebar_ui
from app.panels.model_review import model_review_server, model_review_ui
from app.panels.outcome_space import outcome_space_server, outcome_space_ui
from app.panels.population import population_server, population_ui
from app.panels.report import report_server, report_ui
from engine.recommend import Recommendation, recommend

__all__ = ["app", "create_app"]

TITLE = "artds — adaptive RT decision support"


def _head() -> ui.TagList:
    return ui.head_content(
        ui.tags.link(rel="icon", type="image/svg+xml", href="www/favicon.svg"),
        ui.tags.link(rel="stylesheet", href="www/app.css"),
        ui.tags.script(src="vendor/plotly.min.js"),
        ui.tags.script(src="www/plots.js"),
    )


def app_ui(request=None) -> ui.Tag:
    first = next(iter(shared.PROTOCOLS))
    sidebar = ui.sidebar(
        ui.input_select("protocol", "Protocol", choices=shared.PROTOCOL_CHOICES,
                        selected=first, width="100%"),
        data_input_sidebar_ui("data"),
        model_choice_sidebar_ui("model"),
        width=305,
        id="sidebar",
    )
    return ui.page_navbar(
        ui.nav_panel("Data input", data_input_ui("data"), value="data"),
        ui.nav_panel("Outcome space", outcome_space_ui("outcome"), value="outcome"),
        ui.nav_panel("Population", population_ui("population"), value="population"),
        ui.nav_panel("Report", report_ui("report"), value="report"),
        ui.nav_panel("Model review", model_review_ui("review"), value="review"),
        title=TITLE,
        id="nav",
        sidebar=sidebar,
        header=_head(),
        fillable=False,
        window_title=TITLE,
        lang="en",
    )


def server(input, output, session) -> None:
    @reactive.calc
    def protocol():
        return shared.PROTOCOLS[input.protocol()]

    model = model_choice_server("model", protocol=protocol)
    selection = data_input_server("data", protocol=protocol)

    @reactive.calc
    def recs() -> list[Recommendation]:
        shown = selection.shown()
        if shown.empty:
            return []
        odm, note = shared.decision_maker(protocol().name, model())
        return recommend(shown, protocol(), model(), odm, odm_note=note)

    outcome_space_server("outcome", protocol=protocol, model=model, recs=recs)
    population_server("population", protocol=protocol, cases=selection.shown)
    report_server("report", protocol=protocol, recs=recs, cases=selection.shown,
                  notes=selection.notes)
    model_review_server("review", protocol=protocol, cases=selection.shown)


def create_app() -> App:
    """The app, with its static files: app/www and plotly.js from the plotly package."""
    return App(
        app_ui,
        server,
        static_assets={"/www": shared.WWW_DIR, "/vendor/plotly.min.js": shared.PLOTLY_JS},
    )


app = create_app()
