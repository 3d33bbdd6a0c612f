"""Model review panel (for physicists): how good are the learned outcome estimators?

Shows the saved evaluation of the current protocol (metrics table per architecture and outcome,
cross-validated ROC curves, learning curve, calibration against the truth on a fresh cohort:
reliability diagram and interval coverage, and the regret learning curve) and contrasts the
architectures' dose response on the shown cases. Every number comes from virtual trials; the
panel says so. The contrast's torch inference runs in the recommendation pool
(:func:`app.recommending.shown_curves`), never in a flush.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
from shiny import module, reactive, render, ui

from app import shared
from app.panels.odm_review import odm_review_server, odm_review_ui
from app.panels.widgets import figure_card, number, plus_minus, unavailable
from app.plots import render_figure
from app.recommending import shown_curves
from engine.arclids.architectures import ARCH_KEYS, SERVED_ARCH, arch_label
from engine.arclids.outcomes import OutcomeModel
from engine.core.protocols import Protocol
from engine.figures.model_review import (
    architecture_contrast_figure,
    interval_coverage_figure,
    learning_curve_figure,
    reliability_figure,
    roc_figure,
)
from engine.figures.odm_review import FRESH_COHORT_NOTE, regret_learning_curve_figure

__all__ = ["model_review_server", "model_review_ui"]

UNSCORED_NOTE = ("n/a: no cross-validation split held both outcomes in its validation part "
                 "(too few cases of one kind), so no AUROC could be computed.")
CONTRAST_ARCHS = ("glogd", "single", "reference")
"""Drawn in the contrast: the served GLoGD-GNN, the Single-GNN baseline and the truth."""
NO_EVALUATION = "No evaluation saved for this protocol."


def no_models_message(protocol_name: str) -> str:
    return (f"No trained outcome models in models/: run "
            f"`artds train rtoe --protocol {protocol_name}`")


def _retrain(what: str, protocol_name: str) -> ui.Tag:
    """The one-line empty state of a figure an older evaluation has no data for."""
    return ui.div(shared.with_code(
        f"This evaluation has no {what}: retrain to see it "
        f"(`artds train rtoe --protocol {protocol_name}`)."), class_="artds-empty")


def _has_calibration(summary: dict) -> bool:
    """Whether any architecture and outcome of the summary has calibration metrics."""
    return any((m or {}).get("calibration") for per in summary.get("architectures", {}).values()
               for m in per.values())


def _when(created: object) -> str:
    """``2026-11-23T18:30:16Z`` → ``2026-11-23 18:30 UTC`` (anything else unchanged)."""
    text = str(created or "unknown")
    if len(text) >= 16 and text[10] == "T" and text.endswith("Z"):
        return f"{text[:10]} {text[11:16]} UTC"
    return text


def _metrics_table(summary: dict, protocol: Protocol) -> ui.Tag:
    outcomes = (("tcp", "TCP", protocol.target.outcome_label),
                ("ntcp", "NTCP", protocol.oar.outcome_label))
    head = ui.tags.tr(
        ui.tags.th("Model"), ui.tags.th("Outcome"),
        ui.tags.th("CV AUROC", ui.br(), ui.tags.small("mean ± sd over splits"), class_="num"),
        ui.tags.th("Fresh-cohort", ui.br(), "AUROC", class_="num"),
        ui.tags.th("Bayes ceiling", ui.br(), ui.tags.small("true probabilities"),
                   class_="num"),
        ui.tags.th("Brier", class_="num"),
        ui.tags.th("Monotonicity", ui.br(), "violations", ui.br(),
                   ui.tags.small("share of patients"),
                   class_="num"),
        ui.tags.th("Ensemble sd", ui.br(), ui.tags.small("mean"), class_="num"),
        ui.tags.th("Events / cases", ui.br(), ui.tags.small("training trial"), class_="num"),
    )
    rows = []
    archs = summary.get("architectures", {})
    for arch in [a for a in ARCH_KEYS if a in archs] + \
            [a for a in archs if a not in ARCH_KEYS]:
        for k, (key, short, label) in enumerate(outcomes):
            m = archs[arch].get(key)
            if not m:
                continue
            name = arch_label(arch) + (" (served)" if arch == SERVED_ARCH else "")
            events = ("–" if m.get("n_cases") is None
                      else f"{m.get('n_events', '–')} / {m['n_cases']}")
            violations = m.get("monotonicity_violation_rate")
            rows.append(ui.tags.tr(
                ui.tags.td(name if k == 0 else "", class_="arch"),
                ui.tags.td(ui.tags.strong(short), " ", label, class_="outcome"),
                ui.tags.td(plus_minus(m.get("cv_auroc_mean"), m.get("cv_auroc_sd")) if
                           m.get("cv_auroc_mean") is not None else
                           ui.span("n/a *", title=UNSCORED_NOTE), class_="num"),
                ui.tags.td(number(m.get("auroc_vs_truth"), ".3f"), class_="num"),
                ui.tags.td(number(m.get("auroc_bayes_ceiling"), ".3f"), class_="num"),
                ui.tags.td(number(m.get("brier"), ".3f"), class_="num"),
                ui.tags.td("–" if violations is None else f"{100 * violations:.1f} %",
                           class_="num" + (" warn" if violations else "")),
                ui.tags.td(number(m.get("ensemble_sd_mean"), ".3f"), class_="num"),
                ui.tags.td(events, class_="num"),
                class_="first-of-arch" if k == 0 else None,
            ))
    unscored = any(m.get("cv_auroc_mean") is None for per in archs.values()
                   for m in per.values())
    return ui.TagList(
        ui.div(
            ui.tags.table(ui.tags.thead(head), ui.tags.tbody(*rows),
                          class_="table table-sm metrics-table"),
            class_="table-responsive",
        ),
        ui.p(f"* {UNSCORED_NOTE}", class_="small text-muted mt-1 mb-0") if unscored else None,
    )


@module.ui
def model_review_ui() -> ui.TagList:
    return ui.TagList(
        ui.card(
            ui.card_header("Model review: learned outcome estimators"),
            ui.output_ui("intro"),
            ui.output_ui("metrics"),
        ),
        figure_card("Cross-validated ROC curves", "roc_note", "roc"),
        figure_card("Learning curve", "learning_note", "learning"),
        figure_card("Calibration against the truth: reliability diagram", "reliability_note",
                    "reliability"),
        figure_card("Interval coverage: stated level against measured", "coverage_note",
                    "coverage"),
        figure_card("Regret learning curve: from how many patients does the learned "
                    "recommender beat the clinicians?", "regret_curve_note", "regret_curve"),
        figure_card("Single-GNN against GLoGD-GNN on the shown cases", "contrast_note",
                    "contrast"),
        odm_review_ui("odm"),
    )


@module.server
def model_review_server(
    input, output, session, *,
    protocol: Callable[[], Protocol],
    cases: Callable[[], pd.DataFrame],
) -> None:
    """Metrics, ROC and learning curves of the saved evaluation; the architecture contrast;
    the decision makers and synthetic patients (:mod:`app.panels.odm_review`)."""
    odm_review_server("odm", protocol=protocol)

    @reactive.calc
    def evaluation() -> shared.Evaluation | None:
        return shared.EVALUATIONS[protocol().name]

    @render.ui
    def intro():
        ev = evaluation()
        lead = ui.p(
            "All numbers here come from virtual trials (simulated patients whose true outcome "
            "probabilities are known), not from clinical data.",
            class_="small text-muted mb-2 review-lead",
        )
        if ev is None:
            return lead
        s = ev.summary
        n_eval = (s.get("eval_cohort") or {}).get("n_patients")
        n_train = next((m.get("n_cases") for per in s.get("architectures", {}).values()
                        for m in per.values() if m.get("n_cases")), None)
        return ui.TagList(lead, ui.p(
            f"Cross-validation: 10 stratified 80/20 splits of the {n_train}-case training "
            f"trial. Fresh-cohort AUROC: each final ensemble scored on {n_eval} new simulated "
            "patients, next to the Bayes ceiling (the AUROC of their true probabilities, the "
            f"best any model can do). Grid “{s.get('grid')}”, evaluation saved "
            f"{_when(s.get('created'))}.",
            class_="small mb-2",
        ))

    @render.ui
    def metrics():
        ev = evaluation()
        if ev is None:
            return unavailable(no_models_message(protocol().name),
                               shared.EVALUATION_ERRORS.get(protocol().name))
        return _metrics_table(ev.summary, protocol())

    @render.ui
    def roc_note():
        if evaluation() is None:
            return ui.div(NO_EVALUATION, class_="artds-empty")
        return None

    @render_figure
    def roc():
        ev = evaluation()
        return None if ev is None else roc_figure(ev.payload, protocol())

    @render.ui
    def learning_note():
        ev = evaluation()
        if ev is None:
            return ui.div(NO_EVALUATION, class_="artds-empty")
        if not ev.summary.get("learning_curve"):
            return ui.div("This evaluation has no learning curve (it is computed by a full "
                          "training run).", class_="artds-empty")
        return None

    @render_figure
    def learning():
        ev = evaluation()
        rows = None if ev is None else ev.summary.get("learning_curve")
        return learning_curve_figure(rows, protocol()) if rows else None

    @render.ui
    def reliability_note():
        ev = evaluation()
        if ev is None:
            return ui.div(NO_EVALUATION, class_="artds-empty")
        if not _has_calibration(ev.summary):
            return _retrain("calibration metrics", protocol().name)
        return ui.p(
            f"On a {FRESH_COHORT_NOTE}: the probability each model predicts at the patient's "
            "received dose, in 10 bins, against the share of outcomes that occurred and "
            "against the mean true probability (known only in a virtual trial). On the "
            "diagonal a model is calibrated; above it, it under-predicts.",
            class_="small text-muted mb-1")

    @render_figure
    def reliability():
        ev = evaluation()
        if ev is None or not _has_calibration(ev.summary):
            return None
        return reliability_figure(ev.summary, protocol())

    @render.ui
    def coverage_note():
        ev = evaluation()
        if ev is None:
            return ui.div(NO_EVALUATION, class_="artds-empty")
        if not _has_calibration(ev.summary):
            return _retrain("interval coverage", protocol().name)
        return ui.p(
            "The share of patient × dose points whose true probability lies inside the "
            "interval the app shows, against the level the interval states. Far below the "
            "level: the band is too narrow to trust; far above: wider than it needs to be.",
            class_="small text-muted mb-1")

    @render_figure
    def coverage():
        ev = evaluation()
        if ev is None or not _has_calibration(ev.summary):
            return None
        return interval_coverage_figure(ev.summary, protocol())

    @render.ui
    def regret_curve_note():
        ev = evaluation()
        if ev is None:
            return ui.div(NO_EVALUATION, class_="artds-empty")
        if not ev.summary.get("regret_learning_curve"):
            return _retrain("regret learning curve", protocol().name)
        return ui.p(
            "True-reward loss against the oracle (lower is better) on a "
            f"{FRESH_COHORT_NOTE}, for outcome models trained on virtual trials of each size: "
            "the exact argmax of their reward, the historic clinicians' doses and the best "
            "single dose for everyone.", class_="small text-muted mb-1")

    @render_figure
    def regret_curve():
        ev = evaluation()
        rows = None if ev is None else ev.summary.get("regret_learning_curve")
        return regret_learning_curve_figure(rows) if rows else None

    @reactive.calc
    def contrast_models() -> dict[str, OutcomeModel]:
        choices = shared.MODEL_CHOICES[protocol().name]
        return {arch: choices[arch].model for arch in CONTRAST_ARCHS if arch in choices}

    # Torch inference: computed in the recommendation pool when the figure asks for it, so the
    # flush (and every other session) never waits for it; the figure shows "recalculating".
    contrast_curves = shown_curves(protocol=protocol, models=contrast_models, shown=cases)

    @render.ui
    def contrast_note():
        p = protocol()
        missing = [arch_label(a) for a in ("glogd", "single")
                   if a not in shared.MODEL_CHOICES[p.name]]
        if missing:
            return ui.div(
                f"Not available for {p.name.upper()}: {' and '.join(missing)}. ",
                shared.with_code(no_models_message(p.name)), class_="artds-empty")
        if cases().empty:
            return ui.div("Choose cases in the sidebar to compare the architectures on them.",
                          class_="artds-empty")
        return ui.p(
            "Ensemble-mean TCP and NTCP of each shown case. The GLoGD-GNN passes the dose "
            "through a logistic function, so its curves can only rise with dose; the "
            "Single-GNN takes the dose as one more input and may fall (✕). Dotted: the "
            "virtual trial's true curve.", class_="small text-muted mb-1",
        )

    @render_figure
    def contrast():
        p = protocol()
        if any(a not in shared.MODEL_CHOICES[p.name] for a in ("glogd", "single")):
            return None
        labels, curves = contrast_curves()
        return architecture_contrast_figure(labels, curves, p) if labels else None
