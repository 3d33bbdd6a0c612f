"""A clinician's walk through the app: load a patient, move the dose, write a note, download."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, Route, expect
from shiny.playwright import controller

from app import shared
from engine.arclids.architectures import REFERENCE
from engine.arclids.recommend import recommend
from tests.e2e.helpers import open_app, open_tab, wait_idle

pytestmark = pytest.mark.e2e

PATIENT = "EX-NSCLC-01"


def _expected_recommendation():
    """The recommendation the engine makes for the example patient (what the UI must show)."""
    examples = shared.EXAMPLES["nsclc"]
    case = examples[examples["patient_id"] == PATIENT].reset_index(drop=True)
    (rec,) = recommend(case, shared.PROTOCOLS["nsclc"], shared.REFERENCE_MODELS["nsclc"])
    return rec


def test_walkthrough_load_select_dose_note_and_download(
    page: Page, app_url: str, console_errors: list[str], tmp_path: Path
) -> None:
    rec = _expected_recommendation()
    open_app(page, app_url)
    # A new session opens on a worked example; start from an empty list instead.
    controller.InputActionButton(page, "data-clear").click()
    expect(page.locator("#data-cases_status")).to_contain_text("Load an example patient")

    # This walk checks numbers against the reference model: choose it explicitly (a new
    # session serves the learned GLoGD-GNN ensemble when models/ holds one).
    controller.InputSelect(page, "model-choice").set(REFERENCE)
    expect(page.locator("#model-info")).to_contain_text(shared.REFERENCE_MODELS["nsclc"].label)

    # Load one example patient; it becomes the shown case.
    controller.InputSelect(page, "data-example").set(PATIENT)
    controller.InputActionButton(page, "data-load_example").click()
    expect(page.locator("#data-example_status")).to_contain_text("1 case added")
    controller.InputSelectize(page, "data-show").expect_selected([PATIENT])

    # Outcome space: the model is labelled, the slider starts at the recommended dose.
    open_tab(page, "Outcome space")
    expect(page.locator("#outcome-model_label")).to_contain_text(
        "reference model (virtual trial ground truth)")
    summary = page.locator("#outcome-summary")
    recommended = f"Recommended: {rec.recommended_dose_gy:g} Gy/fx"
    expect(summary).to_contain_text(recommended)
    expect(page.locator("#outcome-plot.js-plotly-plot")).to_be_visible()
    expect(page.locator("#outcome-dose_response.js-plotly-plot")).to_have_count(1)
    star_legend = page.locator("#outcome-plot .legendtext", has_text="recommended:")
    expect(star_legend).to_contain_text(f"recommended: {rec.recommended_dose_gy:g} Gy/fx")

    # Zoom in by dragging a box on the plot; moving the dose must keep the zoom.
    box = page.locator("#outcome-plot .nsewdrag").first.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + 0.2 * box["width"], box["y"] + 0.2 * box["height"])
    page.mouse.down()
    page.mouse.move(box["x"] + 0.7 * box["width"], box["y"] + 0.8 * box["height"], steps=8)
    page.mouse.up()
    range_js = "() => document.getElementById('outcome-plot').layout.xaxis.range"
    page.wait_for_function(f"() => ({range_js})()[1] < 0.95")
    zoomed = page.evaluate(range_js)

    # Move the dose slider: the summary follows, the recommendation stays.
    target = 2.5 if rec.recommended_dose_gy != 2.5 else 3.0
    j = rec.doses_gy.index(target)
    slider = controller.InputSlider(page, "outcome-dose")
    slider.set(f"{target:g} Gy")
    slider.expect_value(f"{target:g} Gy")
    expect(summary).to_contain_text(f"At {target:g} Gy/fx (selected)")
    expect(summary).to_contain_text(f"TCP {100 * rec.tcp[j]:.1f} %, NTCP {100 * rec.ntcp[j]:.1f} %")
    expect(summary).to_contain_text(recommended)
    # The open circle moved to the selected dose in the plot itself.
    page.wait_for_function(
        "(tcp) => Math.abs(document.getElementById('outcome-plot').data"
        ".find((t) => t.marker && t.marker.symbol === 'circle-open').x[0] - tcp) < 1e-9",
        arg=rec.tcp[j],
    )
    assert page.evaluate(range_js) == pytest.approx(zoomed)

    # A physician note (with markup that must stay text) goes into the report.
    open_tab(page, "Data input")
    note = page.get_by_label(f"Notes for {PATIENT}")
    note.fill("Escalate: poor mid-treatment response. <b>check</b>")
    note.blur()
    open_tab(page, "Report")
    expect(page.locator("#report-contents")).to_contain_text("Physician notes: 1 of 1 cases")

    with page.expect_download() as download_info:
        controller.DownloadButton(page, "report-download").click()
    download = download_info.value
    assert download.suggested_filename == "artds-report-nsclc.html"
    assert PATIENT not in download.suggested_filename
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    html = saved.read_text(encoding="utf-8")
    assert PATIENT in html
    assert f'<td class="num dose">{rec.recommended_dose_gy:g}</td>' in html
    assert "Escalate: poor mid-treatment response. &lt;b&gt;check&lt;/b&gt;" in html
    assert "reference model (virtual trial ground truth)" in html
    assert "a single model (no ensemble spread)" in html
    assert rec.input_hash in html
    assert console_errors == []

    # The report opens offline: three interactive plots, no request leaves the file.
    external: list[str] = []

    def block(route: Route) -> None:
        external.append(route.request.url)
        route.abort()

    report_page = page.context.new_page()
    report_page.route("http://**/*", block)
    report_page.route("https://**/*", block)
    report_page.goto(saved.as_uri())
    expect(report_page.locator(".js-plotly-plot")).to_have_count(3)
    expect(report_page.locator("#summary")).to_contain_text(PATIENT)
    assert external == []
    report_page.close()
    wait_idle(page)
