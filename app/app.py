"""artds Shiny app: adaptive radiotherapy decision support.

Run with ``uvicorn app.app:app`` (or ``artds serve``). Everything is behind the login gate of
:mod:`app.auth`; the page is built for the user's role and the server registers only the panels
that role may use (so a clinician's session cannot reach a physicist's outputs even by sending
inputs by hand):

* every role: Data input, Outcome space, Population, Systemic therapy, Report, Help;
* physicist (and admin): also Model review, Learning Mode, Audit trail, Fractionation planner,
  SF2 (other physicist panels: add them to ``_physicist_panels`` and their server call under
  ``if physicist``);
* admin: also Users.

The app serves the outcome model promoted to Operation Mode (the shipped GLoGD-GNN ensemble until
a Learning Mode version is promoted) or another model chosen in the sidebar, named with its
version on every panel; every recommendation shown is written to the audit trail. All maths is in
``engine``.
"""

from __future__ import annotations

import logging
from functools import partial

from shiny import App, reactive, ui

from app import shared
from app.auth import (
    LoginGate,
    logout_form,
    request_user,
    session_token,
    session_user,
    watch_session,
)
from app.db import get_store
from app.panels.audit import audit_server, audit_ui
from app.panels.data_input import data_input_server, data_input_sidebar_ui, data_input_ui
from app.panels.drug import drug_server, drug_ui
from app.panels.help import help_ui, panel_help
from app.panels.learning import learning_server, learning_ui
from app.panels.model_choice import model_choice_server, model_choice_sidebar_ui
from app.panels.model_review import model_review_server, model_review_ui
from app.panels.outcome_space import outcome_space_server, outcome_space_ui
from app.panels.planner import planner_server, planner_ui
from app.panels.population import population_server, population_ui
from app.panels.report import report_server, report_ui
from app.panels.sf2 import sf2_server, sf2_ui
from app.panels.users import users_server, users_ui
from app.recommending import (
    RECOMMENDATIONS,
    WorkerCannotServe,
    recommend_in_worker,
    shown_recommendations,
    warm_up_worker,
)
from app.runtime import (
    cheap_shiny_introspection,
    cpu_pool_ready,
    freeze_startup_heap,
    in_cpu_pool_blocking,
    learning_runner,
    on_startup,
    prompt_event_loop,
    shutdown,
    single_inference_thread,
    warm_up_cpu_pool,
)
from app.serving import model_ref, register_shipped_models
from engine.arclids.recommend import Recommendation, recommend
from engine.platform import registry
from engine.platform.accounts import role_allows

__all__ = ["app", "create_app"]

TITLE = "artds — adaptive RT decision support"


def _head() -> ui.TagList:
    return ui.head_content(
        ui.tags.link(rel="icon", type="image/svg+xml", href="www/favicon.svg"),
        ui.tags.link(rel="stylesheet", href="www/app.css"),
        ui.tags.script(src="vendor/plotly.min.js"),
        ui.tags.script(src="www/plots.js"),
        ui.tags.script(src="www/session.js"),
    )


def _physicist_panels() -> list:
    return [
        ui.nav_panel("Model review", panel_help("review"), model_review_ui("review"),
                     value="review"),
        ui.nav_panel("Learning Mode", panel_help("learning"), learning_ui("learning"),
                     value="learning"),
        ui.nav_panel("Audit trail", panel_help("audit"), audit_ui("audit"), value="audit"),
        ui.nav_panel("Fractionation planner", panel_help("planner"), planner_ui("planner"),
                     value="planner"),
        ui.nav_panel("SF2", panel_help("sf2"), sf2_ui("sf2"), value="sf2"),
    ]


def _user_menu(request) -> ui.Tag:
    user = request_user(request)
    if user is None:
        return ui.span()
    return ui.div(
        ui.span(ui.tags.strong(user.username), f" · {user.role}", class_="artds-user"),
        ui.HTML(logout_form(request)),
        class_="artds-user-menu",
    )


def app_ui(request=None) -> ui.Tag:
    user = request_user(request)
    role = user.role if user else None
    first = next(iter(shared.PROTOCOLS))
    sidebar = ui.sidebar(
        ui.input_select("protocol", "Protocol", choices=shared.PROTOCOL_CHOICES,
                        selected=first, width="100%"),
        data_input_sidebar_ui("data"),
        model_choice_sidebar_ui("model"),
        width=305,
        id="sidebar",
    )
    panels = [
        ui.nav_panel("Data input", panel_help("data"), data_input_ui("data"), value="data"),
        ui.nav_panel("Outcome space", panel_help("outcome"), outcome_space_ui("outcome"),
                     value="outcome"),
        ui.nav_panel("Population", panel_help("population"), population_ui("population"),
                     value="population"),
        ui.nav_panel("Systemic therapy", panel_help("drug"), drug_ui("drug"), value="drug"),
        ui.nav_panel("Report", panel_help("report"), report_ui("report"), value="report"),
    ]
    if role_allows(role, "physicist"):
        panels += _physicist_panels()
    if role_allows(role, "admin"):
        panels.append(ui.nav_panel("Users", panel_help("users"), users_ui("users"),
                                   value="users"))
    panels.append(ui.nav_panel("Help", help_ui(), value="help"))
    return ui.page_navbar(
        *panels,
        ui.nav_spacer(),
        ui.nav_control(_user_menu(request)),
        # The long half of the title gives way to the tabs in windows narrower than 1600 px.
        title=ui.span("artds", ui.span(" — adaptive RT decision support", class_="brand-long")),
        id="nav",
        sidebar=sidebar,
        header=_head(),
        fillable=False,
        window_title=TITLE,
        lang="en",
    )


def _recommend(cases, protocol, model) -> list[Recommendation]:
    """Recommendations with the decision maker trained for ``model`` (its exact reward argmax,
    with the reason, when none is available); called in a recommendation thread, computed in
    a worker process (app.runtime.cpu_pool) that loads the same model, or here for a model it
    cannot load and while the workers are still warming up."""
    ref = model_ref(protocol.name, model)
    if ref is not None and cpu_pool_ready():  # else the workers are still loading models
        try:
            return in_cpu_pool_blocking(partial(recommend_in_worker, ref, cases, protocol))
        except WorkerCannotServe:
            pass
    odm, note = shared.decision_maker(protocol.name, model)
    return recommend(cases, protocol, model, odm, odm_note=note)


def _warm_up_workers() -> None:
    """Start the worker processes now, loading the models served by default and building each
    figure kind once (seconds), in the background: not on the first sessions' time."""
    refs = tuple(ref for name in shared.PROTOCOLS if (ref := model_ref(
        name, shared.MODEL_CHOICES[name][shared.DEFAULT_MODEL[name]].model)) is not None)
    warm_up_cpu_pool(warm_up_worker, refs)


def server(input, output, session) -> None:
    user = session_user(session)
    if user is None:  # only reachable without the gate (a misconfigured deployment)
        raise RuntimeError("artds sessions need a logged-in user (serve app.app:app)")
    store = get_store()
    watch_session(session, store)
    physicist = role_allows(user.role, "physicist")

    @reactive.calc
    def protocol():
        return shared.PROTOCOLS[input.protocol()]

    model = model_choice_server("model", protocol=protocol, store=store)
    selection = data_input_server("data", protocol=protocol, db=store, user=user)

    # Computed in a worker thread and audited there: never inside a flush (see the module).
    # Shared by the process's sessions per input and model version (app.recommending).
    shown = shown_recommendations(session, store=store, user=user, protocol=protocol,
                                  model=model, shown=selection.shown,
                                  compute=_recommend, cache=RECOMMENDATIONS)
    recs = shown.recs
    outcome_space_server("outcome", protocol=protocol, model=model, recs=recs)
    population_server("population", protocol=protocol, cases=selection.shown)
    drug_server("drug")
    report_server("report", protocol=protocol, recs=recs, cases=selection.shown,
                  notes=selection.notes, plans=selection.plans, user=user,
                  settled=shown.settled)
    if physicist:
        model_review_server("review", protocol=protocol, cases=selection.shown)
        learning_server("learning", protocol=protocol, store=store, user=user)
        audit_server("audit", protocol=protocol, store=store, user=user)
        # The α (Gy⁻¹) chosen on the SF2 panel goes to the planner (None until chosen).
        planner_server("planner", alpha_per_gy=sf2_server("sf2"))
    if role_allows(user.role, "admin"):
        users_server("users", store=store, user=user,
                     login_token=session_token(session.http_conn))


def create_app() -> LoginGate:
    """The app behind its login gate, with its static files (app/www, plotly.js from the plotly
    package); opens and migrates the database and registers the shipped models. When the server
    starts it, the Learning Mode job runner starts too (it gives up on the jobs a killed or
    crashed earlier run left behind, then runs the queued ones)."""
    single_inference_thread()
    if (warning := registry.unsigned_warning()) is not None:
        logging.getLogger("artds").warning(warning)
    cheap_shiny_introspection()  # most of every session's start, otherwise
    prompt_event_loop()
    store = get_store()
    register_shipped_models(store)
    _warm_up_workers()
    shiny_app = App(
        app_ui,
        server,
        static_assets={"/www": shared.WWW_DIR, "/vendor/plotly.min.js": shared.PLOTLY_JS},
    )
    shiny_app.on_shutdown(shutdown)  # every worker pool and the job runner (app.runtime)
    gate = LoginGate(on_startup(shiny_app, learning_runner), store)
    freeze_startup_heap()
    return gate


app = create_app()
