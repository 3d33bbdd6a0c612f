"""`artds dvh features`, in-process through engine.cli.main, on the example plan files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.cli import main
from engine.dvh.phantom import PHANTOM_PATIENT_ID

ROOT = Path(__file__).resolve().parents[3]
PLAN = ROOT / "assets" / "examples" / "plan"
DICOM = ["--rtdose", str(PLAN / "nsclc_phantom" / "RD.dcm"),
         "--rtstruct", str(PLAN / "nsclc_phantom" / "RS.dcm")]


def run_json(capsys, *args: str) -> dict:
    assert main(["dvh", "features", *args, "--json"]) == 0
    out = capsys.readouterr().out
    assert PHANTOM_PATIENT_ID not in out and "Phantom^Analytic" not in out
    return json.loads(out)


def test_dicom_plan_json(capsys):
    out = run_json(capsys, "--protocol", "nsclc", *DICOM, "--rtplan",
                   str(PLAN / "nsclc_phantom" / "RP.dcm"))
    assert out["protocol"] == "nsclc" and out["source"] == "dicom"
    assert set(out["features"]) == {"tumour_geud_gy", "lung_geud_gy"}
    assert 38.0 < out["features"]["tumour_geud_gy"] < 42.0
    assert out["plan"]["n_fractions"] == 30
    assert out["roles"]["lung"]["structure"] == "Lung_L+Lung_R-GTV"
    gtv = out["structures"]["GTV"]
    assert {"volume_cc", "mean_gy", "max_gy", "d98_gy", "d2_gy", "v20_percent"} <= set(gtv)
    assert all({"name", "limit", "value", "passed", "margin", "source"} <= set(c)
               for c in out["constraints"])
    assert any("built as the union of Lung_L and Lung_R minus GTV" in w for w in out["warnings"])
    assert "curves" not in out
    assert out["features"]["tumour_geud_gy"] == round(out["features"]["tumour_geud_gy"], 6)


def test_fractions_and_roles_from_the_command_line(capsys):
    out = run_json(capsys, "--protocol", "nsclc", *DICOM, "--plan-fractions", "20",
                   "--structure", "lung=Lung_R", "--structure", "tumour=GTV", "--curves")
    assert out["plan"]["fractions_source"] == "--plan-fractions"
    assert out["roles"]["lung"] == {**out["roles"]["lung"], "structure": "Lung_R",
                                    "how": "chosen"}
    assert out["feature_details"][0]["scale"] == 1.0
    assert out["curves"]["GTV"]["volume_percent"][0] == 100.0


@pytest.mark.parametrize(("protocol", "name", "fractions"), [
    ("nsclc", "nsclc_phantom_dvh.csv", "30"), ("hcc", "hcc_phantom_eclipse.txt", "3")])
def test_dvh_file_json(capsys, protocol, name, fractions):
    out = run_json(capsys, "--protocol", protocol, "--dvh", str(PLAN / name),
                   "--plan-fractions", fractions)
    assert out["source"] == "dvh" and out["files"] == {"dvh": name}
    assert all(d["in_range"] for d in out["feature_details"])
    assert all(c["passed"] in (True, None) for c in out["constraints"])


def test_text_output(capsys):
    assert main(["dvh", "features", "--protocol", "hcc", "--dvh",
                 str(PLAN / "hcc_phantom_eclipse.txt"), "--plan-fractions", "3"]) == 0
    out = capsys.readouterr().out
    assert "gtv_geud_gy" in out and "mean dose of Liver-GTV × 3/3" in out
    assert "PASS  Liver−GTV mean dose ≤ 13 Gy (3 fractions)" in out
    assert "n/a   Liver−GTV mean dose ≤ 18 Gy (6 fractions): not checked" in out


@pytest.mark.parametrize(("args", "message"), [
    (["--protocol", "nsclc"], "give --rtdose and --rtstruct (and --rtplan or --plan-fractions),"
                              " or --dvh FILE"),
    (["--protocol", "nsclc", *DICOM], "the number of fractions the plan's dose covers is "
                                      "needed"),
    (["--protocol", "nsclc", *DICOM, "--plan-fractions", "30", "--structure", "lung"],
     "--structure 'lung': expected ROLE=NAME"),
    (["--protocol", "nsclc", *DICOM, "--plan-fractions", "30", "--structure", "lung=Lungs"],
     "structure 'Lungs' chosen for role lung is not in RS.dcm; structures found: External, "
     "Lung_R, Lung_L, GTV, PTV, Heart, Esophagus, SpinalCord"),
    (["--protocol", "hcc", *DICOM, "--plan-fractions", "30"],
     "no structure for role liver (Liver minus GTV)"),
    (["--protocol", "nsclc", "--rtdose", str(PLAN / "nsclc_phantom_dvh.csv"), "--rtstruct",
      str(PLAN / "nsclc_phantom" / "RS.dcm"), "--plan-fractions", "30"],
     "nsclc_phantom_dvh.csv is not a DICOM file"),
    (["--protocol", "nsclc", "--dvh", str(PLAN / "missing.csv"), "--plan-fractions", "30"],
     "missing.csv: no such file (expected the DVH file)"),
])
def test_bad_input_exits_2_with_one_line(capsys, args, message):
    assert main(["dvh", "features", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("artds dvh: error: ") and message in err
    assert "\n" not in err


# --------------------------------------------------------------------------------------------
# Privacy: no patient name or id from a DICOM header (or a DVH export's header) reaches a log,
# a warning or the command line's output, whether the import succeeds or is refused.

PATIENT_NAME = "Privacy^Jane^Q"
PATIENT_ID = "MRN-PRIVACY-0042"
BIRTH_DATE = "1970-01-01"  # not a valid DA: pydicom would warn, quoting it, if it were read


def _identified_plan(folder: Path) -> dict[str, Path]:
    """The sphere phantom's files with a patient name, id, other id and birth date in each."""
    import io

    import pydicom
    from pydicom.config import disable_value_validation

    from engine.dvh.phantom import phantom_bytes, sphere_phantom

    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for kind, data in phantom_bytes(sphere_phantom()).items():
        ds = pydicom.dcmread(io.BytesIO(data))
        with disable_value_validation():
            ds.PatientName = PATIENT_NAME
            ds.PatientID = PATIENT_ID
            ds.OtherPatientIDs = f"{PATIENT_ID}-B"
            ds.PatientBirthDate = BIRTH_DATE
            ds.save_as(folder / f"{kind}.dcm", enforce_file_format=True)
        paths[kind] = folder / f"{kind}.dcm"
    return paths


def _identifiers() -> tuple[str, ...]:
    return (PATIENT_NAME, "Privacy", "Jane", PATIENT_ID, "PRIVACY-0042", BIRTH_DATE,
            PHANTOM_PATIENT_ID, "Phantom^Analytic")


def test_no_patient_identifier_reaches_a_log_a_warning_or_the_output(tmp_path, caplog, capfd):
    import logging
    import warnings

    from engine.dvh import evaluate_plan, read_plan

    paths = _identified_plan(tmp_path / "plan")
    dicom = ["--rtdose", str(paths["RTDOSE"]), "--rtstruct", str(paths["RTSTRUCT"])]
    runs = [
        (["--protocol", "nsclc", *dicom, "--rtplan", str(paths["RTPLAN"]), "--json",
          "--curves"], 0),
        (["--protocol", "nsclc", *dicom, "--plan-fractions", "30"], 0),  # text output
        (["--protocol", "nsclc", *dicom, "--plan-fractions", "30", "--structure",
          "lung=Nothing"], 2),  # refused: the message lists the plan's structures
        (["--protocol", "nsclc", "--rtdose", str(paths["RTSTRUCT"]), "--rtstruct",
          str(paths["RTSTRUCT"]), "--plan-fractions", "30"], 2),  # refused: not an RTDOSE
        (["--protocol", "hcc", *dicom, "--plan-fractions", "3"], 2),  # refused: no liver
        (["--protocol", "hcc", "--dvh", str(PLAN / "hcc_phantom_eclipse.txt"),
          "--plan-fractions", "3"], 0),  # an Eclipse export names the patient in its header
    ]
    caplog.set_level(logging.DEBUG)  # every logger, every level
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for args, code in runs:
            assert main(["dvh", "features", *args]) == code, args
        # The app's path: read once, evaluate with progress messages, re-evaluate a role.
        messages: list[str] = []
        data = read_plan(rtdose=("RD.dcm", paths["RTDOSE"].read_bytes()),
                         rtstruct=("RS.dcm", paths["RTSTRUCT"].read_bytes()),
                         rtplan=("RP.dcm", paths["RTPLAN"].read_bytes()))
        result = evaluate_plan(data, "nsclc", progress=lambda share, text: messages.append(text))
        evaluate_plan(data, "nsclc", structures={"lung": "Lungs"})
    captured = capfd.readouterr()
    seen = "\n".join([captured.out, captured.err, caplog.text,
                      *(r.getMessage() for r in caplog.records),
                      *(str(w.message) for w in caught), *messages,
                      json.dumps(result.to_dict(curves=True)), repr(data)])
    assert "artds dvh: error:" in captured.err  # the refusals did reach stderr
    assert messages, "the progress callback was called"
    for identifier in _identifiers():
        assert identifier not in seen, identifier


# --------------------------------------------------------------------------------------------
# `artds report` with a plan: the app's report section for the cases holding its features.

EXAMPLE_CASES = ROOT / "assets" / "examples"
RP = ["--rtplan", str(PLAN / "nsclc_phantom" / "RP.dcm")]
HCC_DVH = ["--dvh", str(PLAN / "hcc_phantom_eclipse.txt"), "--plan-fractions", "3"]


def _cases_holding(tmp_path: Path, protocol: str, plan_args: list[str], row: int) -> Path:
    """The protocol's example cases with row ``row`` given the plan's features (2 decimals, as
    the text output prints them)."""
    import pandas as pd

    from engine.cli.dvh import plan_flags, plan_from_args

    args = plan_flags(optional=False).parse_args(plan_args)
    plan = plan_from_args(args, protocol)
    cases = pd.read_csv(EXAMPLE_CASES / f"{protocol}_patients.csv")
    for name, value in plan.features.items():
        cases.loc[row, name] = round(value, 2)
    path = tmp_path / f"{protocol}_cases.csv"
    cases.to_csv(path, index=False)
    return path


@pytest.mark.parametrize(("protocol", "plan_args", "label", "constraint"), [
    ("nsclc", [*DICOM, *RP], "EX-NSCLC-02", "Lungs−GTV V20 ≤ 35 %"),
    ("hcc", HCC_DVH, "EX-HCC-01 site 1", "Liver−GTV mean dose ≤ 13 Gy (3 fractions)"),
])
def test_report_carries_the_plan_of_the_case_holding_its_features(
        tmp_path, capsys, protocol, plan_args, label, constraint):
    cases = _cases_holding(tmp_path, protocol, plan_args, row=1 if protocol == "nsclc" else 0)
    out = tmp_path / "report.html"
    assert main(["report", "--protocol", protocol, "--input", str(cases), "--out", str(out),
                 "--model", "reference", *plan_args]) == 0
    assert capsys.readouterr().out.strip().endswith(f"; the plan with {label})")
    html = out.read_text(encoding="utf-8")
    assert '<section id="plans">' in html
    assert html.count('<div class="plan">') == 1  # only the case that holds the features
    assert f"{label}: " in html.split('<section id="plans">')[1]
    assert f'<td>{constraint}<span class="source">' in html  # the constraint table's row
    assert 'class="plotly-graph-div"' in html.split('<section id="plans">')[1]  # the DVH plot
    assert PHANTOM_PATIENT_ID not in html and "Phantom^Analytic" not in html


def test_report_without_a_plan_has_no_plan_section(tmp_path, capsys):
    out = tmp_path / "report.html"
    assert main(["report", "--protocol", "nsclc", "--input",
                 str(EXAMPLE_CASES / "nsclc_patients.csv"), "--out", str(out), "--model",
                 "reference"]) == 0
    assert '<section id="plans">' not in out.read_text(encoding="utf-8")


@pytest.mark.parametrize(("plan_args", "message"), [
    ([*DICOM, *RP], "no case of nsclc_patients.csv holds the plan's dosimetric features "
                    "(tumour_geud_gy "),
    (DICOM[:2], "give --rtdose and --rtstruct (and --rtplan or --plan-fractions), or --dvh"),
    (DICOM, "the number of fractions the plan's dose covers is needed"),
])
def test_report_refuses_a_plan_it_cannot_place(tmp_path, capsys, plan_args, message):
    out = tmp_path / "report.html"
    assert main(["report", "--protocol", "nsclc", "--input",
                 str(EXAMPLE_CASES / "nsclc_patients.csv"), "--out", str(out), "--model",
                 "reference", *plan_args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
    assert not out.exists()
