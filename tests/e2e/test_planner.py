"""Fractionation planner panel in the browser: a tiny run finishes and every plot renders; a run
can be cancelled."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect
from shiny.playwright import controller

from tests.e2e.helpers import assert_clean, open_app, open_tab

pytestmark = pytest.mark.e2e

RUN_LIMIT_MS = 240_000
"""Hang guard for the background run (the tiny budget takes seconds on an idle machine)."""
CANCEL_EPISODES = 60
"""Training budget of the run that is cancelled: long enough (seconds) that "Cancel" lands while
it runs, small enough that a missed cancel would still end well within the hang guard."""


def test_tiny_planner_run_shows_progress_and_plots(
    page: Page, app_url: str, console_errors: list[str]
) -> None:
    open_app(page, app_url)
    open_tab(page, "Fractionation planner")
    expect(page.locator("#planner-summary .artds-empty")).to_be_visible()
    controller.InputNumeric(page, "planner-episodes").set("10")
    controller.InputNumeric(page, "planner-scenarios").set("20")
    controller.InputRadioButtons(page, "planner-gamma").set("0.4")
    controller.InputTaskButton(page, "planner-run").click()
    # Progress appears while the job runs, then the result replaces it.
    expect(page.locator("#planner-status .planner-progress")).to_be_visible(
        timeout=RUN_LIMIT_MS)
    expect(page.locator("#planner-headline")).to_contain_text("ART weekly dose",
                                                              timeout=RUN_LIMIT_MS)
    expect(page.locator("#planner-status .planner-progress")).to_have_count(0)
    controller.InputTaskButton(page, "planner-run").expect_state("ready")
    expect(page.locator("#planner-cancel")).to_be_disabled()
    for plot in ("weekly", "volume", "bed_sf", "phantom"):
        expect(page.locator(f"#planner-{plot}.js-plotly-plot")).to_have_count(1)
    expect(page.locator("#planner-summary table")).to_contain_text("Reference (2 Gy × 35)")
    expect(page.locator("#planner-weekly")).to_contain_text("adaptation points")
    assert_clean(page, console_errors)


def test_planner_run_can_be_cancelled(
    page: Page, app_url: str, console_errors: list[str]
) -> None:
    open_app(page, app_url)
    open_tab(page, "Fractionation planner")
    cancel = page.locator("#planner-cancel")
    expect(cancel).to_be_disabled()  # nothing to cancel yet
    controller.InputNumeric(page, "planner-episodes").set(str(CANCEL_EPISODES))
    controller.InputNumeric(page, "planner-scenarios").set("20")
    controller.InputTaskButton(page, "planner-run").click()
    expect(cancel).to_be_enabled()
    cancel.click()
    # The run stops at its next checkpoint and says so; nothing is left to cancel.
    ended = page.locator("#planner-status .planner-cancelled")
    expect(ended).to_contain_text("cancelled", timeout=RUN_LIMIT_MS)
    expect(ended).to_have_attribute("data-status", "cancelled")
    expect(cancel).to_be_disabled()
    controller.InputTaskButton(page, "planner-run").expect_state("ready")
    expect(page.locator("#planner-status .planner-progress")).to_have_count(0)
    expect(page.locator("#planner-summary .artds-empty")).to_be_visible()  # no result
    assert_clean(page, console_errors)


def test_planner_refuses_bad_input_with_the_field_named(
    page: Page, app_url: str, console_errors: list[str]
) -> None:
    open_app(page, app_url)
    open_tab(page, "Fractionation planner")
    controller.InputCheckbox(page, "planner-use_patient_alpha").set(True)
    controller.InputNumeric(page, "planner-patient_alpha").set("3")
    controller.InputTaskButton(page, "planner-run").click()
    error = page.locator("#planner-status .artds-error")
    expect(error).to_contain_text("Patient's α = 3 is out of range")
    expect(page.locator("#planner-summary .artds-empty")).to_be_visible()
    assert console_errors == []
