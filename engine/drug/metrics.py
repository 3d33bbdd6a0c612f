"""Metrics of the drug-resistance evaluation: F1 thresholds chosen on training lines, metrics
over held-out sets, summaries over drugs and paired bootstrap intervals.

Label convention: 1 = resistant (the positive class the models score), 0 = sensitive.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

__all__ = ["f1_threshold", "held_out_metrics", "paired_bootstrap", "split_weighted", "summary"]


def f1_threshold(y: np.ndarray, score: np.ndarray) -> float:
    """The score threshold maximising the F1 of the resistant class (predict resistant when
    ``score >= threshold``) on ``y [n]`` (1 = resistant), ``score [n]``; NaN scores are ignored.

    Among thresholds with the same F1 the highest is kept; with no finite score, ``-inf``
    (every line called resistant).
    """
    y = np.asarray(y)
    score = np.asarray(score, dtype=float)
    ok = np.isfinite(score)
    y, score = y[ok], score[ok]
    n_pos = int((y == 1).sum())
    if len(y) == 0 or n_pos == 0:
        return -math.inf
    order = np.argsort(-score, kind="stable")
    s, yy = score[order], y[order]
    tp = np.cumsum(yy == 1)
    fp = np.cumsum(yy != 1)
    last = np.r_[s[1:] != s[:-1], True]  # the last index of each run of equal scores
    f1 = 2 * tp / (tp + fp + n_pos)
    candidates = np.flatnonzero(last)
    best = candidates[np.argmax(f1[candidates])]  # first maximum = the highest threshold
    return float(s[best])


def split_weighted(parts: list[tuple[np.ndarray, np.ndarray]], positive: int,
                    metric: Callable[[np.ndarray, np.ndarray], float]) -> float | None:
    """``metric`` per held-out set, averaged with weights: the number of (positive, negative)
    pairs for AUROC-like metrics is what makes the average equal the AUROC over the pairs of
    lines held out together. Sets with a single class carry no pair and no weight."""
    total, weight = 0.0, 0.0
    for y, score in parts:
        n_pos = int((y == positive).sum())
        w = n_pos * (len(y) - n_pos)
        if w:
            total += w * metric((y == positive).astype(int), score)
            weight += w
    return total / weight if weight else None


def held_out_metrics(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> dict[str, Any]:
    """Metrics of one model and drug over the held-out sets ``(y, score, called)``.

    ``auroc`` is the AUROC over pairs of a resistant and a sensitive line **held out together**
    (same fold or same tissue): the pair-weighted mean of the per-set AUROCs. Pooling scores of
    different splits instead would also rank lines across models fitted on different training
    sets — a constant score (the drug's training rate) would then fall below 0.5 wherever
    holding a set out shifts the training rate against it. ``auprc`` and ``auprc_sensitive`` are
    averaged over the held-out sets with the same weights; ``f1`` counts every held-out line at
    its own split's threshold.
    """
    y = np.concatenate([p[0] for p in parts])
    called = np.concatenate([p[2] for p in parts])
    pairs = [(p[0], p[1]) for p in parts]
    n_res, n = int((y == 1).sum()), len(y)
    tp = int((called & (y == 1)).sum())
    fp = int((called & (y == 0)).sum())
    rate = n_res / n if n else None
    return {
        "auroc": split_weighted(pairs, 1, roc_auc_score),
        "auprc": split_weighted(pairs, 1, average_precision_score),
        "auprc_sensitive": split_weighted([(yy, -sc) for yy, sc in pairs], 0,
                                           average_precision_score),
        "f1": 2 * tp / (2 * tp + fp + (n_res - tp)) if n_res else None,
        "f1_all_resistant": 2 * rate / (1 + rate) if rate else None,
        "resistant_rate": rate,
        "n_lines": n, "n_sensitive": n - n_res, "n_resistant": n_res,
    }


def summary(values: Sequence[float | None]) -> dict[str, float | int | None]:
    arr = np.array([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if arr.size == 0:
        return {"mean": None, "sd": None, "n": 0}
    return {"mean": float(arr.mean()), "sd": float(arr.std(ddof=1)) if arr.size > 1 else 0.0,
            "n": int(arr.size)}


def paired_bootstrap(diff: np.ndarray, n_resamples: int, level: float,
                     rng: np.random.Generator) -> dict[str, float | int | None]:
    """Mean of paired differences over drugs with a percentile bootstrap interval.

    Args:
        diff: ``[n_drugs]`` differences (model − comparator) of one metric.
        n_resamples: bootstrap resamples of the drugs (with replacement).
        level: interval level in (0, 1).

    Returns:
        ``mean``, ``ci_low``, ``ci_high``, ``level``, ``n_drugs`` and ``n_better`` (drugs with a
        positive difference); the interval is None with fewer than 2 drugs.
    """
    diff = np.asarray(diff, dtype=float)
    diff = diff[np.isfinite(diff)]
    out: dict[str, float | int | None] = {
        "mean": float(diff.mean()) if diff.size else None, "ci_low": None, "ci_high": None,
        "level": level, "n_drugs": int(diff.size), "n_better": int((diff > 0).sum())}
    if diff.size >= 2:
        means = diff[rng.integers(0, diff.size, (n_resamples, diff.size))].mean(1)
        lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
        out["ci_low"], out["ci_high"] = float(lo), float(hi)
    return out
