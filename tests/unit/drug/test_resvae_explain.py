"""Integrated gradients of the evaluation's Res-VAE models: the explained models are the evaluated
ones (same held-out AUROC), held-out rankings per drug and tissue, fold stability, the TFF1 check,
hash-checked saving and the command line."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engine.cli import main
from engine.drug import evaluate as ev
from engine.drug.resvae_explain import (
    ResVAEExplainConfig,
    choose_variant,
    explain_resvae,
    load_resvae_interpretation,
    save_resvae_interpretation,
)
from engine.platform import registry

DRUG = "Gefitinib"


@pytest.fixture(scope="module")
def explained(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    result = ev.evaluate(ev.EvaluationConfig.tiny(
        drugs=(DRUG,), settings=("leave_cell_line_out",),
        models=("naive_mean_effects", "resvae_frozen", "resvae_unfrozen")))
    ev.save_evaluation(result, root)
    payload = explain_resvae(root, ResVAEExplainConfig(n_steps=8, top_features=5,
                                                       stability_k=10))
    return root, result, payload


def test_the_explained_models_are_the_evaluated_ones(explained):
    _, result, payload = explained
    entry = payload["drugs"][DRUG]
    saved = result["settings"]["leave_cell_line_out"]["per_drug"][payload["model"]][DRUG]
    assert entry["auroc_out_of_fold"] == pytest.approx(saved["auroc"], abs=1e-9)
    assert entry["auroc_matches_evaluation"] and payload["n_auroc_matches_evaluation"] == 1
    assert entry["n_folds_explained"] == 5
    # completeness: each line's attributions add up to its logit minus the baseline's
    assert entry["completeness"]["p95_relative_gap"] < 0.05


def test_rankings_per_group_in_the_trees_form_with_attribution_keys(explained):
    _, _, payload = explained
    groups = payload["drugs"][DRUG]["groups"]
    assert "all" in groups and "lung" in groups
    top = groups["all"]["top"]
    assert [f["rank"] for f in top] == [1, 2, 3, 4, 5]
    scores = [f["mean_abs_attribution"] for f in top]
    assert scores == sorted(scores, reverse=True) and scores[0] > 0
    assert all("mean_abs_shap" not in f and "mean_attribution" in f for f in top)
    assert groups["all"]["n_lines"] > groups["lung"]["n_lines"] > 0
    st = payload["drugs"][DRUG]["stability"]
    assert st["n_folds"] == 5 and 0 <= st["mean_pairwise_jaccard"] <= 1
    assert payload["units"] == "logit" and "IntegratedGradients" in payload["method"]


def test_the_paper_gene_is_checked_and_not_in_the_panel(explained):
    _, _, payload = explained
    check = payload["paper_gene_check"]
    assert check["gene"] == "TFF1" and check["drug"] == DRUG and check["in_panel"] is False
    assert "not among the 706 panel genes" in check["finding"]


def test_the_variant_follows_the_evaluation_or_the_caller():
    summary = {"settings": {"leave_cell_line_out": {"summary": {
        "resvae_frozen": {"auroc": {"mean": 0.70}},
        "resvae_unfrozen": {"auroc": {"mean": 0.68}}}}}}
    assert choose_variant(summary)["model"] == "resvae_frozen"
    assert choose_variant(summary, "resvae_unfrozen")["rule"] == "forced"
    with pytest.raises(ValueError, match="no Res-VAE"):
        choose_variant({"settings": {"leave_cell_line_out": {"summary": {}}}})
    with pytest.raises(ValueError, match="variant"):
        ResVAEExplainConfig(variant="random_forest")


def test_saved_hash_checked_and_read_by_the_command_line(explained, capsys):
    root, _, payload = explained
    meta = save_resvae_interpretation(payload, root)
    loaded, got = load_resvae_interpretation(root)
    assert got.sha256 == meta.sha256 and loaded["model"] == payload["model"]
    capsys.readouterr()
    assert main(["drug", "explain", "--drug", DRUG, "--tissue", "lung", "--model", "resvae",
                 "--models-dir", str(root), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["model"] == payload["model"] and out["units"] == "logit"
    assert out["top"][0]["mean_abs_attribution"] > 0
    path = root / "drug" / "interpretation_resvae.json"
    path.write_text(path.read_text().replace('"logit"', '"probability"', 1))
    with pytest.raises(registry.ArtifactError):
        load_resvae_interpretation(root)


def test_the_command_line_builds_and_saves(tmp_path, capsys):
    root = tmp_path / "models"
    result = ev.evaluate(ev.EvaluationConfig.tiny(
        drugs=(DRUG,), settings=("leave_cell_line_out",), models=("resvae_frozen",)))
    ev.save_evaluation(result, root)
    capsys.readouterr()
    assert main(["drug", "explain-resvae", "--models-dir", str(root), "--executor", "serial",
                 "--steps", "4", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["model"] == "resvae_frozen" and out["n_drugs"] == 1
    assert out["n_auroc_matches_evaluation"] == 1
    assert np.isfinite(out["stability"]["mean_pairwise_jaccard_mean"])
