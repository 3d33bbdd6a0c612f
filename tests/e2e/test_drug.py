"""Systemic therapy panel: pick an example line, see the drugs' table with its AUROC columns and the
gene bars; a bad upload is refused with its message, a good one is predicted."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from shiny.playwright import controller

from app import shared
from app.panels.drug import RESVAE_INTERPRETATION, TOP_FEATURES, probability
from engine import settings
from tests.e2e.helpers import assert_clean, open_app, open_tab, wait_idle

pytestmark = pytest.mark.e2e

SLOW_MS = 60_000
"""Wait for predictions this long (a hang guard on a busy machine, not a check)."""


def _models():
    models = shared.DRUG_MODELS
    if models is None:
        pytest.skip(f"no served drug models: {shared.DRUG_MODELS_ERROR}")
    return models


def test_clinician_picks_a_line_and_sees_drugs_auroc_and_gene_bars(
    page: Page, app_url: str, console_errors: list[str]
) -> None:
    models = _models()
    data = shared.DRUG_DATA
    open_app(page, app_url, role="clinician")
    open_tab(page, "Systemic therapy")
    line = data.lines[data.cell_line_names.index("A549")]
    controller.InputSelectize(page, "drug-line").set(line)
    wait_idle(page)
    table = page.locator("#drug-table table")
    expect(table).to_be_visible(timeout=SLOW_MS)
    head = table.locator("thead")
    for column in ("P(resistant)", "CV AUROC", "Naive AUROC", "Held out", "Measured"):
        expect(head).to_contain_text(column)
    i = data.lines.index(line)
    preds = {p.drug: p for p in models.predict(data.x[i:i + 1])[0]}
    rt = [d for d in models.drugs if models.info(d)["rt_context"]]
    expect(table.locator("tbody tr")).to_have_count(len(rt))
    drug = rt[0]
    row = table.locator(f"tbody tr[data-drug='{drug}']")
    expect(row).to_contain_text(probability(preds[drug].p_resistant))
    expect(row).to_contain_text(f"{models.info(drug)['cv']['auroc']:.2f}")
    expect(page.locator("#drug-summary")).to_contain_text("A549 is a training line")
    expect(page.locator("#drug-probabilities.js-plotly-plot")).to_be_visible()
    bars = page.locator("#drug-genes.js-plotly-plot")
    expect(bars).to_be_visible()
    expect(bars.locator(".bars .point")).to_have_count(TOP_FEATURES)
    tissue = page.locator("#drug-tissue.js-plotly-plot")
    expect(tissue).to_be_visible()
    expect(page.locator("#drug-tissue_note")).to_contain_text("in lung")
    if RESVAE_INTERPRETATION is not None:  # the Res-VAE's bars under the trees', each labelled
        expect(tissue.locator(".barlayer .trace")).to_have_count(2)
        expect(tissue).to_contain_text("mean |SHAP|")
        expect(tissue).to_contain_text("mean |integrated gradients|")
        expect(page.locator("#drug-tissue_note")).to_contain_text(
            RESVAE_INTERPRETATION["model_label"])

    # every drug, not only those given with radiotherapy
    controller.InputCheckbox(page, "drug-rt_only").set(False)
    wait_idle(page)
    expect(table.locator("tbody tr")).to_have_count(len(models.drugs), timeout=SLOW_MS)
    assert_clean(page, console_errors)


def test_bad_upload_is_refused_and_a_good_one_predicted(
    page: Page, app_url: str, console_errors: list[str], tmp_path: Path
) -> None:
    _models()
    open_app(page, app_url, role="physicist")
    open_tab(page, "Systemic therapy")
    controller.InputRadioButtons(page, "drug-source").set("upload")
    bad = tmp_path / "bad.csv"
    bad.write_text("sample_id,tissue,EGFR,KRAS\nT1,lung,1.2,abc\n")
    page.locator("#drug-upload").set_input_files(str(bad))
    status = page.locator("#drug-upload_status")
    expect(status).to_contain_text("bad.csv was refused", timeout=SLOW_MS)
    expect(status).to_contain_text("missing gene column(s)")
    expect(page.locator("#drug-table table")).to_have_count(0)

    page.locator("#drug-upload").set_input_files(
        str(settings.EXAMPLES_DIR / "drug_profiles.csv"))
    expect(status).to_contain_text("6 samples read", timeout=SLOW_MS)
    table = page.locator("#drug-table table")
    expect(table).to_be_visible(timeout=SLOW_MS)
    expect(table.locator("thead")).not_to_contain_text("Held out")
    expect(page.locator("#drug-genes.js-plotly-plot .bars .point")).to_have_count(TOP_FEATURES)
    assert_clean(page, console_errors)
