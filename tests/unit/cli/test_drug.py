"""`artds drug evaluate`, in-process through engine.cli.main."""

from __future__ import annotations

import json

from engine.cli import main


def test_evaluate_json_saves_and_writes(tmp_path, capsys):
    out = tmp_path / "eval.json"
    code = main(["drug", "evaluate", "--quick", "--drugs", "Gefitinib,Cisplatin",
                 "--models", "naive_mean_effects,drug_rate", "--executor", "serial", "--json",
                 "--save", "--models-dir", str(tmp_path / "models"), "--out", str(out)])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result == json.loads(out.read_text())
    assert result["data"]["evaluated"] == ["Gefitinib", "Cisplatin"]  # as asked
    for setting in ("leave_cell_line_out", "leave_tissue_out"):
        naive = result["settings"][setting]["per_drug"]["naive_mean_effects"]["Gefitinib"]
        assert set(naive) >= {"auroc", "auprc", "f1", "n_lines", "n_sensitive"}
    manifest = json.loads((tmp_path / "models" / "manifest.json").read_text())
    entry = manifest["artifacts"]["drug/evaluation.json"]
    assert entry["config"]["drugs"] == ["Gefitinib", "Cisplatin"] and entry["seed"] == 0


def test_quick_text_lists_the_radiotherapy_drugs(capsys):
    assert main(["drug", "evaluate", "--quick", "--setting", "leave_tissue_out",
                 "--models", "drug_rate", "--executor", "serial"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("Drug resistance (1 = resistant): 12 drugs")
    assert "leave_tissue_out (splits: lung, liver, haematopoietic_lymphoid" in text


def test_bad_flags_are_one_line_errors(capsys):
    for argv, message in (
        (["--drugs", "Carboplatin"], "--drugs Carboplatin: not in the data (no column"),
        (["--drugs", "Aspirin"], "--drugs Aspirin: accepted are 5-Fluorouracil"),
        (["--drugs", "JQ1"], "none can be evaluated: JQ1: 4 sensitive"),
        (["--setting", "random_split"], "--setting random_split: accepted are"),
        (["--models", "svm"], "--models svm: accepted are naive_mean_effects"),
    ):
        assert main(["drug", "evaluate", "--executor", "serial", *argv]) == 2
        assert message in capsys.readouterr().err
