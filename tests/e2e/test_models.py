"""Outcome models in the app: the served learned ensemble, the selector, the Model review panel.

The app serves whatever models/ holds (``$ARTDS_MODELS_DIR`` when set, for the app and for this
process alike). With a trained GLoGD-GNN ensemble the tests check it is served, labelled with its
version and drawn with covariance ellipses; without one they check the fallback to the reference
model and the warning that says so.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect
from shiny.playwright import controller

from app import shared
from engine.arclids.architectures import REFERENCE
from tests.e2e.helpers import assert_clean, open_app, open_tab, wait_idle

pytestmark = pytest.mark.e2e

PROTOCOL = "nsclc"
_HAS_ELLIPSES = (
    "() => (document.getElementById('outcome-plot').data || [])"
    ".some((t) => t.meta === 'ellipse')"
)
_TITLE = "() => document.getElementById('outcome-plot').layout.title.text"



def test_served_model_label_version_ellipses_and_switch_to_reference(
    page: Page, app_url: str, console_errors: list[str]
) -> None:
    choices = shared.MODEL_CHOICES[PROTOCOL]
    default = shared.DEFAULT_MODEL[PROTOCOL]
    served = choices[default].model
    reference = shared.REFERENCE_MODELS[PROTOCOL]
    open_app(page, app_url)

    # The selector lists the loaded models with readable labels, the served one selected.
    select = controller.InputSelect(page, "model-choice")
    select.expect_choices(list(choices))
    select.expect_choice_labels([c.choice_label for c in choices.values()])
    select.expect_selected(default)
    info = page.locator("#model-info")
    expect(info).to_contain_text(served.label)
    expect(info).to_contain_text(served.version)
    expect(info).to_contain_text("not clinical evidence")

    open_tab(page, "Outcome space")
    label = page.locator("#outcome-model_label")
    expect(label).to_contain_text(served.label)
    expect(label).to_contain_text(f"version {served.version}")
    expect(page.locator("#outcome-plot.js-plotly-plot")).to_be_visible()
    if default == "glogd":
        assert served.label.startswith("GLoGD-GNN ensemble")
        expect(info.locator(".model-warning")).to_have_count(
            1 if shared.MODEL_ERRORS[PROTOCOL] else 0)
        page.wait_for_function(_HAS_ELLIPSES)
        expect(page.locator("#outcome-plot .gtitle")).to_contain_text("GLoGD-GNN ensemble")
        expect(page.locator("#outcome-plot .gtitle-subtitle")).to_contain_text(served.version)
        band = "(document.getElementById('outcome-dose_response').data || [])" \
            ".some((t) => t.meta === 'band')"
        page.wait_for_function(f"() => {band}")
    else:
        # No trained GLoGD-GNN: the reference is served and the sidebar says why.
        assert served is reference
        expect(info.locator(".model-warning")).to_contain_text("GLoGD-GNN")
        assert not page.evaluate(_HAS_ELLIPSES)
    assert_clean(page, console_errors)

    # Switching to the reference model relabels every view and drops the ellipses.
    select.set(REFERENCE)
    expect(label).to_contain_text(reference.label)
    expect(label).to_contain_text(f"version {reference.version}")
    expect(info).to_contain_text(reference.label)
    page.wait_for_function(f"(want) => ({_TITLE})().includes(want)", arg=reference.label)
    wait_idle(page)
    assert not page.evaluate(_HAS_ELLIPSES)
    open_tab(page, "Report")
    expect(page.locator("#report-contents")).to_contain_text(reference.label)
    assert_clean(page, console_errors)


def test_model_review_panel(page: Page, app_url: str, console_errors: list[str]) -> None:
    open_app(page, app_url)
    open_tab(page, "Model review")
    review = page.locator("#review-intro")
    expect(review).to_contain_text("virtual trials")
    evaluation = shared.EVALUATIONS[PROTOCOL]
    assert evaluation is not None, "the shipped outcome-model evaluation must load"

    table = page.locator("#review-metrics table.metrics-table")
    expect(table).to_be_visible()
    archs = evaluation.summary["architectures"]
    expect(table.locator("tbody tr")).to_have_count(sum(len(v) for v in archs.values()))
    for header in ("CV AUROC", "Fresh-cohort", "Bayes ceiling", "Brier", "Monotonicity",
                   "Ensemble sd", "Events / cases"):
        expect(table.locator("thead")).to_contain_text(header)
    expect(table).to_contain_text("GLoGD-GNN (served)")
    expect(table).to_contain_text("Single-GNN")
    glogd_tcp = archs["glogd"]["tcp"]
    expect(table).to_contain_text(f"{glogd_tcp['n_events']} / {glogd_tcp['n_cases']}")

    roc = page.locator("#review-roc.js-plotly-plot")
    expect(roc).to_be_visible()
    expect(roc.locator(".legendtext", has_text="AUROC").first).to_be_visible()

    if evaluation.summary.get("learning_curve"):
        expect(page.locator("#review-learning.js-plotly-plot")).to_have_count(1)
    else:
        expect(page.locator("#review-learning_note .artds-empty")).to_be_visible()

    # calibration against the truth, or one line saying to retrain (older evaluations)
    calibrated = any(m.get("calibration") for per in archs.values() for m in per.values())
    for plot in ("reliability", "coverage"):
        if calibrated:
            expect(page.locator(f"#review-{plot}.js-plotly-plot")).to_be_visible()
        else:
            expect(page.locator(f"#review-{plot}_note .artds-empty")).to_contain_text(
                f"retrain to see it (artds train rtoe --protocol {PROTOCOL})")
    if calibrated:
        expect(page.locator("#review-reliability .legendtext",
                            has_text="calibrated (diagonal)").first).to_be_visible()
        expect(page.locator("#review-coverage .gtitle-subtitle")).to_contain_text(
            "never trained on")
    if evaluation.summary.get("regret_learning_curve"):
        curve = page.locator("#review-regret_curve.js-plotly-plot")
        expect(curve).to_be_visible()
        expect(curve.locator(".legendtext", has_text="historic clinicians")).to_be_visible()
    else:
        expect(page.locator("#review-regret_curve_note .artds-empty")).to_contain_text(
            "no regret learning curve")

    if {"glogd", "single"} <= set(shared.MODEL_CHOICES[PROTOCOL]):
        contrast = page.locator("#review-contrast.js-plotly-plot")
        expect(contrast).to_be_visible()
        expect(contrast.locator(".legendtext", has_text="Single-GNN").first).to_be_visible()
        expect(contrast.locator(".gtitle-subtitle")).to_contain_text("falls with dose")
    assert_clean(page, console_errors)
