"""Evaluation metrics shared by the models and the virtual trials."""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

__all__ = ["auroc"]


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
