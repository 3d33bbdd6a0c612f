"""The naive baselines worked by hand, and the tuned trees' fit/predict contract."""

from __future__ import annotations

import numpy as np
import pytest

from engine.drug.baselines import (
    ForestConfig,
    TunedRandomForest,
    TunedXGBoost,
    XGBoostConfig,
    drug_rate,
    naive_mean_effects,
)
from engine.drug.data import MISSING

M = MISSING
# 4 lines x 3 drugs (1 resistant, 0 sensitive, M masked); lines 0-2 train, line 3 test
Y = np.array([[1, 0, 1],
              [0, 0, M],
              [1, 1, 1],
              [1, 1, 0]], dtype=np.int8)
TRAIN = np.array([0, 1, 2])


def test_drug_rate_by_hand():
    # drug 0: 2 of 3; drug 1: 1 of 3; drug 2: 2 of 2 (line 1 masked, not counted)
    np.testing.assert_allclose(drug_rate(Y, TRAIN), [2 / 3, 1 / 3, 1.0])
    assert np.isnan(drug_rate(np.full((2, 1), M, dtype=np.int8), np.array([0, 1]))[0])


def test_naive_mean_effects_by_hand_for_a_test_line():
    # line 3, drug 0: rate 2/3, deviations over the other drugs: drug 1: 1 - 1/3 = 2/3,
    # drug 2: 0 - 1 = -1; mean -1/6 -> 2/3 - 1/6 = 1/2
    assert naive_mean_effects(Y, TRAIN, np.array([3]), 0) == pytest.approx([0.5])
    # its own label for drug 0 is never used
    flipped = Y.copy()
    flipped[3, 0] = 0
    assert naive_mean_effects(flipped, TRAIN, np.array([3]), 0) == pytest.approx([0.5])


def test_naive_mean_effects_leaves_a_training_lines_own_labels_out():
    # line 0, drug 0, rates without line 0: drug 0 1/2, drug 1 1/2, drug 2 1/1;
    # deviations: drug 1: 0 - 1/2, drug 2: 1 - 1 -> mean -1/4 -> 1/2 - 1/4 = 1/4
    assert naive_mean_effects(Y, TRAIN, np.array([0]), 0) == pytest.approx([0.25])


def test_naive_mean_effects_is_clipped_and_falls_back_to_the_rate():
    y = np.array([[1, 1], [1, 1], [0, 0]], dtype=np.int8)
    # line 2: rate 1 (lines 0, 1) + deviation 0 - 1 = 0 -> 0; 1 + (-1) stays in [0, 1]
    assert naive_mean_effects(y, np.array([0, 1]), np.array([2]), 0) == pytest.approx([0.0])
    lonely = np.array([[1, 1], [0, 1], [1, M]], dtype=np.int8)
    # line 2 has no label for any other drug: the drug's rate alone (1/2)
    assert naive_mean_effects(lonely, np.array([0, 1]), np.array([2]), 0) == pytest.approx(
        [0.5])


def _toy(n=160, n_features=30, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, n_features)).astype(np.float32)
    y = (x[:, 0] + 0.5 * rng.normal(size=n) > -0.8).astype(int)  # ~80 % resistant
    return x, y


@pytest.mark.parametrize("model", [
    TunedRandomForest(ForestConfig(n_estimators=40, min_samples_leaf=(1, 3),
                                   max_features=("sqrt", 0.5)), seed=1),
    TunedXGBoost(XGBoostConfig(max_depth=(1, 2), n_estimators=(10, 30), inner_folds=2), seed=1),
])
def test_tuned_trees_learn_a_signal_and_give_out_of_sample_training_scores(model):
    from sklearn.metrics import roc_auc_score

    x, y = _toy()
    fitted = model.fit(x[:120], y[:120])
    assert fitted is model
    p = model.predict_proba(x[120:])
    assert p.shape == (40,) and ((p >= 0) & (p <= 1)).all()
    assert roc_auc_score(y[120:], p) > 0.8
    assert model.oof_.shape == (120,)
    ok = np.isfinite(model.oof_)
    assert ok.mean() > 0.9 and roc_auc_score(y[:120][ok], model.oof_[ok]) > 0.7
    assert len(model.grid_scores_) == 4 and model.best_params_
    np.testing.assert_array_equal(p, type(model)(model.config, seed=1).fit(
        x[:120], y[:120]).predict_proba(x[120:]))  # seeded


def test_tuned_trees_refuse_a_single_class():
    x, y = _toy()
    with pytest.raises(ValueError, match="at least 2 lines of each class"):
        TunedRandomForest().fit(x, np.ones(len(y), dtype=int))
    with pytest.raises(ValueError, match="0 \\(sensitive\\) and 1"):
        TunedXGBoost().fit(x, y * 2)


def test_configs_name_the_bad_field():
    with pytest.raises(ValueError, match=r"ForestConfig.min_samples_leaf"):
        ForestConfig(min_samples_leaf=(0,))
    with pytest.raises(ValueError, match=r"XGBoostConfig.inner_folds"):
        XGBoostConfig(inner_folds=1)
