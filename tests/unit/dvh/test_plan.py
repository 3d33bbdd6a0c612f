"""Importing a plan (engine/dvh/plan.py, roles.py, features.py, constraints.py): features as the
protocols define them, roles found and chosen, fractions, constraints, warnings, privacy."""

from __future__ import annotations

import json

import pytest

from engine.core.protocols import load_protocol
from engine.dvh import PlanError, evaluate_plan, import_plan, read_plan
from engine.dvh.phantom import PHANTOM_PATIENT_ID
from engine.settings import ROOT_DIR
from tests.unit.dvh.helpers import edit, liver_files, named, sphere_files, thorax_files

EXAMPLES = ROOT_DIR / "assets" / "examples" / "plan"


@pytest.fixture(scope="module")
def sphere_plan():
    """60 Gy uniform over a GTV sphere in a Lungs box, 30 fractions."""
    return import_plan("nsclc", **named(sphere_files()))


@pytest.fixture(scope="module")
def thorax():
    return import_plan("nsclc", **named(thorax_files()))


def test_uniform_plan_features_are_the_dose_scaled_to_the_evaluation_fractions(sphere_plan):
    # gEUD of a uniform 60 Gy is 60 Gy for any a; after 20 of the 30 fractions: 40 Gy.
    assert sphere_plan.features["tumour_geud_gy"] == pytest.approx(40.0, abs=1e-9)
    assert sphere_plan.features["lung_geud_gy"] == pytest.approx(40.0, abs=1e-9)
    tumour = sphere_plan.feature_details[0]
    assert (tumour.role, tumour.structure, tumour.geud_a, tumour.scale) == (
        "tumour", "GTV", -10.0, pytest.approx(20 / 30))
    assert (sphere_plan.n_plan_fractions, sphere_plan.fractions_source) == (
        30, "RP.dcm NumberOfFractionsPlanned")
    assert sphere_plan.plan["prescription_gy"] == 60.0
    assert sphere_plan.plan["dose_per_fraction_gy"] == 2.0


def test_lungs_minus_gtv_is_built_and_said(sphere_plan):
    lung = sphere_plan.roles["lung"]
    assert (lung.structure, lung.plus, lung.minus, lung.how) == (
        "Lungs-GTV", ("Lungs",), ("GTV",), "built")
    assert "the plan has no Lungs-GTV: role lung uses Lungs-GTV, built as Lungs minus GTV" in \
        sphere_plan.warnings
    built = sphere_plan.structure("Lungs-GTV")
    assert built.derived and built.roles == ("lung",) and built.alpha_beta_gy == 4.0
    assert built.metrics["volume_cc"] == pytest.approx(
        sphere_plan.structure("Lungs").metrics["volume_cc"]
        - sphere_plan.structure("GTV").metrics["volume_cc"], rel=1e-3)


def test_constraints_fail_with_a_negative_margin_and_missing_roles_are_not_checked(sphere_plan):
    by_name = {c.constraint.name: c for c in sphere_plan.constraints}
    v20 = by_name["lung_v20"]  # the whole "lung" receives 60 Gy
    assert (v20.value, v20.passed, v20.margin) == (pytest.approx(100.0), False,
                                                    pytest.approx(-65.0))
    assert by_name["lung_mean"].passed is False
    heart = by_name["heart_v25"]
    assert (heart.passed, heart.value, heart.note) == (None, None, "no structure for role heart")
    assert "no structure for role heart (Heart): its constraints are not checked" in \
        sphere_plan.warnings


def test_thorax_plan_is_within_the_protocol_and_its_constraints(thorax):
    nsclc = load_protocol("nsclc")
    for name, value in thorax.features.items():
        feat = nsclc.feature(name)
        assert feat.min <= value <= feat.max
    assert thorax.features["tumour_geud_gy"] == pytest.approx(40.5, abs=0.3)
    assert 8.0 < thorax.features["lung_geud_gy"] < 11.0
    assert thorax.roles["lung"].structure == "Lung_L+Lung_R-GTV"
    assert all(c.passed for c in thorax.constraints)
    cord = next(c for c in thorax.constraints if c.constraint.name == "cord_max")
    # EQD2 (α/β 2 Gy) of a D0.03cc below 2 Gy per fraction is below the physical dose.
    assert cord.value < thorax.structure("SpinalCord").metrics["max_gy"]
    assert thorax.structure("SpinalCord").metrics["max_eqd2_gy"] == pytest.approx(cord.value)
    assert set(thorax.structure("GTV").metrics) >= {
        "volume_cc", "mean_gy", "max_gy", "d98_gy", "d2_gy", "v5_percent", "v20_percent",
        "mean_eqd2_gy", "d98_eqd2_gy"}


def test_hcc_plan_checks_only_constraints_for_its_fractions():
    result = import_plan("hcc", **named(liver_files()))
    by_name = {c.constraint.name: c for c in result.constraints}
    assert by_name["liver_mean_3fx"].passed is True
    assert by_name["liver_mean_6fx"].passed is None
    assert by_name["liver_mean_6fx"].note == ("defined for plans of 6 fraction(s); this plan "
                                              "has 3")
    assert by_name["liver_spared_700cc"].value > 700
    assert result.roles["liver"].structure == "Liver-GTV"
    hcc = load_protocol("hcc")
    for name, value in result.features.items():  # 3 of 3 fractions: no scaling
        assert hcc.feature(name).min <= value <= hcc.feature(name).max
    assert result.feature_details[0].scale == 1.0
    # The site's GTV volume fills the covariate tumour_volume_cc.
    assert result.features["tumour_volume_cc"] == pytest.approx(
        result.structure("GTV").metrics["volume_cc"])
    assert result.features["tumour_volume_cc"] == pytest.approx(
        4 / 3 * 3.14159265 * 18.0**3 / 1000, rel=0.03)
    volume = result.feature_details[2]
    assert (volume.quantity, volume.unit, volume.geud_a) == ("volume_cc", "cm³", None)


def test_a_volume_feature_needs_absolute_volumes():
    text = ("structure,dose_gy,volume_percent\nGTV,0,100\nGTV,45,0\n"
            "Liver-GTV,0,100\nLiver-GTV,20,0\n")
    result = import_plan("hcc", dvh=("dvh.csv", text.encode()), plan_fractions=3)
    assert "tumour_volume_cc" not in result.features
    assert ("tumour_volume_cc is not filled from the plan: the DVH gives volumes in % only"
            in result.warnings)


def test_chosen_structures_and_candidates(sphere_plan):
    chosen = import_plan("nsclc", **named(sphere_files()), structures={"lung": "Lungs"})
    assert chosen.roles["lung"].how == "chosen" and chosen.roles["lung"].structure == "Lungs"
    assert not any("built" in w for w in chosen.warnings)
    # An expression of plan structures is built on request.
    expr = import_plan("nsclc", **named(sphere_files()), structures={"lung": "lungs - gtv"})
    assert (expr.roles["lung"].plus, expr.roles["lung"].minus) == (("Lungs",), ("GTV",))
    assert expr.features["lung_geud_gy"] == pytest.approx(sphere_plan.features["lung_geud_gy"])
    # Drop-down choices: current first, then what can be built, then every structure.
    assert sphere_plan.role_candidates["lung"] == ["Lungs-GTV", "GTV", "Lungs"]
    assert sphere_plan.role_candidates["tumour"] == ["GTV", "Lungs"]


def test_unknown_role_or_structure_is_refused_listing_the_choices():
    with pytest.raises(PlanError, match=r"^unknown role 'lungs'; the roles of this protocol are "
                                        r"tumour, lung, heart, esophagus, spinal_cord$"):
        import_plan("nsclc", **named(sphere_files()), structures={"lungs": "Lungs"})
    with pytest.raises(PlanError, match=r"^structure 'Lung' chosen for role lung is not in "
                                        r"RS.dcm; structures found: GTV, Lungs$"):
        import_plan("nsclc", **named(sphere_files()), structures={"lung": "Lung"})


def test_fractions_from_the_user_the_plan_or_refused():
    files = named(sphere_files())
    override = import_plan("nsclc", **files, plan_fractions=20)
    assert override.features["tumour_geud_gy"] == pytest.approx(60.0)
    assert "--plan-fractions 20 overrides the 30 fractions of RP.dcm" in override.warnings
    no_plan = {k: v for k, v in files.items() if k != "rtplan"}
    with pytest.raises(PlanError, match=r"^the number of fractions the plan's dose covers is "
                                        r"needed .*: give the RTPLAN or --plan-fractions N$"):
        import_plan("nsclc", **no_plan)
    with pytest.raises(PlanError, match=r"--plan-fractions = 0 is out of range; accepted an "
                                        r"integer in \[1, 100\]"):
        import_plan("nsclc", **no_plan, plan_fractions=0)

    def two_groups(ds):
        ds.FractionGroupSequence.append(ds.FractionGroupSequence[0])

    two = {**files, "rtplan": ("RP.dcm", edit(sphere_files()["RTPLAN"], two_groups))}
    with pytest.raises(PlanError, match=r"\(RP.dcm has 2 fraction groups \(30, 30 fractions\)"):
        import_plan("nsclc", **two)
    assert import_plan("nsclc", **two, plan_fractions=30).n_plan_fractions == 30


def test_a_dose_file_of_one_fraction_is_multiplied_by_the_fractions():
    def one_fraction(ds):
        ds.DoseSummationType = "FRACTION"
        ds.DoseGridScaling = f"{float(ds.DoseGridScaling) / 30:.10g}"

    files = named(sphere_files())
    files["rtdose"] = ("RD.dcm", edit(sphere_files()["RTDOSE"], one_fraction))
    result = import_plan("nsclc", **files)
    assert result.features["tumour_geud_gy"] == pytest.approx(40.0, rel=1e-6)
    assert result.plan["dose_summation_type"] == "FRACTION"
    assert any("holds one fraction's dose" in w for w in result.warnings)


def test_values_outside_the_feature_range_are_kept_and_warned():
    result = import_plan("nsclc", **named(sphere_files(dose_gy=150.0)))
    assert result.features["tumour_geud_gy"] == pytest.approx(100.0)
    assert not result.feature_details[0].in_range
    assert any(w.startswith("tumour_geud_gy = 100.00 Gy is outside the protocol's accepted "
                            "range 10–80 Gy") for w in result.warnings)


def test_no_patient_identifier_reaches_the_result(sphere_plan):
    text = json.dumps(sphere_plan.to_dict(curves=True))
    assert PHANTOM_PATIENT_ID not in text and "Phantom^Analytic" not in text
    table = import_plan("hcc", dvh=EXAMPLES / "hcc_phantom_eclipse.txt", plan_fractions=3)
    text = json.dumps(table.to_dict(curves=True))
    assert PHANTOM_PATIENT_ID not in text and "Phantom^Analytic" not in text


def test_to_dict_is_the_documented_json(sphere_plan):
    out = sphere_plan.to_dict()
    assert list(out) == ["protocol", "source", "files", "plan", "features", "feature_details",
                         "roles", "role_candidates", "structures", "constraints", "warnings"]
    assert out["files"] == {"rtdose": "RD.dcm", "rtstruct": "RS.dcm", "rtplan": "RP.dcm"}
    assert set(out["constraints"][0]) >= {"name", "limit", "value", "passed", "margin",
                                          "source", "unit", "note"}
    assert out["structures"]["GTV"]["volume_cc"] == pytest.approx(33.5, abs=0.4)
    curves = sphere_plan.to_dict(curves=True)["curves"]["GTV"]
    assert curves["volume_percent"][0] == 100.0 and curves["volume_percent"][-1] == 0.0
    json.dumps(out, allow_nan=False)


def test_dvh_table_import():
    result = import_plan("nsclc", dvh=EXAMPLES / "nsclc_phantom_dvh.csv", plan_fractions=30)
    assert result.source == "dvh" and result.roles["lung"].structure == "Lungs-GTV"
    dicom = import_plan("nsclc", rtdose=EXAMPLES / "nsclc_phantom" / "RD.dcm",
                        rtstruct=EXAMPLES / "nsclc_phantom" / "RS.dcm",
                        rtplan=EXAMPLES / "nsclc_phantom" / "RP.dcm")
    for name, value in dicom.features.items():  # the CSV was exported from the same plan
        assert result.features[name] == pytest.approx(value, abs=0.15)
    with pytest.raises(PlanError, match=r"combines structures, which a DVH table "
                                        r"\(nsclc_phantom_dvh.csv\) cannot do"):
        import_plan("nsclc", dvh=EXAMPLES / "nsclc_phantom_dvh.csv", plan_fractions=30,
                    structures={"lung": "Lung_L+Lung_R-GTV"})
    with pytest.raises(PlanError, match=r"give either a DVH table or the RTDOSE and RTSTRUCT"):
        import_plan("nsclc", dvh=EXAMPLES / "nsclc_phantom_dvh.csv",
                    rtdose=EXAMPLES / "nsclc_phantom" / "RD.dcm", plan_fractions=30)


def test_missing_dicom_file_is_named():
    with pytest.raises(PlanError, match=r"^the RTSTRUCT file is missing"):
        import_plan("nsclc", rtdose=("RD.dcm", sphere_files()["RTDOSE"]), plan_fractions=30)


def test_reevaluating_keeps_the_dvhs_already_computed():
    data = read_plan(**named(sphere_files()))
    first = evaluate_plan(data, "nsclc")
    gtv = data.dvh(("GTV",), label="GTV")
    assert data.dvh(("GTV",), label="GTV") is gtv
    again = evaluate_plan(data, "nsclc", structures={"lung": "Lungs"})
    assert again.features["tumour_geud_gy"] == first.features["tumour_geud_gy"]
    steps = []
    evaluate_plan(data, "nsclc", progress=lambda done, what: steps.append((done, what)))
    assert steps[0] == (0.0, "DVH of GTV") and steps[-1][0] == 1.0
    assert [d for d, _ in steps] == sorted(d for d, _ in steps)


def test_a_structure_no_role_needs_may_fail_with_a_warning():
    files = dict(thorax_files())

    def move_trachea(ds):  # push one contour plane of the Trachea beyond the dose grid
        number = next(r.ROINumber for r in ds.StructureSetROISequence if r.ROIName == "Trachea")
        item = next(i for i in ds.ROIContourSequence if i.ReferencedROINumber == number)
        data = [float(v) for v in item.ContourSequence[0].ContourData]
        item.ContourSequence[0].ContourData = [v + 400.0 if k % 3 == 0 else v
                                               for k, v in enumerate(data)]

    files["RTSTRUCT"] = edit(files["RTSTRUCT"], move_trachea)
    result = import_plan("nsclc", **named(files))
    assert any(w.startswith("no DVH for Trachea: the dose grid of RD.dcm does not cover "
                            "structure Trachea") for w in result.warnings)
    assert "Trachea" not in [s.name for s in result.structures]


def test_constraint_rows_for_app_report_and_cli(sphere_plan):
    rows = {c.constraint.name: c.display() for c in sphere_plan.constraints}
    assert rows["lung_v20"] == {
        "constraint": "Lungs−GTV V20 ≤ 35 %", "structure": "Lungs-GTV", "value": "100.00 %",
        "limit": "≤ 35 %", "margin": "-65.00 %", "status": "not met", "note": "",
        "source": rows["lung_v20"]["source"]}
    assert rows["heart_v25"]["status"] == "not checked"
    assert rows["heart_v25"]["value"] == "–" and rows["heart_v25"]["structure"] == "–"
    assert rows["cord_max"]["limit"] == "≤ 50 Gy EQD2"


def test_several_matching_structures_are_said():
    def second_gtv(ds):  # rename the Lungs box: a plan with GTV and GTVp
        ds.StructureSetROISequence[1].ROIName = "GTVp"

    files = dict(sphere_files())
    files["RTSTRUCT"] = edit(files["RTSTRUCT"], second_gtv)
    result = import_plan("nsclc", **named(files), structures={"lung": "GTVp-GTV"})
    assert result.roles["tumour"].structure == "GTV"
    assert ("several structures could be role tumour (GTV, GTVp): GTV is used; choose another "
            "with --structure tumour=NAME") in result.warnings
