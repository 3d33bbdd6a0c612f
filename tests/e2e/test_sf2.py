"""SF2 panel: pick a line, see SF2 and the gene-influence bars, send α to the planner (and see it
arrive there); upload."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from shiny.playwright import controller

from app import shared
from tests.e2e.helpers import assert_clean, open_app, open_tab, wait_idle

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SLOW_MS = 60_000
"""Wait for uploads and predictions this long (a hang guard on a busy machine, not a check)."""



def test_pick_a_line_see_sf2_and_influence_then_send_alpha(
    page: Page, app_url: str, console_errors: list[str]
) -> None:
    open_app(page, app_url)
    open_tab(page, "SF2")
    model = shared.SF2_MODEL
    assert model is not None, "the shipped SF2 model must load"
    ref = model.reference
    rid = str(ref.index[ref["cell_line"] == "NCI-H1299"][0])
    expected = model.predict_lines([rid])[0]

    controller.InputSelectize(page, "sf2-line").set(rid)
    wait_idle(page)
    summary = page.locator("#sf2-summary")
    expect(summary).to_contain_text(f"{expected.sf2:.3f} ± {expected.sf2_sd:.3f}",
                                    timeout=SLOW_MS)
    measured = summary.locator("tr", has_text="Measured SF2")
    expect(measured).to_contain_text(f"{expected.measured_sf2:.3f}")
    expect(summary).to_contain_text("NCI-H1299: adapted on 5 of the 12 labelled lines")
    expect(page.locator("#sf2-population.js-plotly-plot")).to_be_visible()
    influence = page.locator("#sf2-influence.js-plotly-plot")
    expect(influence).to_be_visible()
    expect(influence.locator(".bars .point")).to_have_count(len(model.genes))
    expect(influence.locator(".ytick").first).to_be_attached()
    expect(page.locator("#sf2-heatmap.js-plotly-plot")).to_be_visible()

    expect(page.locator("#sf2-alpha_status")).to_have_text("")
    controller.InputActionButton(page, "sf2-use_alpha").click()
    status = page.locator("#sf2-alpha_status")
    expect(status).to_contain_text(
        f"α = {expected.alpha_per_gy:.3f} Gy⁻¹ from NCI-H1299 (SF2 {expected.sf2:.3f}")
    expect(status).to_contain_text("set for the fractionation planner")
    assert_clean(page, console_errors)

    # The planner receives it: its patient-α field holds the SF2 panel's α, and it is used.
    open_tab(page, "Fractionation planner")
    controller.InputCheckbox(page, "planner-use_patient_alpha").expect_checked(True)
    controller.InputNumeric(page, "planner-patient_alpha").expect_value(
        str(round(expected.alpha_per_gy, 4)))
    assert_clean(page, console_errors)


def test_upload_full_profiles_gives_rsi_and_bad_file_is_refused(
    page: Page, app_url: str, console_errors: list[str], tmp_path: Path
) -> None:
    assert shared.SF2_MODEL is not None, "the shipped SF2 model must load"
    open_app(page, app_url)
    open_tab(page, "SF2")
    controller.InputRadioButtons(page, "sf2-source").set("upload")
    page.set_input_files("#sf2-upload", ROOT / "assets/examples/sf2_full_profiles.csv")
    expect(page.locator("#sf2-upload_status")).to_contain_text("5 samples read",
                                                               timeout=SLOW_MS)
    controller.InputSelect(page, "sf2-sample").set("NB1")
    wait_idle(page)
    summary = page.locator("#sf2-summary")
    expect(summary).to_contain_text("NB1: adapted on", timeout=SLOW_MS)
    expect(summary).to_contain_text("RSI (10 genes)")
    expect(summary).to_contain_text("GARD")
    assert_clean(page, console_errors)

    bad = tmp_path / "bad.csv"
    bad.write_text("sample_id,tissue,PIK3CB\n<b>x</b>,lung,7.5\n")
    page.set_input_files("#sf2-upload", bad)
    status = page.locator("#sf2-upload_status")
    expect(status).to_contain_text("bad.csv was refused", timeout=SLOW_MS)
    expect(status).to_contain_text("missing gene column(s)")
    expect(page.locator("#sf2-upload_status b")).to_have_count(0)  # user text stays escaped
