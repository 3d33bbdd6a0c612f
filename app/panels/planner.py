"""Fractionation planner panel (for physicists): RL adaptive fractionation under uncertain biology.

The physicist sets the biology ranges, the planner preferences, optionally the patient's α and a
training budget, and runs the planner as a background task (``reactive.extended_task`` on the
planner's process pool, :func:`app.runtime.planner_pool`, so other sessions stay responsive).
Progress comes back through a small file the session polls, and "Cancel run" leaves a flag the
run checks after every training episode and between evaluation stages
(:class:`engine.platform.jobs.FileJob`); a cancelled run shows "cancelled". Results: ART
against the equal-dose reference and the exact oracle, with the weekly plan, tumour-volume box
plots, BED and SF histograms and the phantom's dose maps. All maths is in :mod:`engine.planner`.

Handing over α: :func:`planner_server` takes an optional reactive ``alpha_per_gy`` (a callable
returning a float in Gy⁻¹ or None). When it returns a number — e.g. from a future SF2 panel,
α = −(ln SF2 + 4β)/2 — the panel fills in the patient's α with it and switches "Use the patient's
α" on; the physicist can still edit or untick it.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from shiny import module, reactive, render, ui

from app.panels.widgets import figure_card
from app.plots import render_figure
from app.runtime import planner_pool
from engine.planner import (
    BiologyRanges,
    CourseConfig,
    DQNConfig,
    PlanConfig,
    PlanResult,
    preference_weights,
)
from engine.planner.figures import (
    bed_sf_figure,
    phantom_dose_figure,
    volume_box_figure,
    weekly_dose_figure,
)
from engine.planner.jobs import CANCELLED_MESSAGE, run_plan_job
from engine.planner.model import OarBiology
from engine.platform.jobs import FileJob

__all__ = ["planner_server", "planner_ui"]

DEFAULT_EPISODES = 150
"""Interactive default training budget (episodes): well under a minute on a laptop core. The
command line (``artds plan``) trains 600 for its reported numbers."""
DEFAULT_SCENARIOS = 200
"""Interactive default number of evaluation scenarios (the CLI uses 500)."""
POLL_SECONDS = 0.5
"""How often a running session reads its job's progress file."""
FIGURES: dict[str, tuple[str, Callable[[PlanResult], go.Figure]]] = {
    "weekly": ("Weekly dose", weekly_dose_figure),
    "volume": ("Tumour volume by week", volume_box_figure),
    "bed_sf": ("Tumour BED and surviving fraction", bed_sf_figure),
    "phantom": ("Phantom dose maps (beamlet LP)", phantom_dose_figure),
}
"""The result's figures, in the order shown: output id → (card title, the figure of a run)."""


def _range(id: str, label: str, lo: float, hi: float, value: tuple[float, float], step: float
           ) -> ui.Tag:
    return ui.input_slider(id, label, min=lo, max=hi, value=value, step=step, width="100%")


@module.ui
def planner_ui() -> ui.TagList:
    bio = BiologyRanges()
    settings = ui.card(
        ui.card_header("Fractionation planner: adaptive schedule under uncertain biology"),
        ui.p(
            "A Double-DQN agent learns, over tumour biologies sampled from the ranges below, "
            "which dose per fraction (1.8, 2.0 or 2.2 Gy; 35 fractions, 5 a week) to give each "
            "week; its robust weekly plan (ART) is compared with the equal-dose 2 Gy reference "
            "and with the best of all 3⁷ weekly plans (exact oracle) on fresh scenarios. "
            "Response model and numbers: docs/planner.md. Simulated scenarios, not clinical "
            "evidence.",
            class_="small text-muted mb-2",
        ),
        ui.layout_column_wrap(
            ui.div(
                ui.tags.h6("Tumour biology (uniform ranges)"),
                _range("alpha", "α of oxic cells (Gy⁻¹)", 0.05, 0.6, bio.alpha_per_gy, 0.005),
                _range("alpha_beta", "α/β (Gy)", 1.0, 20.0, bio.alpha_beta_gy, 0.5),
                _range("tau_g", "Repopulation τ_g (days)", 2.0, 120.0, bio.tau_g_days, 1.0),
                _range("tau_d", "Dead-cell clearance τ_d (days)", 1.0, 20.0, bio.tau_d_days,
                       0.5),
                ui.input_numeric("oer", "OER of hypoxic cells", value=bio.oer, min=1.0,
                                 max=3.0, step=0.1, width="100%"),
            ),
            ui.div(
                ui.tags.h6("Patient"),
                ui.input_checkbox("use_patient_alpha", "Use the patient's α", value=False),
                ui.input_numeric("patient_alpha", "Patient's α (Gy⁻¹)", value=0.3, min=0.01,
                                 max=1.0, step=0.005, width="100%"),
                ui.output_ui("alpha_source"),
                ui.tags.h6("Preferences", class_="mt-3"),
                ui.input_radio_buttons(
                    "priority", "Priority",
                    {"tumour": "Raise tumour BED (OAR BED ≤ +0.5 %)",
                     "oar_sparing": "Spare the OAR (keep tumour BED)"},
                    selected="tumour"),
                ui.input_radio_buttons("gamma", "OAR sparing factor γ",
                                       {"0.7": "0.7", "0.4": "0.4"}, selected="0.7",
                                       inline=True),
            ),
            ui.div(
                ui.tags.h6("Budget"),
                ui.input_numeric("episodes", "Training episodes", value=DEFAULT_EPISODES,
                                 min=10, max=5000, step=10, width="100%"),
                ui.input_numeric("scenarios", "Evaluation scenarios", value=DEFAULT_SCENARIOS,
                                 min=20, max=2000, step=10, width="100%"),
                ui.input_numeric("seed", "Seed", value=0, min=0, max=2**31 - 1, step=1,
                                 width="100%"),
                ui.input_task_button("run", "Run planner", label_busy="Planning…",
                                     class_="mt-2 w-100"),
                ui.input_action_button("cancel", "Cancel run", disabled=True,
                                       class_="btn-outline-danger mt-2 w-100"),
                ui.output_ui("status"),
            ),
            width="260px",
        ),
    )
    return ui.TagList(
        settings,
        ui.output_ui("summary"),
        *(figure_card(title, None, figure_id) for figure_id, (title, _) in FIGURES.items()),
    )


def _value(v: Any, name: str, lo: float, hi: float) -> float:
    if v is None:
        raise ValueError(f"{name} is empty; accepted {lo:g}–{hi:g}")
    v = float(v)
    if not lo <= v <= hi:
        raise ValueError(f"{name} = {v:g} is out of range; accepted {lo:g}–{hi:g}")
    return v


def build_config(values: dict[str, Any]) -> PlanConfig:
    """The :class:`PlanConfig` of the panel's inputs; ``ValueError`` names the bad field."""
    episodes = int(_value(values["episodes"], "Training episodes", 10, 5000))
    scenarios = int(_value(values["scenarios"], "Evaluation scenarios", 20, 2000))
    seed = int(_value(values["seed"], "Seed", 0, 2**31 - 1))
    oer = _value(values["oer"], "OER", 1.0, 3.0)
    patient_alpha = (_value(values["patient_alpha"], "Patient's α", 0.01, 1.0)
                     if values["use_patient_alpha"] else None)
    gamma = _value(values["gamma"], "OAR sparing factor γ", 0.01, 1.0)
    priority = str(values["priority"])
    cfg = PlanConfig(
        biology=BiologyRanges(alpha_per_gy=tuple(values["alpha"]),
                              alpha_beta_gy=tuple(values["alpha_beta"]),
                              tau_g_days=tuple(values["tau_g"]),
                              tau_d_days=tuple(values["tau_d"]), oer=oer,
                              patient_alpha_per_gy=patient_alpha),
        oar=OarBiology(sparing_gamma=gamma),
        course=CourseConfig(),
        reward=preference_weights(priority),
        dqn=replace(DQNConfig(), n_episodes=episodes),
        priority=priority,
        n_eval_scenarios=scenarios,
        seed=seed,
    )
    return cfg.validate()


def _fmt(x: float | None, spec: str) -> str:
    return "–" if x is None else format(x, spec)


def _summary_table(p: dict[str, Any]) -> ui.Tag:
    rows = []
    for key, name in (("reference", "Reference (2 Gy × 35)"), ("art", "ART plan"),
                      ("oracle", "Best weekly plan (oracle)")):
        s = p[key]
        lo, hi = s["tumour_bed_ci95"]
        rows.append(ui.tags.tr(
            ui.tags.td(name),
            ui.tags.td(f"{s['tumour_bed_mean']:.2f}", ui.br(),
                       ui.tags.small(f"95 % CI {lo:.2f}–{hi:.2f}"), class_="num"),
            ui.tags.td(f"{s['tumour_bed_iqr']:.2f}", class_="num"),
            ui.tags.td(f"{s['tumour_bed_range'][0]:.1f}–{s['tumour_bed_range'][1]:.1f}",
                       class_="num"),
            ui.tags.td(f"{s['oar_bed_mean']:.2f}", class_="num"),
            ui.tags.td(f"{100 * s['one_minus_sf_mean']:.4f}", class_="num"),
            ui.tags.td(f"{s['p_sf_below_1e4']:.2f}", class_="num"),
            ui.tags.td(f"{s['mean_return']:.3f}", class_="num"),
        ))
    head = ui.tags.tr(*(ui.tags.th(h, class_=None if i == 0 else "num") for i, h in enumerate(
        ("Plan", "Tumour BED (Gy)", "IQR (Gy)", "Range (Gy)", "OAR BED (Gy)", "1 − SF (%)",
         "P(SF < 1e-4)", "Mean reward"))))
    return ui.div(ui.tags.table(ui.tags.thead(head), ui.tags.tbody(*rows),
                                class_="table table-sm metrics-table"),
                  class_="table-responsive")


@module.server
def planner_server(
    input, output, session, *,
    alpha_per_gy: Callable[[], float | None] | None = None,
) -> reactive.Value[PlanResult | None]:
    """Planner panel server.

    Args:
        alpha_per_gy: optional reactive giving the patient's α (Gy⁻¹) from another panel (a
            future SF2 panel); None or a value of None leaves the α inputs alone.

    Returns:
        A reactive value holding the last finished :class:`PlanResult` (None before the first
        run), for other panels to read.
    """
    result: reactive.Value[PlanResult | None] = reactive.value(None)
    error: reactive.Value[str | None] = reactive.value(None)
    job_dir: reactive.Value[str | None] = reactive.value(None)
    progress: reactive.Value[dict[str, Any] | None] = reactive.value(None)
    """The running job's last progress (``"status": "running"``), or how it ended when it was
    cancelled (``"cancelled"``); None otherwise."""
    cancel_asked = reactive.value(False)

    if alpha_per_gy is not None:
        @reactive.effect
        def _receive_alpha() -> None:
            value = alpha_per_gy()
            if value is None:
                return
            ui.update_numeric("patient_alpha", value=round(float(value), 4))
            ui.update_checkbox("use_patient_alpha", value=True)

    @render.ui
    def alpha_source():
        handed = alpha_per_gy() if alpha_per_gy is not None else None
        if handed is None:
            return ui.tags.small("Optional: otherwise α is uncertain within its range.",
                                 class_="text-muted")
        return ui.tags.small(f"α handed over from the SF2 panel: {float(handed):.4f} Gy⁻¹",
                             class_="text-muted")

    runs: dict[str, Any] = {"ended": False, "running": None}
    """Whether the session has ended, and the folder of the run in the worker (None when
    none is): both change on the event loop only."""

    @ui.bind_task_button(button_id="run")
    @reactive.extended_task
    async def plan_task(config: dict[str, Any], folder: str) -> PlanResult | None:
        loop = asyncio.get_running_loop()
        runs["running"] = folder
        try:
            return await loop.run_in_executor(planner_pool(), run_plan_job, config, folder)
        finally:
            runs["running"] = None
            if runs["ended"]:  # nobody polls it any more (_poll removes it otherwise)
                shutil.rmtree(folder, ignore_errors=True)

    def _on_session_end() -> None:
        # A run nobody will see is cancelled (its folder goes when it stops); the folder of a
        # run that ended unpolled goes now.
        runs["ended"] = True
        with reactive.isolate():
            folder = job_dir.get()
        if folder and runs["running"] == folder:
            FileJob(Path(folder)).request_cancel()
        elif folder:
            shutil.rmtree(folder, ignore_errors=True)

    session.on_ended(_on_session_end)

    @reactive.effect
    @reactive.event(input.run)
    def _start() -> None:
        values = {k: input[k]() for k in (
            "alpha", "alpha_beta", "tau_g", "tau_d", "oer", "use_patient_alpha",
            "patient_alpha", "priority", "gamma", "episodes", "scenarios", "seed")}
        try:
            cfg = build_config(values)
        except ValueError as err:
            error.set(str(err))
            return
        error.set(None)
        folder = tempfile.mkdtemp(prefix="artds-plan-")
        job_dir.set(folder)
        cancel_asked.set(False)
        progress.set({"share": 0.0, "message": "queued", "status": "running"})
        plan_task(cfg.to_dict(), folder)

    @reactive.effect
    def _cancel_enabled() -> None:
        ui.update_action_button("cancel", disabled=plan_task.status() != "running")

    @reactive.effect
    @reactive.event(input.cancel)
    def _cancel() -> None:
        folder = job_dir.get()
        if folder and plan_task.status() == "running":
            FileJob(Path(folder)).request_cancel()  # the run stops at its next checkpoint
            cancel_asked.set(True)

    @reactive.effect
    def _poll() -> None:
        status = plan_task.status()
        folder = job_dir.get()
        if status == "running" and folder:
            reactive.invalidate_later(POLL_SECONDS)
            with reactive.isolate():
                seen = FileJob(Path(folder)).read()
                if seen is not None:
                    progress.set({**seen, "status": "running"})
        elif status in ("success", "error", "cancelled") and folder:
            with reactive.isolate():
                last = FileJob(Path(folder)).read()
                ended = None
                if status == "success":
                    done = plan_task.result()
                    if done is None:  # cancelled: keep the previous result on show
                        ended = {"share": 0.0, **(last or {}), "message": CANCELLED_MESSAGE,
                                 "status": "cancelled"}
                    else:
                        result.set(done)
                else:
                    try:
                        plan_task.result()
                    except Exception as exc:  # shown to the user, one line
                        error.set(f"The planner failed: {type(exc).__name__}: {exc}")
                job_dir.set(None)
                cancel_asked.set(False)
                progress.set(ended)
            shutil.rmtree(folder, ignore_errors=True)

    @render.ui
    def status():
        msg = error.get()
        if msg:
            return ui.div(msg, class_="artds-error small mt-2")
        seen = progress.get()
        if seen is None:
            return None
        pct = max(0, min(100, round(100 * float(seen.get("share", 0.0)))))
        running = seen.get("status") == "running"
        note = " · cancel requested" if running and cancel_asked.get() else ""
        return ui.div(
            ui.div(ui.div(class_="progress-bar" + ("" if running else " bg-secondary"),
                          role="progressbar", style=f"width: {pct}%", aria_valuenow=str(pct),
                          aria_valuemin="0", aria_valuemax="100"),
                   class_="progress mt-2", style="height: 8px"),
            ui.tags.small(f"{pct} % · {seen.get('message', '')}{note}", class_="text-muted"),
            class_="planner-progress" if running else "planner-cancelled",
            **{"data-status": seen.get("status", "")},
        )

    @render.ui
    def summary():
        r = result.get()
        if r is None:
            return ui.div("Set the ranges and preferences, then press “Run planner”.",
                          class_="artds-empty")
        p = r.payload
        captured = p["oracle_gain_captured"]
        weeks = " · ".join(f"W{i + 1} {d:.2f}" for i, d in enumerate(p["weekly_dose_gy"]))
        adapt = ", ".join(f"week {w}" for w in p["adaptation_weeks"]) or "none"
        return ui.card(
            ui.card_header("Result: ART against the equal-dose reference"),
            ui.p(ui.tags.strong("ART weekly dose per fraction (Gy): "), weeks, ui.br(),
                 ui.tags.strong("Adaptation points: "), adapt, ui.br(),
                 ui.tags.strong("Tumour BED "), f"{p['tumour_bed_gain_percent']:+.2f} %, ",
                 ui.tags.strong("OAR BED "), f"{p['oar_bed_change_percent']:+.2f} % · ",
                 ui.tags.strong("oracle ratio "), _fmt(p["oracle_ratio"], ".4f"), " · ",
                 ui.tags.strong("gain captured "), _fmt(captured, ".2f"), " · ",
                 f"trained in {p['train_seconds']:.1f} s",
                 class_="mb-2", id=session.ns("headline")),
            _summary_table(p),
            ui.tags.ul(*(ui.tags.li(n) for n in p["notes"]), class_="small text-muted"),
        )

    def _figure_of_result(draw: Callable[[PlanResult], go.Figure]
                          ) -> Callable[[], go.Figure | None]:
        def figure() -> go.Figure | None:
            r = result.get()
            return None if r is None else draw(r)
        return figure

    for figure_id, (_, draw) in FIGURES.items():
        output(id=figure_id)(render_figure(_figure_of_result(draw)))

    return result
