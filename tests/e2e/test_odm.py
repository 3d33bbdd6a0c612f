"""The decision maker in the app: recommended dose, its SEM and q-value labelled as what they are
(fitting noise, predicted reward), exact argmax, goal flags, and the decision-maker review. Passes
with or without trained ODMs (then the fallback is checked)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect
from shiny.playwright import controller

from app import shared
from engine.arclids.architectures import REFERENCE
from engine.arclids.odm_eval import missing_regret_policies
from tests.e2e.helpers import assert_clean, open_app, open_tab

pytestmark = pytest.mark.e2e

PROTOCOL = "nsclc"


def _has_trace(plot: str, meta: str) -> str:
    return (f"() => (document.getElementById('{plot}').data || [])"
            f".some((t) => t.meta === '{meta}')")



def test_outcome_space_shows_the_recommendation_with_labelled_sem_and_q(
    page: Page, app_url: str, console_errors: list[str]
) -> None:
    default = shared.DEFAULT_MODEL[PROTOCOL]
    odm, _note = shared.DECISION_MAKERS[PROTOCOL][default]
    open_app(page, app_url)
    open_tab(page, "Outcome space")
    summary = page.locator("#outcome-summary")
    expect(page.locator("#outcome-plot.js-plotly-plot")).to_be_visible()
    expect(summary.locator(".goal-flags li")).to_have_count(len(shared.PROTOCOLS[PROTOCOL].goals))
    if odm is not None:
        rec_line = summary.locator(".recommended-line")
        # the dose alone: its SEM is the decision maker's fitting noise, not the dose's spread
        expect(rec_line.first).to_contain_text(re.compile(r"Recommended: \d\.\d\d Gy/fx →"))
        expect(rec_line.first).not_to_contain_text("±")
        line = summary.locator(".recommender-line").first
        expect(line).to_contain_text("Double-DQN decision maker")
        expect(line).to_contain_text("Exact reward argmax")
        expect(line).to_contain_text(
            "(SEM: the decision maker's fitting noise, not the outcome models' uncertainty)")
        expect(line).to_contain_text(re.compile(
            r"Their q-value -?\d+\.\d\d is their own predicted reward \(0–3, with goal "
            r"bonuses\)"))
        page.wait_for_function(_has_trace("outcome-plot", "exact-argmax"))
        expect(page.locator("#outcome-plot .legendtext", has_text="±")).to_have_count(0)
        # where the dose is chosen: how this recommender did on a fresh cohort, against the
        # clinicians' rule and one dose for everyone, with which did best
        # beside the model: how good its probabilities are against the base rate
        expect(page.locator("#outcome-model_label .probability-quality")).to_contain_text(
            re.compile(r"TCP [\d.]+ vs [\d.]+ \((better|worse|about the same)\)"))
        record = summary.locator(".track-record")
        expect(record).to_contain_text("Track record on a fresh virtual cohort")
        expect(record).to_contain_text("the virtual trial's clinicians")
        expect(record).to_contain_text(re.compile(r"one dose for everyone \(\d(\.\d)? Gy/fx\)"))
        expect(record.locator("strong").last).to_contain_text("did best there")
        expect(record.locator("tr")).to_have_count(4)  # recommendation, advice, clinicians, one
        expect(record.locator("td strong").first).to_be_visible()  # the best row stands out
    else:
        expect(summary.locator(".recommender-line")).to_contain_text(
            "Exact reward argmax over the dose grid")
    assert_clean(page, console_errors)

    # The reference model has no decision maker: the exact argmax, with the reason shown.
    controller.InputSelect(page, "model-choice").set(REFERENCE)
    expect(summary.locator(".recommender-line")).to_contain_text("no decision maker is trained")
    expect(summary.locator(".recommended-line")).not_to_contain_text("±")
    expect(summary).not_to_contain_text("confiden")
    # no evaluation measured the reference truth as a recommender: not known, and said so
    expect(summary.locator(".track-record")).to_contain_text("is not known")
    assert_clean(page, console_errors)


def test_model_review_shows_decision_makers_and_synthetic_patients(
    page: Page, app_url: str, console_errors: list[str]
) -> None:
    review = shared.ODM_REVIEWS[PROTOCOL]
    open_app(page, app_url)
    open_tab(page, "Model review")
    assert review.odm is not None and review.gan is not None, "shipped ODM/GAN must load"
    table = page.locator("#review-odm-odm_metrics table")
    expect(table).to_contain_text("argmax_reward_ratio · gain_captured")
    expect(table).to_contain_text("predicted reward, 0–3 with goal bonuses")
    expect(table).not_to_contain_text("confidence")
    # the recommendation judged against the clinician, on the fresh cohort beside the trial
    regret = page.locator("#review-odm-regret_table table")
    for text in ("historic clinicians", "served recommendation", "best constant dose",
                 "exact argmax", "advised dose", "fresh cohort", "training trial"):
        expect(regret).to_contain_text(text)
    expect(page.locator("#review-odm-regret_intro")).to_contain_text(
        "fresh virtual cohort (never trained on)")
    missing = missing_regret_policies(review.odm_summary)
    note = page.locator("#review-odm-regret_intro .regret-missing")
    if missing:  # an evaluation saved before these rows: one line saying to retrain
        expect(note).to_contain_text(f"retrain to see them (artds train odm --protocol {PROTOCOL})")
    else:
        expect(note).to_have_count(0)
    plot = page.locator("#review-odm-regret.js-plotly-plot")
    expect(plot).to_be_visible()
    expect(plot.locator(".gtitle")).to_contain_text("True-reward loss vs oracle (lower is better)")
    for plot in ("rmsd", "self_evaluation", "decisions"):
        expect(page.locator(f"#review-odm-{plot}.js-plotly-plot")).to_be_visible()
    expect(page.locator("#review-odm-decisions .legendtext",
                        has_text="q-value").first).to_be_visible()
    expect(page.locator("#review-odm-gan_intro")).to_contain_text("Jensen–Shannon")
    expect(page.locator("#review-odm-gan.js-plotly-plot")).to_be_visible()
    assert_clean(page, console_errors)
