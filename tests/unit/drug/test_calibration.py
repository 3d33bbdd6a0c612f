"""Platt scaling on out-of-fold scores: monotone, recovers a known map, falls back to the base
rate when the scores rank the wrong way; Brier, ECE and cross-fitting by hand."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.drug.calibration import (
    PlattCalibration,
    brier,
    calibration_report,
    cross_fitted,
    expected_calibration_error,
    fit_platt,
)


def _logit(p):
    return np.log(p / (1 - p))


def test_platt_recovers_a_known_map():
    rng = np.random.default_rng(0)
    score = rng.uniform(0.02, 0.98, 20_000)
    truth = 1 / (1 + np.exp(-(0.7 + 0.4 * _logit(score))))
    y = (rng.random(score.size) < truth).astype(int)
    fit = fit_platt(score, y)
    assert fit.intercept == pytest.approx(0.7, abs=0.05)
    assert fit.slope == pytest.approx(0.4, abs=0.03)
    assert fit.n_lines == score.size


def test_scores_ranking_the_wrong_way_give_the_base_rate():
    score = np.linspace(0.05, 0.95, 100)
    y = (score < 0.3).astype(int)  # high score = sensitive: slope would be negative
    fit = fit_platt(score, y)
    assert fit.slope == 0.0
    np.testing.assert_allclose(fit.apply(score), y.mean())


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000))
def test_the_fitted_map_is_non_decreasing_and_inside_0_1(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 200))
    score = rng.random(n)
    y = (rng.random(n) < rng.random()).astype(int)
    y[:2] = [0, 1]
    fit = fit_platt(score, y)
    grid = np.linspace(0, 1, 101)
    p = fit.apply(grid)
    assert np.all(np.diff(p) >= -1e-12)
    assert np.all((p >= 0) & (p <= 1))


def test_fit_refuses_bad_labels():
    with pytest.raises(ValueError, match="both classes"):
        fit_platt(np.array([0.2, 0.4]), np.array([1, 1]))
    with pytest.raises(ValueError, match="0 \\(sensitive\\) and 1"):
        fit_platt(np.array([0.2, 0.4]), np.array([0, 2]))
    with pytest.raises(ValueError, match="slope"):
        PlattCalibration(slope=-1.0)


def test_brier_and_ece_by_hand():
    p = np.array([0.1, 0.1, 0.9, 0.9])
    y = np.array([0, 1, 1, 1])
    assert brier(p, y) == pytest.approx((0.01 + 0.81 + 0.01 + 0.01) / 4)
    # two equal-count bins: {0.1, 0.1} vs mean y 0.5, {0.9, 0.9} vs 1.0
    assert expected_calibration_error(p, y, n_bins=2) == pytest.approx(0.5 * 0.4 + 0.5 * 0.1)


def test_cross_fitting_never_uses_the_fold_it_scores():
    rng = np.random.default_rng(1)
    score = rng.random(90)
    y = (rng.random(90) < score).astype(int)
    fold = np.repeat([0, 1, 2], 30)
    p, base = cross_fitted(score, y, fold)
    for k in range(3):
        test = fold == k
        expected = fit_platt(score[~test], y[~test]).apply(score[test])
        np.testing.assert_allclose(p[test], expected)
        np.testing.assert_allclose(base[test], y[~test].mean())
    report = calibration_report(score, y, fold, fit_platt(score, y))
    assert report["brier_in_sample"] <= report["brier_cross_fitted"] + 1e-12
    assert set(report) >= {"brier_raw", "brier_base_rate", "ece_raw", "ece_cross_fitted",
                           "ece_in_sample"}
