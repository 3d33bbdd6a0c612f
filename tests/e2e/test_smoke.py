"""Every panel of both protocols renders without errors; bad input gets a clear message."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect
from shiny.playwright import controller

from app import shared
from tests.e2e.helpers import assert_clean, open_app, open_tab, wait_idle

pytestmark = pytest.mark.e2e

PANELS = ("Data input", "Outcome space", "Population", "Report", "Model review",
          "Fractionation planner")


def _load_all_examples(page: Page, protocol: str) -> None:
    controller.InputSelect(page, "protocol").set(protocol)
    wait_idle(page)
    controller.InputSelect(page, "data-example").set("__all__")
    controller.InputActionButton(page, "data-load_example").click()
    n = len(shared.EXAMPLES[protocol])
    expect(page.locator("#data-cases_status")).to_contain_text(f"{n} cases loaded")
    wait_idle(page)


def _remove_all_cases(page: Page) -> None:
    controller.InputActionButton(page, "data-clear").click()
    expect(page.locator("#data-cases_status")).to_contain_text("Load an example patient")
    wait_idle(page)



@pytest.mark.parametrize("protocol", ["nsclc", "hcc"])
def test_every_panel_renders_with_examples(
    page: Page, app_url: str, console_errors: list[str], protocol: str
) -> None:
    open_app(page, app_url)
    _load_all_examples(page, protocol)
    label = shared.PROTOCOLS[protocol].label
    first = shared.EXAMPLES[protocol].iloc[0]["patient_id"]

    open_tab(page, "Data input")
    expect(page.locator("#data-cases_table")).to_contain_text(str(first))
    expect(page.locator("#data-form")).to_contain_text(label)
    assert_clean(page, console_errors)

    open_tab(page, "Outcome space")
    expect(page.locator("#outcome-plot.js-plotly-plot")).to_be_visible()
    expect(page.locator("#outcome-dose_response.js-plotly-plot")).to_have_count(1)
    expect(page.locator("#outcome-plot .contour")).not_to_have_count(0)
    expect(page.locator("#outcome-summary .case-summary")).not_to_have_count(0)
    # The served model (whatever models/ holds: GLoGD-GNN ensemble, else the reference).
    served = shared.MODEL_CHOICES[protocol][shared.DEFAULT_MODEL[protocol]].model
    expect(page.locator("#outcome-model_label")).to_contain_text(served.label)
    expect(page.locator("#outcome-model_label")).to_contain_text(served.version)
    grid = shared.PROTOCOLS[protocol].dose_grid_gy
    # The slider spans the protocol's dose grid (ion.rangeSlider's end labels).
    slider = page.locator(".shiny-input-container:has(#outcome-dose)")
    expect(slider.locator(".irs-min")).to_have_text(f"{grid[0]:g} Gy")
    expect(slider.locator(".irs-max")).to_have_text(f"{grid[-1]:g} Gy")
    assert_clean(page, console_errors)

    open_tab(page, "Population")
    expect(page.locator("#population-plot.js-plotly-plot")).to_be_visible()
    expect(page.locator("#population-plot .legendtext").first).to_contain_text(
        "virtual trial population")
    assert_clean(page, console_errors)

    open_tab(page, "Report")
    expect(page.locator("#report-contents")).to_contain_text(label)
    expect(page.locator("#report-download")).to_be_visible()
    assert_clean(page, console_errors)

    open_tab(page, "Model review")
    assert shared.EVALUATIONS[protocol] is not None, "the shipped evaluation must load"
    expect(page.locator("#review-metrics table.metrics-table")).to_be_visible()
    expect(page.locator("#review-roc.js-plotly-plot")).to_have_count(1)
    assert_clean(page, console_errors)


def test_new_session_opens_on_a_worked_nsclc_example(
    page: Page, app_url: str, console_errors: list[str]
) -> None:
    open_app(page, app_url)
    first = str(shared.STARTUP_CASES["nsclc"].iloc[0]["patient_id"])
    controller.InputSelectize(page, "data-show").expect_selected([first])
    expect(page.locator("#data-cases_table")).to_contain_text(first)
    open_tab(page, "Outcome space")
    expect(page.locator("#outcome-plot.js-plotly-plot")).to_be_visible()
    expect(page.locator("#outcome-summary")).to_contain_text(first)
    expect(page.locator("#outcome-summary")).to_contain_text("Recommended:")
    open_tab(page, "Population")
    expect(page.locator("#population-plot.js-plotly-plot")).to_be_visible()
    expect(page.locator("#population-plot .legendtext", has_text=first)).to_have_count(1)
    open_tab(page, "Report")
    expect(page.locator("#report-contents")).to_contain_text(first)
    assert_clean(page, console_errors)


def test_empty_state_after_removing_every_case(
    page: Page, app_url: str, console_errors: list[str]
) -> None:
    open_app(page, app_url)
    _remove_all_cases(page)
    for panel in PANELS:
        open_tab(page, panel)
        expect(page.locator(".artds-empty:visible").first).to_be_visible()
        assert_clean(page, console_errors)
    expect(page.locator("#outcome-plot.js-plotly-plot")).to_have_count(0)


def test_bad_csv_is_refused_with_every_problem_and_cases_kept(
    page: Page, app_url: str, console_errors: list[str]
) -> None:
    open_app(page, app_url)
    _load_all_examples(page, "nsclc")
    n = len(shared.EXAMPLES["nsclc"])

    header = ",".join(["patient_id", *shared.PROTOCOLS["nsclc"].feature_names, "dose_eval_gy"])
    good = "EX-NEW-01,42.6,14.2,-0.2,8.7,10.2,4.8,0.01,15000,577,1.1,0,0,0,2.2"
    bad_range = "EX-NEW-02,420,14.2,-0.2,8.7,10.2,4.8,0.01,15000,577,1.1,0,0,0,2.2"
    bad_text = "<b>EX-NEW-03</b>,42.6,abc,-0.2,8.7,10.2,4.8,0.01,15000,577,1.1,7,0,0,2.2"
    content = "\n".join([header, good, bad_range, bad_text]) + "\n"
    controller.InputFile(page, "data-upload").set(
        {"name": "bad_cases.csv", "mimeType": "text/csv", "buffer": content.encode()}
    )
    error = page.locator("#data-upload_status .artds-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("bad_cases.csv was not loaded: 3 problems found")
    expect(error).to_contain_text("your current cases are unchanged")
    rows = error.locator("li")
    expect(rows).to_have_count(3)
    expect(rows.nth(0)).to_contain_text("Row 3")
    expect(rows.nth(0)).to_contain_text("tumour_geud_gy")
    expect(rows.nth(0)).to_contain_text("420")
    expect(rows.nth(0)).to_contain_text("out of range")
    expect(rows.nth(1)).to_contain_text("lung_geud_gy")
    expect(rows.nth(1)).to_contain_text("abc")
    expect(rows.nth(2)).to_contain_text("ercc1_rs11615")
    # Nothing was imported, the existing cases are intact and the app keeps working.
    expect(page.locator("#data-cases_status")).to_contain_text(f"{n} cases loaded")
    expect(page.locator("#data-cases_table")).not_to_contain_text("EX-NEW-01")
    assert_clean(page, console_errors)

    open_tab(page, "Outcome space")
    expect(page.locator("#outcome-plot.js-plotly-plot")).to_be_visible()
    controller.InputSlider(page, "outcome-dose").set("2 Gy")
    expect(page.locator("#outcome-summary")).to_contain_text("At 2 Gy/fx (selected)")
    assert_clean(page, console_errors)


def test_manual_form_rejects_out_of_range_and_adds_valid_patient(
    page: Page, app_url: str, console_errors: list[str]
) -> None:
    open_app(page, app_url)
    _remove_all_cases(page)
    controller.InputText(page, "data-m_patient_id").set("<i>HAND-1</i>")
    controller.InputNumeric(page, "data-m_tumour_geud_gy").set("500")
    controller.InputActionButton(page, "data-add_manual").click()
    error = page.locator("#data-form_status .artds-error")
    expect(error).to_contain_text("This patient was not added")
    expect(error).to_contain_text("tumour_geud_gy")
    expect(error).to_contain_text("500")
    expect(page.locator("#data-cases_status")).to_contain_text("Load an example patient")

    controller.InputNumeric(page, "data-m_tumour_geud_gy").set("45")
    controller.InputActionButton(page, "data-add_manual").click()
    expect(page.locator("#data-form_status")).to_contain_text("1 case added")
    controller.InputSelectize(page, "data-show").expect_selected(["<i>HAND-1</i>"])
    open_tab(page, "Outcome space")
    summary = page.locator("#outcome-summary")
    expect(summary).to_contain_text("<i>HAND-1</i>")  # shown as text, not markup
    expect(summary.locator("i")).to_have_count(0)
    assert_clean(page, console_errors)


def test_switching_protocol_keeps_each_protocols_cases(
    page: Page, app_url: str, console_errors: list[str]
) -> None:
    open_app(page, app_url)
    _remove_all_cases(page)
    controller.InputSelect(page, "data-example").set("EX-NSCLC-02")
    controller.InputActionButton(page, "data-load_example").click()
    show = controller.InputSelectize(page, "data-show")
    show.expect_selected(["EX-NSCLC-02"])

    controller.InputSelect(page, "protocol").set("hcc")
    hcc_first = shared.STARTUP_CASES["hcc"].iloc[0]
    hcc_label = f"{hcc_first['patient_id']} site {hcc_first['site_id']}"
    show.expect_selected([hcc_label])  # HCC keeps its own (startup) case
    expect(page.locator("#data-form")).to_contain_text(shared.PROTOCOLS["hcc"].label)
    _remove_all_cases(page)
    open_tab(page, "Outcome space")
    expect(page.locator("#outcome-empty .artds-empty")).to_be_visible()
    expect(page.locator("#outcome-plot.js-plotly-plot")).to_have_count(0)

    controller.InputSelect(page, "protocol").set("nsclc")
    show.expect_selected(["EX-NSCLC-02"])
    expect(page.locator("#outcome-summary")).to_contain_text("EX-NSCLC-02")
    expect(page.locator("#outcome-plot.js-plotly-plot")).to_be_visible()
    assert_clean(page, console_errors)
