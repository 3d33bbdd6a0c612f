"""Evaluation metrics shared by the models and the virtual trials."""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

__all__ = ["LOG_LOSS_EPS", "auroc", "log_loss"]

LOG_LOSS_EPS = 1e-6
"""Probabilities are clipped to [ε, 1 − ε] before the log-loss, so one confident miss costs at most
−ln ε ≈ 13.8 nats instead of infinity."""


def auroc(score: np.ndarray, label: np.ndarray) -> float:
    """Area under the ROC curve by the Mann–Whitney rank statistic (ties count one half).

    Args:
        score: higher means more likely positive, shape [N].
        label: 0/1 outcomes, shape [N], with at least one of each.
    """
    score = np.asarray(score, dtype=np.float64)
    label = np.asarray(label).astype(bool)
    n_pos = int(label.sum())
    n_neg = label.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUROC needs at least one positive and one negative outcome")
    ranks = rankdata(score)
    return float((ranks[label].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def log_loss(prob: np.ndarray, label: np.ndarray) -> float:
    """Mean binary cross-entropy (nats) of probabilities ``prob`` [N] against 0/1 ``label`` [N].

    A proper scoring rule: unlike AUROC it is defined when ``label`` holds one class and it
    punishes over-confident probabilities. Probabilities are clipped to
    [:data:`LOG_LOSS_EPS`, 1 − :data:`LOG_LOSS_EPS`].
    """
    p = np.clip(np.asarray(prob, dtype=np.float64), LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS)
    y = np.asarray(label).astype(bool)
    if p.shape != y.shape or p.size == 0:
        raise ValueError(f"log_loss needs matching non-empty shapes, got {p.shape} and {y.shape}")
    return float(-np.mean(np.where(y, np.log(p), np.log1p(-p))))
