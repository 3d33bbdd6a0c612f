"""Packed tree ensembles: the same predictions as scikit-learn and XGBoost, a breadth-first layout
that survives the 8-byte state, and SHAP values that add up to the output."""

from __future__ import annotations

import numpy as np
import pytest
import shap
import xgboost as xgb
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.ensemble import RandomForestClassifier

from engine.drug.trees import PackedTrees, from_sklearn_forest, from_xgboost, stack


def _data(seed: int = 0, n: int = 300, f: int = 12) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, f)).astype(np.float32)
    y = (x[:, 0] - 0.5 * x[:, 3] + rng.normal(size=n) > 0.8).astype(int)
    return x, y


@pytest.fixture(scope="module")
def fitted():
    x, y = _data()
    forest = RandomForestClassifier(30, class_weight="balanced_subsample",
                                    random_state=0).fit(x, y)
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 3, "eta": 0.2,
                         "max_bin": 16, "nthread": 1}, xgb.DMatrix(x, label=y), 25)
    return x, y, forest, booster


def test_packed_forest_predicts_as_sklearn_even_on_training_values(fitted):
    x, _, forest, _ = fitted
    packed = from_sklearn_forest(forest)
    new = np.random.default_rng(1).normal(size=(100, x.shape[1])).astype(np.float32)
    for data in (x, new):  # training values sit exactly on the threshold midpoints' sides
        # leaf probabilities are stored as float32
        np.testing.assert_allclose(packed.predict_proba(data)[0],
                                   forest.predict_proba(data)[:, 1], atol=1e-6)
    assert packed.n_models == 1 and len(packed.roots) == 30


def test_packed_booster_predicts_as_xgboost_including_on_split_values(fitted):
    x, _, _, booster = fitted
    packed = from_xgboost(booster, x.shape[1])
    # values exactly at a split condition go right in XGBoost (x < t is left)
    thresholds = packed.threshold[packed.left >= 0]
    at_split = np.tile(x[:1], (20, 1))
    at_split[:, packed.feature[packed.left >= 0][:20]] = np.nextafter(
        thresholds[:20], np.float32(np.inf))
    for data in (x, at_split):
        np.testing.assert_allclose(packed.predict_proba(data)[0],
                                   booster.predict(xgb.DMatrix(data)), atol=1e-6)


def test_state_round_trip_is_eight_bytes_a_node_and_predicts_identically(fitted):
    x, _, forest, booster = fitted
    both = stack([from_sklearn_forest(forest), from_sklearn_forest(forest)])
    for packed in (both, from_xgboost(booster, x.shape[1])):
        state = packed.to_state("d0.")
        size = sum(t.numel() * t.element_size() for t in state.values())
        assert size < 9 * packed.n_nodes
        back = PackedTrees.from_state(state, packed.meta(), "d0.")
        np.testing.assert_array_equal(back.predict_proba(x), packed.predict_proba(x))
        np.testing.assert_array_equal(back.left, packed.left)


def test_layout_is_breadth_first_with_adjacent_siblings(fitted):
    _, _, forest, _ = fitted
    packed = from_sklearn_forest(forest)
    inner = packed.left >= 0
    np.testing.assert_array_equal(packed.right[inner], packed.left[inner] + 1)
    # every node but a root is the child of exactly one earlier node
    children = np.concatenate([packed.left[inner], packed.right[inner]])
    assert len(set(children.tolist())) == len(children)
    assert set(children.tolist()) | set(packed.roots.tolist()) == set(range(packed.n_nodes))
    parents = np.flatnonzero(inner)
    assert np.all(packed.left[parents] > parents)


def test_a_broken_state_is_refused(fitted):
    _, _, forest, _ = fitted
    packed = from_sklearn_forest(forest)
    state = packed.to_state()
    del state["cover"]
    with pytest.raises(ValueError, match="lacks cover"):
        PackedTrees.from_state(state, packed.meta())
    state = packed.to_state()
    state["tree_size"] = state["tree_size"] + 1
    with pytest.raises(ValueError, match="add up"):
        PackedTrees.from_state(state, packed.meta())


def test_stack_and_select_keep_each_model(fitted):
    x, _, forest, _ = fitted
    a = from_sklearn_forest(forest)
    b = from_sklearn_forest(RandomForestClassifier(5, random_state=3).fit(x, fitted[1]))
    both = stack([a, b])
    assert both.n_models == 2
    np.testing.assert_array_equal(both.predict_proba(x)[1], b.predict_proba(x)[0])
    np.testing.assert_array_equal(both.select([1]).predict_proba(x)[0], b.predict_proba(x)[0])
    with pytest.raises(ValueError, match="cannot stack"):
        stack([a, from_xgboost(fitted[3], x.shape[1])])


def test_shap_values_sum_to_the_output_minus_the_expected_value(fitted):
    x, _, forest, booster = fitted
    for packed, output in ((from_sklearn_forest(forest), forest.predict_proba(x[:10])[:, 1]),
                           (from_xgboost(booster, x.shape[1]),
                            booster.predict(xgb.DMatrix(x[:10]), output_margin=True))):
        explainer = shap.TreeExplainer(packed.shap_model(0))
        values = explainer.shap_values(x[:10])
        expected = float(np.ravel(explainer.expected_value)[0])
        np.testing.assert_allclose(values.sum(1) + expected, output, atol=1e-5)
    # and agree with shap's own reading of the scikit-learn forest
    native = np.asarray(shap.TreeExplainer(forest).shap_values(x[:5]))[..., 1]
    mine = shap.TreeExplainer(from_sklearn_forest(forest).shap_model(0)).shap_values(x[:5])
    np.testing.assert_allclose(mine, native, atol=1e-6)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 4))
def test_any_forest_round_trips(seed, depth):
    x, y = _data(seed, n=80, f=5)
    if len(np.unique(y)) < 2:
        y[0] = 1 - y[0]
    forest = RandomForestClassifier(4, max_depth=depth, random_state=seed).fit(x, y)
    packed = from_sklearn_forest(forest)
    back = PackedTrees.from_state(packed.to_state(), packed.meta())
    np.testing.assert_allclose(back.predict_proba(x)[0], forest.predict_proba(x)[:, 1],
                               atol=1e-6)
    # tree by tree: every line reaches a leaf with scikit-learn's probability
    per_tree = np.stack([est.predict_proba(x)[:, 1] for est in forest.estimators_], axis=1)
    np.testing.assert_allclose(back.leaf_values(x), per_tree, atol=1e-6)
