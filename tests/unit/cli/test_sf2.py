"""`artds sf2 predict|evaluate` and `artds train sf2`, in-process through engine.cli.main."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest

from engine.cli import main
from engine.sf2 import evaluate as ev
from engine.sf2.baselines import MLPConfig
from engine.sf2.features import FeatureConfig

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "assets" / "examples"


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("models")
    assert main(["train", "sf2", "--members", "2", "--iterations", "5", "--executor", "serial",
                 "--models-dir", str(root)]) == 0
    return root


def test_train_writes_members_and_model_json(models, capsys):
    assert sorted(p.name for p in (models / "sf2").iterdir()) == [
        "member_0.pt", "member_1.pt", "model.json"]
    manifest = json.loads((models / "manifest.json").read_text())
    entry = manifest["artifacts"]["sf2/member_1.pt"]
    assert entry["seed"] == 1 and entry["config"]["n_iterations"] == 5
    assert entry["cohort_version"].startswith("yard2016-tgsa706-")
    assert len(entry["data_hash"]) == 64


def test_predict_json(models, capsys):
    code = main(["sf2", "predict", "--input", str(EXAMPLES / "sf2_full_profiles.csv"), "--json",
                 "--models-dir", str(models), "--top", "3"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["genes"]) == 20 and out["influence"] == "gradient"
    assert [s["sample_id"] for s in out["samples"]] == ["CHP-212", "NB1", "SK-N-AS", "SK-N-FI",
                                                        "SK-N-SH"]
    for s in out["samples"]:
        for key in ("sf2", "sf2_sd", "alpha_per_gy", "rsi", "gard", "adapted_on"):
            assert s[key] is not None, key
        assert len(s["top_genes"]) == 3 and set(s["top_genes"][0]) == {
            "gene", "influence_per_sd", "z"}


def test_predict_without_rsi_genes_has_no_rsi(models, capsys):
    assert main(["sf2", "predict", "--input", str(EXAMPLES / "sf2_cell_lines.csv"), "--json",
                 "--models-dir", str(models), "--influence", "gradient_x_input"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["samples"]) == 6
    calu3 = out["samples"][0]
    assert calu3["rsi"] is None and calu3["gard"] is None
    assert calu3["adapted_on"]["subgroup"] == "lung histology: Adenocarcinoma"


def test_predict_rsi_only_file(models, capsys, tmp_path):
    from engine.sf2.data import RSI_GENES

    f = tmp_path / "rsi.csv"
    f.write_text("sample_id," + ",".join(f"raw_{g}" for g in RSI_GENES) + "\n"
                 "t1," + ",".join(str(v) for v in range(1, 11)) + "\n")
    assert main(["sf2", "predict", "--input", str(f), "--json", "--models-dir",
                 str(models)]) == 0
    (s,) = json.loads(capsys.readouterr().out)["samples"]
    assert s["sf2"] is None and s["rsi"] == pytest.approx(0.006822, abs=1e-6)


def test_predict_bad_input_exits_2_with_one_line(models, capsys, tmp_path):
    f = tmp_path / "bad.csv"
    f.write_text("sample_id,PIK3CB\ns,0.5\n")
    assert main(["sf2", "predict", "--input", str(f), "--models-dir", str(models)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("artds sf2: error: bad.csv: missing gene column(s)")
    assert len(err.splitlines()) == 1
    assert main(["sf2", "predict", "--input", str(tmp_path / "none.csv")]) == 2
    assert main(["sf2", "predict", "--input", str(f), "--models-dir",
                 str(tmp_path / "empty")]) == 2
    assert "artds train sf2" in capsys.readouterr().err


def test_evaluate_json_tiny(monkeypatch, capsys, models):
    monkeypatch.setattr(ev, "EvaluationConfig", functools.partial(
        ev.EvaluationConfig, features=FeatureConfig(n_repeats=1), mlp=MLPConfig(epochs=5)))
    code = main(["sf2", "evaluate", "--json", "--settings", "lung", "--repeats", "2",
                 "--iterations", "3", "--executor", "serial", "--save", "--models-dir",
                 str(models)])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    methods = out["settings"]["lung"]["methods"]
    for m in ("train_mean", "ols_top20", "reptile", "reptile_finetune_on_own_label"):
        assert set(methods[m]) >= {"mae", "spearman", "n_lines"}
        assert set(methods[m]["mae"]) == {"mean", "sd"}
    assert methods["reptile_finetune_on_own_label"]["uses_own_label"] is True
    saved, meta = ev.load_evaluation(models)
    assert saved["config"]["n_repeats"] == 2 and meta.family == "sf2"
    assert main(["sf2", "evaluate", "--settings", "brain"]) == 2


def test_train_sf2_with_a_bad_budget_is_one_line(tmp_path: Path, capsys) -> None:
    """A value the served config refuses is exit 2 with one line naming the field (no traceback,
    nothing written)."""
    code = main(["train", "sf2", "--members", "0", "--models-dir", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "n_members = 0" in err[0] and "accepted" in err[0]
    assert not any(tmp_path.iterdir())
