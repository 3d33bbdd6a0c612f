"""Calibrated probabilities of resistance: Platt scaling fitted on out-of-fold predictions, and
the scores that say how well calibrated they are (Brier, expected calibration error).

**Why recalibrate.** The tree models are fitted with balanced class weights (sensitive lines
are ~10 % of a drug's lines), so their raw scores rank lines but estimate a *balanced* rate: a
raw 0.5 is not a 50 % chance of resistance. Platt scaling maps a score ``s`` to
``p = σ(a + b · logit(s))`` with ``(a, b)`` fitted by maximum likelihood (scikit-learn's
unpenalised logistic regression) on **leave-cell-line-out out-of-fold** scores: each line scored
by the fold model that never saw it, so the map learns how the model's scores behave on new
lines. Two parameters suit drugs with 13–180 sensitive lines, where an isotonic step function
would chase single lines. The slope is kept ≥ 0 (:func:`fit_platt`): a map that reversed the
model's ranking (possible when its out-of-fold AUROC is below 0.5) is replaced by the constant
base rate, so the calibrated probability is always non-decreasing in the score.

**How calibrated.** Fitting the map on the out-of-fold scores and measuring it on the same
scores is optimistic (slightly: two parameters). :func:`cross_fitted` measures it honestly —
each fold's scores are recalibrated by a map fitted on the other folds only — and
:func:`calibration_report` gives both, with the Brier score of always predicting the drug's
resistance rate (from the other folds) as the bar to beat.

ECE uses equal-count bins (quantiles of the calibrated probability): with ~90 % resistant lines
most probabilities crowd near the top, where equal-width bins would leave most bins empty.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.core.config import DictConfig, check_range

__all__ = [
    "PlattCalibration",
    "brier",
    "calibration_report",
    "cross_fitted",
    "expected_calibration_error",
    "fit_platt",
]

_EPS = 1e-6


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1.0 - _EPS)
    return np.log(q / (1.0 - q))


@dataclass(frozen=True)
class PlattCalibration(DictConfig):
    """``p = σ(intercept + slope · logit(score))``; identity at (0, 1)."""

    intercept: float = 0.0
    """a, logit units."""
    slope: float = 1.0
    """b ≥ 0 (0: every score maps to σ(a), the base rate)."""
    n_lines: int = 0
    """Out-of-fold predictions the map was fitted on (0: not fitted)."""

    def __post_init__(self) -> None:
        check_range("PlattCalibration.intercept", self.intercept)
        check_range("PlattCalibration.slope", self.slope, 0.0)
        check_range("PlattCalibration.n_lines", self.n_lines, 0, integer=True)

    def apply(self, score: np.ndarray) -> np.ndarray:
        """Calibrated probabilities, same shape as ``score`` (values in [0, 1]), non-decreasing
        in the score."""
        z = self.intercept + self.slope * _logit(score)
        return 1.0 / (1.0 + np.exp(-z))


def fit_platt(score: np.ndarray, y: np.ndarray) -> PlattCalibration:
    """Platt scaling of scores ``[n]`` against labels ``[n]`` (1 = resistant).

    Maximum likelihood without penalty. A negative slope (scores ranking the wrong way) is
    replaced by slope 0 and the intercept of the base rate.

    Raises:
        ValueError: shapes differ, labels other than 0/1, or a class absent.
    """
    from sklearn.linear_model import LogisticRegression

    s = np.asarray(score, dtype=np.float64)
    yy = np.asarray(y)
    if s.shape != yy.shape or s.ndim != 1:
        raise ValueError(f"score and y must be 1-D of one length, got {s.shape} and {yy.shape}")
    if not np.isin(yy, (0, 1)).all():
        raise ValueError("y must hold 0 (sensitive) and 1 (resistant) only")
    counts = np.bincount(yy.astype(np.int64), minlength=2)
    if counts.min() == 0:
        raise ValueError(f"calibration needs both classes; got {counts[0]} sensitive and "
                         f"{counts[1]} resistant lines")
    z = _logit(s)[:, None]
    if np.ptp(z) > 0:
        fit = LogisticRegression(C=np.inf, solver="lbfgs", max_iter=1000).fit(z, yy)
        a, b = float(fit.intercept_[0]), float(fit.coef_[0, 0])
    else:
        a, b = 0.0, 0.0
    if b <= 0.0 or not np.isfinite(a) or not np.isfinite(b):
        rate = counts[1] / counts.sum()
        a, b = float(np.log(rate / (1.0 - rate))), 0.0
    return PlattCalibration(intercept=a, slope=b, n_lines=len(yy))


def brier(p: np.ndarray, y: np.ndarray) -> float:
    """Mean squared difference between probabilities ``[n]`` and 0/1 outcomes ``[n]``."""
    return float(np.mean((np.asarray(p, dtype=np.float64) - np.asarray(y)) ** 2))


def expected_calibration_error(p: np.ndarray, y: np.ndarray, n_bins: int = 10) -> float:
    """ECE over ``n_bins`` equal-count bins of ``p``: Σ_b (n_b / n) · |mean p_b − mean y_b|."""
    check_range("n_bins", n_bins, 1, integer=True)
    p = np.asarray(p, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    total = 0.0
    for part in np.array_split(order, min(n_bins, len(p))):
        if len(part):
            total += len(part) * abs(p[part].mean() - y[part].mean())
    return float(total / len(p))


def cross_fitted(score: np.ndarray, y: np.ndarray, fold: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Each fold's scores recalibrated by a Platt map fitted on the other folds, and the base
    rate of the other folds: ``(p_calibrated [n], p_base_rate [n])``."""
    score, y, fold = (np.asarray(a) for a in (score, y, fold))
    p = np.empty(len(y))
    base = np.empty(len(y))
    for k in np.unique(fold):
        test = fold == k
        p[test] = fit_platt(score[~test], y[~test]).apply(score[test])
        base[test] = y[~test].mean()
    return p, base


def calibration_report(score: np.ndarray, y: np.ndarray, fold: np.ndarray,
                       calibration: PlattCalibration, n_bins: int = 10) -> dict[str, Any]:
    """Brier and ECE of the raw out-of-fold scores, of the cross-fitted recalibration (honest),
    of the served map on the same scores (optimistic) and of the base rate."""
    y = np.asarray(y)
    p_cross, p_base = cross_fitted(score, y, fold)
    p_served = calibration.apply(score)
    return {
        "n_lines": len(y), "resistant_rate": float(y.mean()), "ece_bins": n_bins,
        "brier_raw": brier(score, y), "brier_cross_fitted": brier(p_cross, y),
        "brier_in_sample": brier(p_served, y), "brier_base_rate": brier(p_base, y),
        "ece_raw": expected_calibration_error(score, y, n_bins),
        "ece_cross_fitted": expected_calibration_error(p_cross, y, n_bins),
        "ece_in_sample": expected_calibration_error(p_served, y, n_bins),
    }
