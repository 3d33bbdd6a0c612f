"""Evaluation metrics shared by the models and the virtual trials."""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import rankdata

__all__ = [
    "LOG_LOSS_EPS",
    "SELF_EVALUATION_LABELS",
    "auroc",
    "best_fixed_dose",
    "gain_captured",
    "log_loss",
    "mad",
    "mean_sem",
    "positive_outcome",
    "rmsd",
    "self_evaluation",
    "verdict_shares",
]

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


# ------------------------------------------------------------------------------------------------
# Dose recommendations against clinical decisions (ARCliDS Table 1, Figs. 10–11) and the oracle

SELF_EVALUATION_LABELS: tuple[str, ...] = ("good", "bad", "not_sure")
"""Self-evaluation verdicts, in display order."""


def rmsd(a: np.ndarray, b: np.ndarray) -> float:
    """Root mean squared difference of two dose arrays [N] (Gy/fraction); NaN for N = 0."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.sqrt(np.mean((a - b) ** 2))) if a.size else math.nan


def mad(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two dose arrays [N] (Gy/fraction); NaN for N = 0."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.mean(np.abs(a - b))) if a.size else math.nan


def mean_sem(values: np.ndarray) -> dict[str, float | None]:
    """``{"mean", "sem"}`` of values [M] (sem = sd(ddof=1)/√M; None for M < 2; NaNs dropped)."""
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return {"mean": None, "sem": None}
    sem = float(arr.std(ddof=1) / math.sqrt(arr.size)) if arr.size > 1 else None
    return {"mean": float(arr.mean()), "sem": sem}


def positive_outcome(tumour_controlled: np.ndarray, toxicity: np.ndarray) -> np.ndarray:
    """True where the clinical outcome was positive: tumour controlled and no toxicity."""
    return (np.asarray(tumour_controlled) == 1) & (np.asarray(toxicity) == 0)


def self_evaluation(
    recommended_gy: np.ndarray,
    clinical_gy: np.ndarray,
    tumour_controlled: np.ndarray,
    toxicity: np.ndarray,
    window_gy: float,
) -> np.ndarray:
    """Verdict per case on a recommendation against the clinical decision (ARCliDS Table 1).

    Both TCP and NTCP rise with dose, so a known outcome says which way a better dose lay
    (reconstructed from the paper's text, DESIGN.md §3):

    - tumour not controlled, no toxicity: a higher dose than given is ``"good"``, otherwise
      ``"bad"`` (repeating or lowering a dose that failed to control the tumour);
    - toxicity (with or without control): a lower dose is ``"good"``, otherwise ``"bad"``;
    - controlled without toxicity: ``"good"`` when within ``window_gy`` of the clinical dose
      (inclusive), otherwise ``"not_sure"`` (another dose might also have worked).

    Args:
        recommended_gy, clinical_gy: doses per fraction, Gy, [N].
        tumour_controlled, toxicity: observed 0/1 outcomes, [N].
        window_gy: agreement window, Gy (the paper: 10 % of the largest dose of the grid).

    Returns:
        Array [N] of "good" / "bad" / "not_sure".
    """
    rec = np.asarray(recommended_gy, dtype=np.float64)
    clin = np.asarray(clinical_gy, dtype=np.float64)
    tc = np.asarray(tumour_controlled).astype(int)
    tox = np.asarray(toxicity).astype(int)
    # Round the differences so that float noise (2.3 − 2.2999999) does not decide a verdict.
    diff = np.round(rec - clin, 9)
    out = np.full(rec.shape, "bad", dtype=object)
    failed = (tc == 0) & (tox == 0)
    out[failed & (diff > 0)] = "good"
    out[(tox == 1) & (diff < 0)] = "good"
    positive = (tc == 1) & (tox == 0)
    out[positive] = np.where(np.abs(diff[positive]) <= window_gy + 1e-9, "good", "not_sure")
    return out


def verdict_shares(verdicts: np.ndarray) -> dict[str, float | int | None]:
    """Share of each verdict (``good``, ``bad``, ``not_sure``) and the count ``n``."""
    verdicts = np.asarray(verdicts, dtype=object)
    n = int(verdicts.size)
    shares: dict[str, float | int | None] = {
        label: (float(np.mean(verdicts == label)) if n else None)
        for label in SELF_EVALUATION_LABELS
    }
    shares["n"] = n
    return shares


def best_fixed_dose(reward: np.ndarray) -> tuple[int, float]:
    """The one dose index that maximises the mean reward over cases, and that mean.

    Args:
        reward: [P, D] reward of every case at every dose.

    Returns:
        (index of the best dose for everyone, lowest on ties; its mean reward).
    """
    mean = np.asarray(reward, dtype=np.float64).mean(axis=0)  # [D]
    j = int(np.argmax(mean))
    return j, float(mean[j])


def gain_captured(policy: float, argmax: float, fixed: float) -> float | None:
    """Share of the achievable gain over the best fixed dose a policy captures.

    (policy − fixed) / (argmax − fixed), all mean rewards of the same environment. 1 means the
    policy matches the exact argmax, 0 means it does no better than one dose for everyone,
    negative means worse. None when the argmax gains nothing over the fixed dose (no gain to
    capture).
    """
    gap = argmax - fixed
    if not np.isfinite(gap) or gap <= 1e-12:
        return None
    return float((policy - fixed) / gap)
