"""The artds command line, run in-process through engine.cli.main."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from engine.cli import main
from engine.protocols import PROTOCOL_NAMES
from engine.schema import read_cases

ROOT = Path(__file__).resolve().parents[2]
REF = ("--model", "reference")
"""The Foundation checks run on the virtual trial's reference model; learned models below."""
EXAMPLES = {name: ROOT / "assets" / "examples" / f"{name}_patients.csv" for name in PROTOCOL_NAMES}


@pytest.mark.parametrize("name", PROTOCOL_NAMES)
def test_recommend_json_for_both_example_files(name, capsys):
    assert (
        main(["recommend", "--protocol", name, "--input", str(EXAMPLES[name]), "--json", *REF]) == 0
    )
    payload = json.loads(capsys.readouterr().out)
    assert payload["protocol"] == name
    n_rows = len(pd.read_csv(EXAMPLES[name]))
    assert len(payload["patients"]) == n_rows
    for patient in payload["patients"]:
        for key in (
            "patient_id",
            "doses_gy",
            "tcp",
            "ntcp",
            "reward",
            "recommended_dose_gy",
            "model",
        ):
            assert key in patient
        assert patient["model"] == "reference model (virtual trial ground truth)"
        assert len(patient["tcp"]) == len(patient["doses_gy"]) == len(payload["dose_grid_gy"])
        best = max(range(len(patient["reward"])), key=lambda i: (patient["reward"][i], -i))
        assert patient["recommended_dose_gy"] == patient["doses_gy"][best]


def test_recommend_plain_text(capsys):
    assert main(["recommend", "--protocol", "nsclc", "--input", str(EXAMPLES["nsclc"]), *REF]) == 0
    out = capsys.readouterr().out
    assert "EX-NSCLC-01" in out and "Gy/fraction" in out


@pytest.mark.parametrize(
    ("file", "fragment"),
    [
        ("tests/data/bad/nsclc_cgy_dose.csv", "looks like cGy"),
        ("tests/data/bad/nsclc_missing_column.csv", "missing"),
        ("does/not/exist.csv", "no such file"),
    ],
)
def test_bad_input_exits_2_with_one_line(file, fragment, capsys):
    assert main(["recommend", "--protocol", "nsclc", "--input", str(ROOT / file), "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0]


def test_cohort_writes_a_valid_trial(tmp_path, capsys):
    assert main(["cohort", "nsclc", "--out", str(tmp_path)]) == 0
    meta = json.loads((tmp_path / "nsclc_cohort.json").read_text())
    assert meta["n_cases"] == 117 and meta["n_complete_cases"] == 67
    table = pd.read_csv(tmp_path / "nsclc_cohort.csv")
    truth = pd.read_csv(tmp_path / "nsclc_truth.csv")
    assert len(table) == len(truth) == 117
    complete = table[truth["complete"]]
    # the complete cases are a valid clinic file with outcomes
    cases = read_cases(complete.to_csv(index=False), "nsclc", require_outcomes=True)
    assert len(cases) == 67
    assert meta["events_in_complete_cases"]["local_control"] == int(cases["local_control"].sum())


def test_report_writes_html(tmp_path, capsys):
    out = tmp_path / "report.html"
    assert (
        main(
            [
                "report",
                "--protocol",
                "hcc",
                "--input",
                str(EXAMPLES["hcc"]),
                "--out",
                str(out),
                *REF,
            ]
        )
        == 0
    )
    html = out.read_text(encoding="utf-8")
    assert "EX-HCC-01" in html and "reference model (virtual trial ground truth)" in html


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in ("serve", "cohort", "recommend", "report"):
        assert command in out
