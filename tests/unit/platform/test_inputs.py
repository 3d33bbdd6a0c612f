"""engine.platform.inputs: the inputs CSV neutralises spreadsheet formulas and uploads again
unchanged."""

from __future__ import annotations

import csv
import io

from engine.core.protocols import load_protocol
from engine.core.schema import case_labels, read_cases
from engine.core.tabular import FORMULA_START
from engine.platform.inputs import inputs_csv
from engine.settings import EXAMPLES_DIR

NSCLC = load_protocol("nsclc")
HOSTILE = ["=cmd|' /C calc'!A0", "+SUM(A1:A9)", "-2+3", "@risk", "\tTAB", "plain text"]


def test_inputs_csv_neutralises_formulas_and_reads_back_unchanged() -> None:
    cases = read_cases(EXAMPLES_DIR / "nsclc_patients.csv", NSCLC).head(len(HOSTILE)).copy()
    cases["patient_id"] = ["=1+1", "+A1", "-P-3", "@SUM(1)", "P-5", "P-6"][: len(cases)]
    labels = case_labels(cases)
    notes = dict(zip(labels, HOSTILE, strict=False))
    text = inputs_csv(cases, NSCLC, notes)

    rows = list(csv.DictReader(io.StringIO(text)))
    for row in rows:  # no text cell a spreadsheet would run
        for column in ("patient_id", "note"):
            assert row[column][:1] not in FORMULA_START, (column, row[column])
    assert rows[0]["patient_id"] == "'=1+1" and rows[0]["note"] == "'" + HOSTILE[0]
    # numbers stay numbers (a negative feature value is not a formula)
    assert any(row["mtv_rd"].startswith("-") for row in rows)

    again = read_cases(text, NSCLC)
    assert list(again["patient_id"]) == list(cases["patient_id"])
    assert list(again["note"]) == [notes[lab] for lab in labels]


def test_with_proposal_sets_validates_and_removes_the_proposed_dose() -> None:
    import math

    import pytest

    from engine.core.schema import PROPOSAL_COLUMN
    from engine.core.tabular import SchemaError
    from engine.platform.inputs import case_records, with_proposal

    case = read_cases(EXAMPLES_DIR / "nsclc_patients.csv", NSCLC).iloc[[0]].reset_index(drop=True)
    proposed = with_proposal(case, NSCLC, 2.8)
    assert proposed.loc[0, PROPOSAL_COLUMN] == 2.8
    assert case_records(proposed, NSCLC)[0].values[PROPOSAL_COLUMN] == 2.8
    assert case_records(proposed, NSCLC)[0].input_hash == case_records(case, NSCLC)[0].input_hash
    removed = with_proposal(proposed, NSCLC, None)
    assert math.isnan(removed.loc[0, PROPOSAL_COLUMN])
    with pytest.raises(SchemaError) as info:
        with_proposal(case, NSCLC, 9.0)
    assert info.value.problems[0].column == PROPOSAL_COLUMN
    assert "expected a number between 1.5 and 4 Gy" in info.value.problems[0].message


def test_with_features_replaces_validates_and_keeps_the_rest() -> None:
    import pytest

    from engine.core.tabular import SchemaError
    from engine.platform.inputs import case_records, with_features

    case = read_cases(EXAMPLES_DIR / "nsclc_patients.csv", NSCLC).iloc[[0]].reset_index(drop=True)
    new = with_features(case, NSCLC, {"tumour_geud_gy": 40.51, "lung_geud_gy": 9.71})
    assert new.loc[0, "tumour_geud_gy"] == 40.51 and new.loc[0, "lung_geud_gy"] == 9.71
    before, after = case_records(case, NSCLC)[0].values, case_records(new, NSCLC)[0].values
    changed = {k for k in before if before[k] != after[k]}
    assert changed == {"tumour_geud_gy", "lung_geud_gy"}
    with pytest.raises(SchemaError) as info:  # out of the feature's accepted range
        with_features(case, NSCLC, {"lung_geud_gy": 900.0})
    assert info.value.problems[0].column == "lung_geud_gy"
    with pytest.raises(KeyError, match="not a feature"):
        with_features(case, NSCLC, {"dose_eval_gy": 2.0})
