"""DVH tables (engine/dvh/files.py): the documented CSV, the Eclipse text export, and every
refusal with its message."""

from __future__ import annotations

import numpy as np
import pytest

from engine.dvh import PlanError
from engine.dvh.dvh import DVH
from engine.dvh.files import dvh_csv, read_dvh_file
from engine.dvh.phantom import PHANTOM_PATIENT_ID, PHANTOM_PATIENT_NAME, eclipse_text
from engine.settings import ROOT_DIR

EXAMPLES = ROOT_DIR / "assets" / "examples" / "plan"


def read(text: str, name: str = "dvh.csv"):
    return read_dvh_file((name, text.encode("utf-8")))


def test_cumulative_csv_in_cm3():
    table = read("structure,dose_gy,volume_cc\nGTV,0,40\nGTV,50,40\nGTV,60,0\n"
                 "Lungs-GTV,0,3000\nLungs-GTV,20,600\nLungs-GTV,40,0\n")
    assert table.format == "csv" and list(table.dvhs) == ["GTV", "Lungs-GTV"]
    gtv = table.dvhs["GTV"]
    assert gtv.total_volume_cc == 40.0 and gtv.mean_gy == pytest.approx(55.0, abs=1e-6)
    lungs = table.dvhs["Lungs-GTV"]
    # Linear between the rows: ∫V dD / V = (20·(3000+600)/2 + 20·600/2) / 3000 = 14 Gy.
    assert lungs.mean_gy == pytest.approx(14.0, abs=1e-6)
    assert 100 * lungs.fraction_at_dose(20.0) == pytest.approx(20.0, abs=0.01)
    assert table.warnings == ()


def test_percent_csv_has_no_absolute_volumes_and_says_so():
    table = read("structure,dose_gy,volume_percent,kind\nGTV,0,100,\nGTV,60,0,cumulative\n")
    assert table.dvhs["GTV"].total_volume_cc is None
    assert "gives volumes in % only" in table.warnings[0]


def test_differential_csv():
    table = read("structure,dose_gy,volume_cc,kind\nGTV,59,10,differential\n"
                 "GTV,61,30,differential\n")
    assert table.dvhs["GTV"].mean_gy == pytest.approx(60.5)


def test_csv_formula_protection_is_undone_and_round_trips():
    dvhs = {"=GTV": DVH(np.array([59.0, 61.0]), np.array([0.25, 0.75]), 40.0),
            'Lung "L", upper': DVH(np.array([5.0, 20.0]), np.array([0.5, 0.5]), 900.0)}
    text = dvh_csv(dvhs)
    assert "'=GTV" in text
    back = read(text).dvhs
    assert list(back) == list(dvhs)
    for name, dvh in dvhs.items():
        assert back[name].total_volume_cc == pytest.approx(dvh.total_volume_cc, rel=1e-5)
        assert back[name].mean_gy == pytest.approx(dvh.mean_gy, abs=0.2)


@pytest.mark.parametrize(("text", "match"), [
    ("", r"^dvh.csv is empty \(0 bytes\)"),
    ("structure;dose_gy;volume_cc\nGTV;0;1\n", r"the file is semicolon-separated"),
    ("structure,dose_gy\nGTV,0\n", r"expected exactly one volume column, volume_cc \(cm³\) or "
                                   r"volume_percent \(% of the structure\); found none"),
    ("structure,dose_gy,volume_cc,volume_percent\nGTV,0,1,100\n",
     r"expected exactly one volume column.* found volume_cc, volume_percent"),
    ("Structure,dose_gy,volume_cc\nGTV,0,1\n",
     r"column 'Structure' is not accepted: column names are lower case, write 'structure'"),
    ("structure,dose_cgy,volume_cc\nGTV,0,1\n",
     r"column 'dose_cgy' is not accepted: the column expects Gy — divide by 100"),
    ("structure,dose_gy,volume_cc\nGTV,zero,1\nGTV,60,0\n",
     r"row 2, column dose_gy: value 'zero' is not a dose; expected a number ≥ 0 \(Gy\)"),
    ("structure,dose_gy,volume_percent\nGTV,0,120\nGTV,60,0\n",
     r"row 2, column volume_percent: value '120' is out of range; expected a number between 0 "
     r"and 100 \(%\)"),
    ("structure,dose_gy,volume_cc\nGTV,0,10\nGTV,20,30\n",
     r"structure 'GTV': the volume rises from 10 to 30 in row 3; a cumulative DVH never rises "
     r"with dose — if this is a differential DVH, add a column kind with value differential"),
    ("structure,dose_gy,volume_cc\nGTV,20,10\nGTV,10,0\n",
     r"structure 'GTV': dose_gy 10 in row 3 is not above 20 in row 2; rows of a structure must "
     r"be in ascending dose"),
    ("structure,dose_gy,volume_cc\nGTV,0,10\n",
     r"structure 'GTV': a cumulative DVH needs at least 2 rows"),
    ("structure,dose_gy,volume_cc,kind\nGTV,0,10,cumulative\nGTV,5,1,differential\n",
     r"row 3, column kind: structure 'GTV' is cumulative in row 2 and differential here"),
    ("structure,dose_gy,volume_cc\n,0,10\n", r"row 2, column structure: value is missing"),
    ("structure,dose_gy,volume_cc\n", r"the file has a header row but no DVH rows"),
])
def test_csv_refusals(text, match):
    with pytest.raises(PlanError, match=match) as err:
        read(text)
    assert str(err.value).startswith("dvh.csv")


def test_every_csv_problem_is_listed():
    with pytest.raises(PlanError) as err:
        read("structure,dose_gy,volume_cc\nGTV,x,1\nGTV,0,y\nPTV,-1,3\n")
    assert len(err.value.problems) == 3
    assert str(err.value).endswith("(and 2 more problems)")


def test_eclipse_example_file():
    table = read_dvh_file(EXAMPLES / "hcc_phantom_eclipse.txt")
    assert table.format == "eclipse" and table.prescription_gy == 45.0
    assert list(table.dvhs) == ["External", "Liver", "GTV", "PTV", "Stomach", "Duodenum",
                                "SpinalCord", "Liver-GTV"]
    gtv = table.dvhs["GTV"]
    assert gtv.total_volume_cc == pytest.approx(24.5, abs=0.1)  # from "Volume [cm³]:"
    assert 44.0 < gtv.mean_gy < 46.5


def _eclipse(columns: str, rows: str, type_line: str = "Cumulative Dose Volume Histogram") -> str:
    return (f"Patient Name : {PHANTOM_PATIENT_NAME}\nPatient ID : {PHANTOM_PATIENT_ID}\n"
            f"Type : {type_line}\n\nPrescribed dose [cGy]: 6000.0\n\nStructure: Lung\n"
            f"Volume [cm³]: 2000.0\n\n{columns}\n{rows}\n")


def test_eclipse_variants_cgy_cm3_and_differential():
    cgy = read(_eclipse("Dose [cGy]    Relative dose [%]   Structure Volume [cm³]",
                        "0 0 2000\n1000 16.7 1000\n2000 33.3 0"), "export.txt")
    assert cgy.prescription_gy == 60.0
    # 2000 cm³ at 0 Gy, 1000 at 10 Gy, 0 at 20 Gy: ∫V dD / V = (10·1500 + 10·500) / 2000.
    assert cgy.dvhs["Lung"].mean_gy == pytest.approx(10.0, abs=1e-6)
    assert cgy.dvhs["Lung"].total_volume_cc == 2000.0
    diff = read(_eclipse("Dose [Gy]\tRelative dose [%]\tdVolume / dDose [cm³ / Gy]",
                         "5\t8.3\t100\n15\t25\t100", "Differential Dose Volume Histogram"),
                "export.txt")
    assert diff.dvhs["Lung"].mean_gy == pytest.approx(10.0)
    assert diff.dvhs["Lung"].total_volume_cc == pytest.approx(2000.0)


@pytest.mark.parametrize(("columns", "rows", "match"), [
    ("Relative dose [%]   Ratio of Total Structure Volume [%]", "0 100\n100 0",
     r"structure 'Lung': no column header"),
    ("Dose [%]   Ratio of Total Structure Volume [%]", "0 100\n100 0",
     r"structure 'Lung': the DVH gives only relative dose \(%\); export it with absolute dose"),
    ("Dose [Gy]   Relative dose [%]", "0 0\n10 10",
     r"structure 'Lung': no column header"),
    ("Dose [Gy]   Relative dose [%]   Ratio of Total Structure Volume [%]", "0 0 100\n10 x 50",
     r"structure 'Lung', line 12: '10 x 50' is not 3 numbers"),
    ("Dose [Gy]   Relative dose [%]   Ratio of Total Structure Volume [%]", "0 0 50\n10 1 60",
     r"structure 'Lung': the cumulative volume rises with dose"),
])
def test_eclipse_refusals(columns, rows, match):
    with pytest.raises(PlanError, match=r"^export.txt, " + match):
        read(_eclipse(columns, rows), "export.txt")


def test_eclipse_duplicate_structure_is_refused():
    dvh = DVH(np.array([10.0, 20.0]), np.array([0.5, 0.5]), 100.0)
    text = eclipse_text({"GTV": dvh}, prescription_gy=60.0)
    text = text + text[text.index("Structure:"):]
    with pytest.raises(PlanError, match=r"structure 'GTV' appears again \(first on line 15\); "
                                        r"export the DVHs of one plan"):
        read(text, "export.txt")


def test_eclipse_header_identifiers_never_reach_the_result():
    table = read_dvh_file(EXAMPLES / "hcc_phantom_eclipse.txt")
    seen = repr(table)
    assert PHANTOM_PATIENT_ID not in seen and "Phantom^Analytic" not in seen


def test_a_cp1252_eclipse_export_is_read():
    text = _eclipse("Dose [Gy]   Relative dose [%]   Ratio of Total Structure Volume [%]",
                    "0 0 100\n20 33 0")
    table = read_dvh_file(("export.txt", text.encode("cp1252")))
    assert table.dvhs["Lung"].total_volume_cc == 2000.0


def test_the_documented_csv_example_reads():
    doc = (ROOT_DIR / "docs" / "data-format.md").read_text(encoding="utf-8")
    section = doc.split("## DVH files", 1)[1]
    example = section.split("```text\n", 1)[1].split("```", 1)[0]
    table = read(example)
    assert list(table.dvhs) == ["GTV", "Lungs-GTV"]
    assert table.dvhs["GTV"].total_volume_cc == 44.9


def test_a_csv_in_cgy_is_refused():
    with pytest.raises(PlanError, match=r"column dose_gy: doses up to 6000 look like cGy; the "
                                        r"column expects Gy — divide by 100"):
        read("structure,dose_gy,volume_cc\nGTV,0,40\nGTV,6000,0\n")
