"""Evaluation of the RT outcome estimators (RTOE) on a fresh virtual cohort, and its summaries.

The evaluation goes beyond the paper because the virtual trial's truth is known: each ensemble
is scored on a fresh virtual cohort of 2,000 patients (never trained on) against the outcomes
drawn there and against the Bayes ceiling (the truth's own AUROC on the same draws), with the
Brier score, the share of patients whose predicted probability falls anywhere along the dose
grid, and the ensemble spread (:func:`evaluate_members`, used by ``artds train rtoe`` and by
Learning Mode).

``artds train rtoe`` saves the whole evaluation as ``rtoe/<protocol>_evaluation.json``;
:func:`summarise_evaluation` is what ``artds evaluate rtoe --json`` prints of it and
:func:`load_rtoe_review` what the app's review panel shows (or the one-line reason it cannot,
under the failure policy of :mod:`engine.arclids.serving`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import pandas as pd

from engine.arclids.cohort import bayes_ceiling, generate_cohort
from engine.arclids.evaluation import auroc
from engine.arclids.rtoe import OutcomeEstimator
from engine.arclids.serving import LOAD_ERRORS, failure_reason, load_evaluation
from engine.core.protocols import Protocol, load_protocol

__all__ = [
    "EVAL_COHORT_SEED",
    "EVAL_COHORT_SIZE",
    "RtoeReview",
    "evaluate_members",
    "evaluation_cohort",
    "evaluation_summary",
    "load_rtoe_review",
    "summarise_evaluation",
]

EVAL_COHORT_SEED = 90_001
"""Seed of the fresh virtual cohort every model is scored on (never used for training)."""
EVAL_COHORT_SIZE = 2_000
"""Patients in the fresh evaluation cohort."""


@cache
def evaluation_cohort(protocol_name: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fresh virtual cohort (table, truth) that no model trains on."""
    cohort = generate_cohort(protocol_name, seed=EVAL_COHORT_SEED, n_patients=EVAL_COHORT_SIZE)
    keep = cohort.table["complete"].to_numpy()
    return (cohort.table[keep].reset_index(drop=True), cohort.truth[keep].reset_index(drop=True))


def evaluate_members(
    protocol: Protocol, outcome: str, members: Sequence[OutcomeEstimator]
) -> dict[str, float]:
    """Score an ensemble of one outcome on the fresh virtual cohort.

    Returns ``auroc_vs_truth`` (ensemble-mean probability at each patient's received dose
    against the outcomes drawn there), ``auroc_bayes_ceiling`` (the true probabilities' AUROC on
    the same draws), ``brier``, ``monotonicity_violation_rate`` (share of patients whose mean
    predicted probability decreases anywhere along the dose grid by more than 1e-6) and
    ``ensemble_sd_mean`` (mean over patients and doses of the members' standard deviation).
    """
    table, truth = evaluation_cohort(protocol.name)
    y = table[outcome].to_numpy().astype(int)
    at_received = np.stack([m.predict_proba(table) for m in members])  # [M, P]
    curves = np.stack([m.predict_proba(table, protocol.dose_grid()) for m in members])  # [M,P,D]
    mean_received = at_received.mean(axis=0)
    mean_curve = curves.mean(axis=0)
    decreasing = (np.diff(mean_curve, axis=1) < -1e-6).any(axis=1)
    return {
        "auroc_vs_truth": auroc(mean_received, y),
        "auroc_bayes_ceiling": bayes_ceiling(table, truth, outcome),
        "brier": float(np.mean((mean_received - y) ** 2)),
        "monotonicity_violation_rate": float(decreasing.mean()),
        "ensemble_sd_mean": float(curves.std(axis=0, ddof=1).mean()) if len(members) > 1 else 0.0,
        "n_eval_cases": len(y),
        "n_eval_events": int(y.sum()),
    }


# --------------------------------------------------------------------------------------------
# Summaries of the saved evaluation


def evaluation_summary(protocol_name: str, models_dir: Any = None) -> dict[str, Any]:
    """What `artds evaluate rtoe --json` prints, from the saved (hash-checked) evaluation."""
    return summarise_evaluation(*load_evaluation(protocol_name, models_dir))


def summarise_evaluation(payload: dict[str, Any], meta: Any) -> dict[str, Any]:
    """Metrics per architecture and outcome key ("tcp"/"ntcp") of a loaded evaluation payload."""
    protocol_name = payload["protocol"]
    keys = (
        "cv_auroc_mean",
        "cv_auroc_sd",
        "cv_log_loss_mean",
        "cv_log_loss_sd",
        "auroc_vs_truth",
        "auroc_bayes_ceiling",
        "brier",
        "monotonicity_violation_rate",
        "ensemble_sd_mean",
        "n_scored_splits",
        "n_events",
        "n_cases",
        "best_config",
    )
    protocol = load_protocol(protocol_name)
    outcome_key = {protocol.target.outcome: "tcp", protocol.oar.outcome: "ntcp"}
    archs = {
        arch: {
            outcome_key[o]: {k: res.get(k) for k in keys} | {"outcome": o}
            for o, res in per_outcome.items()
        }
        for arch, per_outcome in payload["architectures"].items()
    }
    return {
        "protocol": protocol_name,
        "grid": payload["grid"],
        "select_by": payload.get("select_by", "auroc"),
        "cohort_version": payload["cohort_version"],
        "data_hash": payload["data_hash"],
        "eval_cohort": payload["eval_cohort"],
        "created": meta.created,
        "architectures": archs,
        "learning_curve": payload.get("learning_curve", []),
    }


@dataclass(frozen=True)
class RtoeReview:
    """A protocol's saved outcome-estimator evaluation (hash-checked when loaded)."""

    summary: dict[str, Any]
    """:func:`summarise_evaluation`: metrics per architecture and "tcp"/"ntcp"."""
    payload: dict[str, Any]
    """The raw evaluation payload (per-split ROC points under ``architectures``)."""


def load_rtoe_review(
    protocol_name: str, models_dir: Any = None
) -> tuple[RtoeReview | None, str | None]:
    """The protocol's saved evaluation, or None and the one-line reason it did not load."""
    try:
        payload, meta = load_evaluation(protocol_name, models_dir)  # read and hash-checked once
        return RtoeReview(summary=summarise_evaluation(payload, meta), payload=payload), None
    except LOAD_ERRORS as exc:
        return None, failure_reason(exc)
