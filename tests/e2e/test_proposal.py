"""The physician's proposal, the intervals and the caution in the app (issue #12 points 5, 6).

The example file gives EX-NSCLC-02 a proposed dose. With the reference model (always served) the
numbers are checked against the engine; with a served learned ensemble the intervals, their
level and the best dose's interval are checked too. A proposal entered for a shown case is a new
input version, and goes into the report.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from shiny.playwright import controller

from app import shared
from engine.arclids.architectures import REFERENCE
from engine.arclids.recommend import recommend
from tests.e2e.helpers import assert_clean, open_app, open_tab

pytestmark = pytest.mark.e2e

PROTOCOL = "nsclc"
WITH_PROPOSAL = "EX-NSCLC-02"
TOXIC = "EX-NSCLC-04"
"""Its reference recommendation's NTCP exceeds the default goal: it carries a caution."""


def _has_trace(plot: str, meta: str) -> str:
    return (f"() => (document.getElementById('{plot}').data || [])"
            f".some((t) => t.meta === '{meta}')")


def _reference(patient: str):
    examples = shared.EXAMPLES[PROTOCOL]
    case = examples[examples["patient_id"] == patient].reset_index(drop=True)
    (rec,) = recommend(case, shared.PROTOCOLS[PROTOCOL], shared.REFERENCE_MODELS[PROTOCOL])
    return rec


def _load(page: Page, patient: str) -> None:
    controller.InputSelect(page, "data-example").set(patient)
    controller.InputActionButton(page, "data-load_example").click()
    expect(page.locator("#data-example_status")).to_contain_text("1 case")


def test_proposal_beside_the_recommendation_with_the_reference_model(
    page: Page, app_url: str, console_errors: list[str], tmp_path: Path
) -> None:
    rec, toxic = _reference(WITH_PROPOSAL), _reference(TOXIC)
    prop = rec.proposal
    assert prop is not None and toxic.caution and rec.caution is None
    open_app(page, app_url, role="clinician")
    controller.InputActionButton(page, "data-clear").click()
    controller.InputSelect(page, "model-choice").set(REFERENCE)
    _load(page, WITH_PROPOSAL)
    _load(page, TOXIC)
    controller.InputSelectize(page, "data-show").expect_selected([WITH_PROPOSAL, TOXIC])

    open_tab(page, "Outcome space")
    cards = page.locator("#outcome-summary .case-summary")
    expect(cards).to_have_count(2)
    card, toxic_card = cards.nth(0), cards.nth(1)
    # the reference truth states no interval, and the card does not invent one
    expect(card.locator(".recommended-line")).not_to_contain_text("interval")
    expect(card.locator(".dose-interval-line")).to_have_count(0)
    expect(card.locator(".reward-line")).to_contain_text(
        f"Predicted reward (0–3, with goal bonuses): {rec.recommended_reward:.2f}")
    table = card.locator(".proposal-comparison table")
    expect(table).to_contain_text("Your proposal")
    expect(table).to_contain_text(f"{prop['dose_gy']:g} Gy/fx")
    expect(table).to_contain_text(f"{100 * prop['tcp']:.1f} %")
    expect(table).to_contain_text(f"{100 * prop['ntcp']:.1f} %")
    expect(table).to_contain_text(f"{prop['reward']:.2f}")
    expect(card.locator(".p-better-line")).to_contain_text(
        f"P(recommendation better): {prop['p_recommended_better']:.2f}")
    advice = card.locator(".advice-line")
    expect(advice).to_contain_text("Change to the recommendation" if prop["advice"] == "change"
                                   else "Keep your proposal")
    expect(advice).to_contain_text(f"Advised dose: {round(prop['advised_dose_gy'], 2):g} Gy/fx")
    expect(card.locator(".artds-caution")).to_have_count(0)
    # a recommendation whose NTCP exceeds the default goal carries a visible caution
    caution = toxic_card.locator(".artds-caution")
    expect(caution).to_be_visible()
    expect(caution).to_contain_text("exceeds the default goal")
    expect(toxic_card.locator(".proposal-comparison")).to_have_count(0)
    # the proposal is marked in both plots, with its advice in the legend
    page.wait_for_function(_has_trace("outcome-plot", "proposal"))
    page.wait_for_function(_has_trace("outcome-dose_response", "proposal"))
    expect(page.locator("#outcome-plot .legendtext", has_text="proposal:")).to_contain_text(
        f"(advice: {prop['advice']})")
    expect(page.locator("#outcome-summary")).not_to_contain_text("confiden")
    assert_clean(page, console_errors)

    # The report carries the comparison and the caution.
    open_tab(page, "Report")
    with page.expect_download() as info:
        controller.DownloadButton(page, "report-download").click()
    saved = tmp_path / "report.html"
    info.value.save_as(saved)
    html = saved.read_text(encoding="utf-8")
    assert "Your proposal compared with the recommendation" in html
    assert f'<strong class="p-better">{prop["p_recommended_better"]:.2f}</strong>' in html
    assert '<tr class="caution">' in html and "q-value (confidence)" not in html
    assert_clean(page, console_errors)


def test_a_proposal_entered_for_a_shown_case_is_a_new_version_and_compared(
    page: Page, app_url: str, console_errors: list[str]
) -> None:
    patient = str(shared.STARTUP_CASES[PROTOCOL].iloc[0]["patient_id"])
    assert shared.STARTUP_CASES[PROTOCOL]["proposed_dose_adapt_gy"].isna().all()
    open_app(page, app_url, role="clinician")
    controller.InputActionButton(page, "data-clear").click()
    _load(page, patient)
    versions = page.locator("#data-versions")
    expect(versions).to_contain_text(re.compile(rf"{patient}: version (\d+) of \1"))
    before = int(re.search(r"version (\d+) of", versions.inner_text()).group(1))

    # A dose off the grid is refused, naming the field, the value and the accepted range.
    controller.InputSelect(page, "data-prop_case").set(patient)
    controller.InputNumeric(page, "data-prop_dose").set("9")
    controller.InputActionButton(page, "data-save_proposal").click()
    error = page.locator("#data-proposal_status .artds-error")
    expect(error).to_contain_text("The proposal was not saved")
    expect(error).to_contain_text("proposed_dose_adapt_gy")
    expect(error).to_contain_text("expected a number between 1.5 and 4 Gy")

    controller.InputNumeric(page, "data-prop_dose").set("3")
    controller.InputActionButton(page, "data-save_proposal").click()
    expect(page.locator("#data-proposal_status")).to_contain_text("new input version")
    expect(versions).to_contain_text(f"{patient}: version {before + 1} of {before + 1}")
    page.locator("#data-versions summary").first.click()
    expect(versions).to_contain_text("changed: proposed_dose_adapt_gy")

    open_tab(page, "Outcome space")
    comparison = page.locator("#outcome-summary .case-summary .proposal-comparison")
    expect(comparison).to_have_count(1)
    expect(comparison).to_contain_text("3 Gy/fx")
    expect(comparison).to_contain_text("P(recommendation better)")
    assert_clean(page, console_errors)


def test_served_ensemble_states_its_interval_and_the_best_dose_interval(
    page: Page, app_url: str, console_errors: list[str]
) -> None:
    served = shared.MODEL_CHOICES[PROTOCOL][shared.DEFAULT_MODEL[PROTOCOL]].model
    examples = shared.EXAMPLES[PROTOCOL]
    case = examples[examples["patient_id"] == WITH_PROPOSAL].reset_index(drop=True)
    odm, note = shared.CATALOGUES[PROTOCOL].decision_maker_for(served)
    (rec,) = recommend(case, shared.PROTOCOLS[PROTOCOL], served, odm, odm_note=note)
    if rec.interval_level is None:
        pytest.skip("the served model states no interval (no learned models in models/)")
    level = f"{100 * rec.interval_level:g} % interval"
    open_app(page, app_url, role="clinician")
    controller.InputActionButton(page, "data-clear").click()
    _load(page, WITH_PROPOSAL)
    open_tab(page, "Outcome space")
    card = page.locator("#outcome-summary .case-summary").first
    lo, hi = rec.recommended_tcp_interval
    expect(card.locator(".recommended-line")).to_contain_text(
        f"TCP {100 * rec.recommended_tcp:.1f} % ({level} {100 * lo:.1f}–{100 * hi:.1f} %)")
    expect(card.locator(".dose-interval-line")).to_contain_text(
        f"({level}, from the outcome models' uncertainty)")
    expect(card.locator(".proposal-comparison table")).to_contain_text(level)
    page.wait_for_function(_has_trace("outcome-plot", "ellipse"))
    page.wait_for_function(_has_trace("outcome-dose_response", "band"))
    expect(page.locator("#outcome-plot .gtitle-subtitle")).to_contain_text(
        f"ellipses: {level} of TCP and of NTCP")
    expect(page.locator("#outcome-dose_response .gtitle-subtitle")).to_contain_text(
        f"shaded: {level} of TCP and NTCP")
    assert_clean(page, console_errors)
