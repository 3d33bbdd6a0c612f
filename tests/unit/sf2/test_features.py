"""Gene selection: variance filter, correlation pruning, LASSO at a fixed size, ranking."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.linear_model import Lasso

from engine.sf2.features import (
    FeatureConfig,
    GeneSelector,
    correlation_prune,
    lasso_fixed_size,
    variance_filter,
)


def _synthetic(n=80, p=120, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, p))
    y = 0.6 + 0.08 * x[:, 0] - 0.06 * x[:, 1] + 0.05 * x[:, 2] + 0.02 * rng.normal(size=n)
    return pd.DataFrame(x, columns=[f"G{j}" for j in range(p)]), y


@settings(max_examples=15)
@given(st.integers(0, 1000), st.integers(3, 30))
def test_lasso_has_exactly_the_wanted_size_and_is_a_lasso_solution(seed, k):
    x, y = _synthetic(n=50, p=60, seed=seed)
    xs = (x - x.mean()) / x.std(ddof=0)
    yc = y - y.mean()
    coef, alpha = lasso_fixed_size(xs.to_numpy(), yc, k)
    assert (coef != 0).sum() == k
    ref = Lasso(alpha=alpha, fit_intercept=False, tol=1e-10, max_iter=200_000).fit(xs, yc)
    if (ref.coef_ != 0).sum() == k:  # not a trimmed path jump: the exact LASSO solution
        np.testing.assert_allclose(coef, ref.coef_, atol=1e-6)


def test_variance_filter_and_correlation_prune():
    rng = np.random.default_rng(1)
    a = rng.normal(size=100)
    x = pd.DataFrame({"A": a * 2.0, "A_copy": a * 2.0 + 0.01 * rng.normal(size=100),
                      "B": rng.normal(size=100), "flat": 0.1 * rng.normal(size=100)})
    assert variance_filter(x, 0.5) == ["A", "A_copy", "B"]
    kept = correlation_prune(x, 0.8)
    assert "B" in kept and "flat" in kept and len({"A", "A_copy"} & set(kept)) == 1
    corr = x[kept].corr().abs().to_numpy()
    assert (corr[~np.eye(len(kept), dtype=bool)] <= 0.8).all()


def test_selector_finds_the_signal_genes_and_reports_stability():
    x, y = _synthetic()
    sel = GeneSelector(FeatureConfig(n_nonzero=10, n_top=5, n_repeats=4)).fit(x, y)
    assert set(sel.genes_[:3]) == {"G0", "G1", "G2"}
    r = sel.ranking_
    assert list(r["rank"]) == list(range(1, len(r) + 1))
    assert r.loc["G0", "selection_frequency"] == 1.0
    assert r.loc["G1", "mean_coef"] < 0 < r.loc["G0", "mean_coef"]
    assert (r["mean_abs_coef"].diff().dropna() <= 1e-15).all()
    assert len(sel.alphas_) == 4 * 5


def test_selector_is_deterministic_and_checks_inputs():
    x, y = _synthetic()
    a = GeneSelector(FeatureConfig(n_repeats=2)).fit(x, y).ranking_
    b = GeneSelector(FeatureConfig(n_repeats=2)).fit(x, y).ranking_
    pd.testing.assert_frame_equal(a, b)
    with pytest.raises(ValueError, match="lines but y"):
        GeneSelector().fit(x, y[:-1])
    with pytest.raises(ValueError, match="at least 10 lines"):
        GeneSelector().fit(x.iloc[:6], y[:6])
