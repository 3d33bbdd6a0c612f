"""Import plan (DICOM-RT or DVH) in the Data input panel (issue #15 points 5 and 6).

The example NSCLC thorax phantom (assets/examples/plan) is uploaded as DICOM-RT and as its DVH
CSV; the structures, roles, features and constraints shown are checked against the engine's own
import of the same files, the DVH plot is drawn, "Use these features" fills the form's dosimetric
fields and gives them to a patient whose recommendation (reference model) follows, and the report
carries the plan. A file that is not DICOM is refused with its message.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from playwright.sync_api import Page, expect
from shiny.playwright import controller

from app import shared
from engine.arclids.architectures import REFERENCE
from engine.arclids.recommend import recommend
from engine.core.schema import validate_dataframe
from engine.dvh import import_plan
from engine.settings import ROOT_DIR
from tests.e2e.helpers import assert_clean, open_app, open_tab, wait_idle

pytestmark = pytest.mark.e2e

PROTOCOL = "nsclc"
PLAN_DIR = ROOT_DIR / "assets" / "examples" / "plan"
DICOM = [PLAN_DIR / "nsclc_phantom" / name for name in ("RD.dcm", "RS.dcm", "RP.dcm")]
DVH_CSV = PLAN_DIR / "nsclc_phantom_dvh.csv"
IMPORT_LIMIT_MS = 120_000
"""How long an import may take before the test gives up (a hang guard on a loaded machine)."""


def _engine_import(**files):
    return import_plan(PROTOCOL, **files)


def _has_trace(meta: str) -> str:
    return ("() => (document.getElementById('data-plan_dvh').data || [])"
            f".some((t) => t.meta === '{meta}')")


def _expect_imported(page: Page) -> None:
    expect(page.locator("#data-plan_status .plan-summary")).to_be_visible(timeout=IMPORT_LIMIT_MS)
    wait_idle(page)


def test_dicom_plan_fills_the_form_and_the_recommendation_follows(
    page: Page, app_url: str, console_errors: list[str], tmp_path: Path
) -> None:
    result = _engine_import(rtdose=DICOM[0], rtstruct=DICOM[1], rtplan=DICOM[2])
    values = {k: round(v, 2) for k, v in result.features.items()}
    open_app(page, app_url, role="clinician")
    controller.InputActionButton(page, "data-clear").click()
    controller.InputSelect(page, "model-choice").set(REFERENCE)
    expect(page.locator("#data-plan_status")).to_contain_text("No plan imported yet")

    page.locator("#data-plan_files").set_input_files([str(p) for p in DICOM])
    _expect_imported(page)
    summary = page.locator("#data-plan_status .plan-summary")
    expect(summary).to_contain_text("RD.dcm (RTDOSE), RS.dcm (RTSTRUCT), RP.dcm (RTPLAN)")
    expect(summary).to_contain_text(f"{len(result.structures)} structures with a DVH")
    expect(summary).to_contain_text("covers 30 fractions (RP.dcm NumberOfFractionsPlanned)")

    # Structures and their roles, as the engine assigns them; the built lung said so.
    for role, a in result.roles.items():
        expect(page.locator(f"#data-plan_role_{role}")).to_have_value(a.structure)
    expect(page.locator(".plan-role-lung")).to_contain_text("built from other structures")
    expect(page.locator("#data-plan_warnings")).to_contain_text("the plan has no Lungs-GTV")

    # Features, the DVH plot and the constraint table.
    for f in result.feature_details:
        expect(page.locator(f".plan-feature-{f.feature}")).to_contain_text(
            f"{f.value:.2f} {f.unit}")
    page.wait_for_function(_has_trace("GTV"), timeout=IMPORT_LIMIT_MS)
    page.wait_for_function(_has_trace("constraint"))
    rows = page.locator("#data-plan_constraints tr.constraint")
    expect(rows).to_have_count(len(result.constraints))
    for i, c in enumerate(result.constraints):
        shown = c.display()
        for key in ("constraint", "value", "limit", "margin", "status"):
            expect(rows.nth(i)).to_contain_text(shown[key])
    expect(rows.nth(0)).to_contain_text("QUANTEC lung")
    expect(page.locator("#data-plan_metrics tbody tr")).to_have_count(len(result.structures))

    # "Use these features" for the patient in the form: fields filled, patient added.
    controller.InputActionButton(page, "data-plan_use").click()
    expect(page.locator("#plan-use-line")).to_contain_text("given to NEW-001")
    for name, value in values.items():
        expect(page.locator(f"#data-m_{name}")).to_have_value(f"{value:g}")
    controller.InputSelectize(page, "data-show").expect_selected(["NEW-001"])

    # The recommendation follows the imported features (the example's own differ).
    p = shared.PROTOCOLS[PROTOCOL]
    first = shared.EXAMPLES[PROTOCOL].iloc[0]
    row = {"patient_id": "NEW-001", "dose_eval_gy": first["dose_eval_gy"],
           **{f: first[f] for f in p.feature_names}}
    (before,) = recommend(validate_dataframe(pd.DataFrame([row]), p), p,
                          shared.REFERENCE_MODELS[PROTOCOL])
    (after,) = recommend(validate_dataframe(pd.DataFrame([row | values]), p), p,
                         shared.REFERENCE_MODELS[PROTOCOL])
    tcp_after = f"TCP {100 * after.recommended_tcp:.1f} %"
    assert tcp_after != f"TCP {100 * before.recommended_tcp:.1f} %"
    open_tab(page, "Outcome space")
    card = page.locator("#outcome-summary .case-summary")
    expect(card).to_have_count(1)
    expect(card.locator(".recommended-line")).to_contain_text(tcp_after)
    assert_clean(page, console_errors)


def test_dvh_table_for_a_loaded_case_and_the_report(
    page: Page, app_url: str, console_errors: list[str], tmp_path: Path
) -> None:
    result = _engine_import(dvh=DVH_CSV, plan_fractions=30)
    patient = str(shared.EXAMPLES[PROTOCOL].iloc[1]["patient_id"])
    open_app(page, app_url, role="physicist")
    controller.InputActionButton(page, "data-clear").click()
    controller.InputSelect(page, "data-example").set(patient)
    controller.InputActionButton(page, "data-load_example").click()
    expect(page.locator("#data-example_status")).to_contain_text("1 case")

    page.locator("#data-plan_files").set_input_files(str(DVH_CSV))
    expect(page.locator("#data-plan_status .plan-needs-fractions")).to_contain_text(
        "Enter the number of fractions", timeout=IMPORT_LIMIT_MS)
    controller.InputNumeric(page, "data-plan_fractions").set("30")
    _expect_imported(page)
    expect(page.locator("#data-plan_status")).to_contain_text(
        "nsclc_phantom_dvh.csv (DVH)")
    expect(page.locator("#data-plan_status")).to_contain_text("30 fractions (entered above)")
    for f in result.feature_details:
        expect(page.locator(f".plan-feature-{f.feature}")).to_contain_text(
            f"{f.value:.2f} {f.unit}")
    page.wait_for_function(_has_trace("Lungs-GTV"), timeout=IMPORT_LIMIT_MS)

    # Another structure for a role re-evaluates.
    lung_r = _engine_import(dvh=DVH_CSV, plan_fractions=30, structures={"lung": "Lung_R"})
    controller.InputSelect(page, "data-plan_role_lung").set("Lung_R")
    expect(page.locator(".plan-feature-lung_geud_gy")).to_contain_text(
        f"{lung_r.features['lung_geud_gy']:.2f} Gy", timeout=IMPORT_LIMIT_MS)
    expect(page.locator(".plan-role-lung")).to_contain_text("your choice")

    controller.InputSelect(page, "data-plan_target").set(patient)
    controller.InputActionButton(page, "data-plan_use").click()
    expect(page.locator("#plan-use-line")).to_contain_text(f"given to {patient}")
    versions = page.locator("#data-versions")
    page.locator("#data-versions summary").first.click()
    expect(versions).to_contain_text(re.compile(r"changed: .*lung_geud_gy"))

    open_tab(page, "Report")
    expect(page.locator("#report-contents .report-plans")).to_contain_text(patient)
    with page.expect_download() as info:
        controller.DownloadButton(page, "report-download").click()
    saved = tmp_path / "report.html"
    info.value.save_as(saved)
    html = saved.read_text(encoding="utf-8")
    assert f"{patient}: nsclc_phantom_dvh.csv (DVH)" in html
    assert 'id="artds-dvh-0"' in html
    assert f"{lung_r.features['lung_geud_gy']:.2f} Gy" in html
    assert "mean dose of Lung_R × 20/30 fractions" in html
    assert_clean(page, console_errors)


def test_a_file_that_is_not_dicom_is_refused_with_its_name(
    page: Page, app_url: str, console_errors: list[str], tmp_path: Path
) -> None:
    bad = tmp_path / "notes.dcm"
    bad.write_text("not a DICOM file\n")
    open_app(page, app_url, role="clinician")
    page.locator("#data-plan_files").set_input_files([str(bad), str(DICOM[1])])
    refusal = page.locator("#data-plan_status .plan-refusal")
    expect(refusal).to_contain_text("The plan was not imported.", timeout=IMPORT_LIMIT_MS)
    expect(refusal).to_contain_text("notes.dcm is not a DICOM file")
    expect(page.locator("#data-plan_features")).to_be_empty()
    assert_clean(page, console_errors)
