"""Interpretation: features ranked by mean |SHAP| with their direction, groups of lines, fold
stability by Jaccard, the paper's gene check, and SHAP additivity on a tiny fixture."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier

from engine.drug.interpret import (
    feature_parts,
    gene_check,
    line_groups,
    rank_features,
    shap_values,
    stability,
)
from engine.drug.trees import from_sklearn_forest

NAMES = ["expr:EGFR (1956)", "expr:TP53 (7157)", "mut:EGFR (1956)", "cn:MYC (4609)"]


def test_feature_parts():
    assert feature_parts("cn:MYC (4609)") == {"feature": "cn:MYC (4609)", "gene": "MYC",
                                              "modality": "cn", "label": "MYC copy number"}


def test_rank_features_by_hand():
    # feature 0 matters most and pushes toward resistance when high; feature 2 is constant
    values = np.array([[1.0, 0.0, 0.0, 1.0], [-1.0, 1.0, 0.0, 2.0], [2.0, 2.0, 0.0, 1.0]])
    shap = np.array([[0.3, 0.1, 0.0, 0.0], [-0.3, 0.0, 0.0, 0.05], [0.6, -0.1, 0.0, 0.0]])
    top = rank_features(shap, values, NAMES, top=3)
    assert [t["feature"] for t in top] == [NAMES[0], NAMES[1], NAMES[3]]
    assert top[0]["mean_abs_shap"] == pytest.approx(0.4)
    assert top[0]["mean_shap"] == pytest.approx(0.2)
    assert top[0]["direction"] == pytest.approx(1.0, abs=1e-9)  # SHAP = 0.3 × value
    assert top[1]["direction"] == pytest.approx(-1.0, abs=1e-9)  # higher → sensitive
    assert rank_features(shap, values, NAMES, top=4)[3]["direction"] is None  # constant


def test_line_groups_keep_large_lineages_and_lung_subtypes():
    lineages = ["lung"] * 12 + ["breast"] * 3 + ["liver"] * 10
    subs = ["NSCLC_adenocarcinoma"] * 10 + ["SCLC"] * 2 + [""] * 13
    groups = line_groups(lineages, subs, min_lines=10)
    assert list(groups) == ["all", "liver", "lung", "lung / NSCLC_adenocarcinoma"]
    np.testing.assert_array_equal(groups["lung / NSCLC_adenocarcinoma"], np.arange(10))
    assert len(groups["all"]) == 25


def test_stability_by_hand():
    same = np.tile(np.arange(10.0), (5, 1))
    assert stability(same, [f"f{i}" for i in range(10)], k=3)["mean_pairwise_jaccard"] == 1.0
    disjoint = np.zeros((2, 6))
    disjoint[0, :3] = 1
    disjoint[1, 3:] = 1
    out = stability(disjoint, [f"f{i}" for i in range(6)], k=3)
    assert out["mean_pairwise_jaccard"] == 0.0
    assert out["in_every_fold"] == []
    # half overlap: {0,1} vs {1,2} → 1/3
    half = np.array([[3.0, 2.0, 0.0], [0.0, 2.0, 3.0]])
    got = stability(half, ["a", "b", "c"], k=2)
    assert got["mean_pairwise_jaccard"] == pytest.approx(1 / 3)
    assert got["in_every_fold"] == ["b"]
    assert 0 < got["random_expectation"] < 1


def test_gene_check_says_when_the_gene_is_not_in_the_panel():
    groups = {"lung / NSCLC_adenocarcinoma": {"n_lines": 39, "top": [
        {"rank": 1, "gene": "EGFR", "label": "EGFR expression"},
        {"rank": 2, "gene": "TP63", "label": "TP63 expression"}]}}
    out = gene_check(groups, ["EGFR (1956)", "TP63 (8626)"], "TFF1",
                     "lung / NSCLC_adenocarcinoma", "Gefitinib")
    assert out["in_panel"] is False and out["best_rank"] is None
    assert "not among the 2 panel genes" in out["finding"]
    out = gene_check(groups, ["EGFR (1956)", "TP63 (8626)"], "TP63",
                     "lung / NSCLC_adenocarcinoma", "Gefitinib")
    assert out["best_rank"] == 2 and out["finding"].startswith("TP63 ranks 2")


def test_shap_values_on_a_tiny_forest_sum_to_output_minus_expected_value():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(int)
    forest = RandomForestClassifier(8, random_state=0).fit(x, y)
    packed = from_sklearn_forest(forest)
    values, expected, units = shap_values(packed, 0, x[:7])
    assert values.shape == (7, 4) and units == "probability"
    np.testing.assert_allclose(values.sum(1) + expected, packed.predict_proba(x[:7])[0],
                               atol=1e-6)
    # the feature that decides the label carries most of the attribution
    assert np.abs(values).mean(0).argmax() == 0
