"""The served drug models: one family chosen by the saved evaluation, the fold models reproducing
it, calibrated probabilities with an interval that holds them, SHAP of the served model,
hash-checked artifacts, and the command line."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from engine import settings
from engine.cli import main
from engine.drug import evaluate as ev
from engine.drug.calibration import PlattCalibration
from engine.drug.data import load_drug_data
from engine.drug.interpret import load_interpretation
from engine.drug.serving import load_served_drug
from engine.drug.serving_train import ServedConfig, choose_model, train_served
from engine.platform import registry

DRUGS = ("Gefitinib", "Trametinib")
EXAMPLE = settings.EXAMPLES_DIR / "drug_profiles.csv"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    result = ev.evaluate(ev.EvaluationConfig.tiny(
        drugs=DRUGS, settings=("leave_cell_line_out",),
        models=("naive_mean_effects", "drug_rate", "random_forest", "xgboost")))
    ev.save_evaluation(result, root)
    summary = train_served(root, ServedConfig(n_members=3, top_features=5, stability_k=10))
    return root, result, summary


def _summary(means: dict[str, float]) -> dict:
    return {"settings": {"leave_cell_line_out": {"summary": {
        m: {"auroc": {"mean": v}} for m, v in means.items()}}}}


def test_the_family_is_the_best_learned_model_never_the_naive_baseline():
    got = choose_model(_summary({"naive_mean_effects": 0.73, "drug_rate": 0.5,
                                 "random_forest": 0.70, "xgboost": 0.69}))
    assert got["model"] == "random_forest" and got["note"] == ""
    assert got["naive_mean_auroc"] == 0.73
    got = choose_model(_summary({"random_forest": 0.70, "xgboost": 0.69,
                                 "resvae_unfrozen": 0.72}))
    assert got["model"] == "random_forest" and "resvae_unfrozen had the highest" in got["note"]
    got = choose_model(_summary({"random_forest": 0.70, "xgboost": 0.69}), forced="xgboost")
    assert got["model"] == "xgboost" and "forced" in got["note"]
    with pytest.raises(ValueError, match="no servable model"):
        choose_model(_summary({"naive_mean_effects": 0.7}))


def test_training_reproduces_the_evaluation_and_records_calibration(trained):
    root, result, summary = trained
    per_drug = result["settings"]["leave_cell_line_out"]["per_drug"]
    chosen = summary["model"]
    means = result["settings"]["leave_cell_line_out"]["summary"]
    assert chosen == max(("random_forest", "xgboost"), key=lambda m: means[m]["auroc"]["mean"])
    models = load_served_drug(root)
    for drug in DRUGS:
        info = models.info(drug)
        assert info["auroc_matches_evaluation"], drug
        assert info["cv"]["auroc"] == pytest.approx(per_drug[chosen][drug]["auroc"])
        assert info["cv"]["naive_auroc"] == pytest.approx(
            per_drug["naive_mean_effects"][drug]["auroc"])
        m = info["metrics"]
        for key in ("brier_raw", "brier_cross_fitted", "brier_in_sample", "brier_base_rate",
                    "ece_cross_fitted", "ece_in_sample"):
            assert 0 <= m[key] <= 1, key
        held = models.payload["held_out"][drug]
        rows, _ = load_drug_data().labelled(drug)
        assert len(held["lines"]) == len(rows)
        assert set(held["fold"]) == set(range(5))
    assert summary["summary"]["n_auroc_matches_evaluation"] == len(DRUGS)


def test_predictions_have_a_calibrated_probability_inside_its_interval(trained):
    root, _, _ = trained
    models = load_served_drug(root)
    x = load_drug_data().x[:4]
    preds = models.predict(x)
    assert len(preds) == 4 and all(len(p) == len(DRUGS) for p in preds)
    for per_line in preds:
        for p in per_line:
            assert 0 <= p.low <= p.p_resistant <= p.high <= 1
            assert p.level == 0.8
            assert p.cv_auroc is not None and p.naive_auroc is not None
    for drug in DRUGS:
        cal = PlattCalibration.from_dict(models.info(drug)["calibration"])
        grid = np.linspace(0, 1, 201)
        assert np.all(np.diff(cal.apply(grid)) >= 0)  # monotone: the ranking is kept
    only = models.predict(x[:1], ["Trametinib"])
    assert [p.drug for p in only[0]] == ["Trametinib"]
    with pytest.raises(ValueError, match="not served"):
        models.predict(x[:1], ["Carboplatin"])


def test_explanations_add_up_to_the_served_point_model(trained):
    root, _, _ = trained
    models = load_served_drug(root)
    x = load_drug_data().x[10:12]
    for drug in DRUGS:
        top = models.explain(x, drug, top=models.payload["n_features"])
        k = models.info(drug)["index"]
        raw = models.trees.predict_proba(x)[k * (models.n_members + 1)]
        for i, feats in enumerate(top):
            total = sum(f["shap"] for f in feats) + feats[0]["expected_value"]
            if feats[0]["units"] == "logit":
                total = 1 / (1 + np.exp(-total))
            assert total == pytest.approx(raw[i], abs=1e-4)
            assert abs(feats[0]["shap"]) >= abs(feats[-1]["shap"])


def test_interpretation_is_saved_with_stability_and_the_tff1_check(trained):
    root, _, _ = trained
    payload, _ = load_interpretation(root)
    gef = payload["drugs"]["Gefitinib"]
    assert "all" in gef["groups"] and "lung" in gef["groups"]
    assert len(gef["groups"]["all"]["top"]) == 5
    assert 0 <= gef["stability"]["mean_pairwise_jaccard"] <= 1
    check = payload["paper_gene_check"]
    assert check["gene"] == "TFF1" and check["in_panel"] is False
    assert payload["served_sha256"] == registry.list_artifacts(root, "drug")[
        [m.name for m in registry.list_artifacts(root, "drug")].index("served")].sha256


def test_a_tampered_or_mismatched_artifact_is_refused(trained, tmp_path):
    root, _, _ = trained
    copy = tmp_path / "models"
    shutil.copytree(root, copy)
    trees = copy / "drug" / "served_trees.pt"
    data = bytearray(trees.read_bytes())
    data[len(data) // 2] ^= 0xFF
    trees.write_bytes(bytes(data))
    load_served_drug.cache_clear()
    with pytest.raises(registry.ArtifactError, match="sha256 mismatch"):
        load_served_drug(copy)
    # a valid trees file from another training does not pass for this one
    state, meta = registry.load_artifact(root, "drug", "served_trees")
    state = {k: v.clone() for k, v in state.items()}
    state["d0.payload"][0] += 1.0
    registry.save_artifact(copy, "drug", "served_trees", state, seed=meta.seed,
                           config=meta.config, data_hash=meta.data_hash,
                           cohort_version=meta.cohort_version, metrics=meta.metrics)
    load_served_drug.cache_clear()
    with pytest.raises(registry.ArtifactError, match="does not belong"):
        load_served_drug(copy)


def test_cli_predict_and_explain(trained, capsys, tmp_path):
    root, _, _ = trained
    assert main(["drug", "predict", "--input", str(EXAMPLE), "--models-dir", str(root),
                 "--json", "--top", "3"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["samples"]) == 6
    first = out["samples"][0]["drugs"][0]
    assert set(first) >= {"drug", "p_resistant", "interval", "cv_auroc", "naive_auroc",
                          "top_features"}
    assert first["interval"]["level"] == 0.8 and len(first["top_features"]) == 3
    assert "not a coverage guarantee" in out["interval"]["meaning"]
    bad = tmp_path / "bad.csv"
    bad.write_text("sample_id,tissue,EGFR\nS1,lung,1.0\n")
    assert main(["drug", "predict", "--input", str(bad), "--models-dir", str(root)]) == 2
    assert "missing gene column(s)" in capsys.readouterr().err
    assert main(["drug", "explain", "--drug", "Gefitinib", "--tissue", "lung",
                 "--models-dir", str(root)]) == 0
    text = capsys.readouterr().out
    assert "Gefitinib, lung" in text and "TFF1" in text
    assert main(["drug", "explain", "--drug", "Gefitinib", "--tissue", "moon",
                 "--models-dir", str(root)]) == 2


def test_cli_train_needs_the_saved_evaluation_and_checks_its_flags(tmp_path, capsys):
    assert main(["train", "drug", "--models-dir", str(tmp_path), "--executor", "serial"]) == 2
    err = capsys.readouterr().err
    assert "evaluation.json" in err and "not listed in the manifest" in err
    assert main(["drug", "train", "--members", "1", "--models-dir", str(tmp_path),
                 "--executor", "serial"]) == 2
    assert "ServedConfig.n_members = 1 is out of range" in capsys.readouterr().err
