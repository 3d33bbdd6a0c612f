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
from scipy.optimize import minimize
from scipy.special import expit, logit

from engine.arclids.calibration import (
    CALIBRATION_COHORT_SEED,
    CALIBRATION_COHORT_SIZE,
    IDENTITY,
    OutcomeCalibration,
)
from engine.arclids.cohort import ReferenceModel, bayes_ceiling, generate_cohort
from engine.arclids.ensemble import member_calibrated_proba
from engine.arclids.evaluation import auroc
from engine.arclids.rtoe import OutcomeEstimator
from engine.arclids.serving import LOAD_ERRORS, failure_reason, load_evaluation
from engine.core.protocols import Protocol, load_protocol

__all__ = [
    "EVAL_COHORT_SEED",
    "EVAL_COHORT_SIZE",
    "OutcomeQuality",
    "RtoeReview",
    "calibration_cohort",
    "calibration_metrics",
    "evaluate_members",
    "evaluation_cohort",
    "evaluation_summary",
    "load_rtoe_review",
    "probability_quality",
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


@cache
def calibration_cohort(protocol_name: str) -> tuple[pd.DataFrame, tuple[np.ndarray, np.ndarray]]:
    """The virtual cohort the intervals are calibrated on: its complete cases and their true
    (TCP, NTCP) over the dose grid, each [P, D]. Neither trained nor evaluated on."""
    cohort = generate_cohort(protocol_name, seed=CALIBRATION_COHORT_SEED,
                             n_patients=CALIBRATION_COHORT_SIZE)
    table = cohort.complete_table.reset_index(drop=True)
    protocol = load_protocol(protocol_name)
    truth = ReferenceModel(protocol_name).predict_curves(table, protocol)
    return table, (truth.tcp[0], truth.ntcp[0])


RELIABILITY_BINS = 10
"""Equal-width bins of the predicted probability in the reliability diagram and the ECE."""


def calibration_metrics(pred: np.ndarray, y: np.ndarray, p_true: np.ndarray) -> dict[str, Any]:
    """How far predicted probabilities at the received dose are from the truth and the outcomes.

    Args:
        pred: predicted probability per patient, [P].
        y: outcomes drawn there, 0/1, [P].
        p_true: the virtual trial's true probability there, [P].

    Returns:
        ``citl`` (mean predicted − mean true probability), ``slope`` (logistic calibration slope
        of the outcomes on logit(pred); 1 is ideal, < 1 over-confident), ``brier``,
        ``brier_base_rate`` (always predicting this cohort's own event rate: the strongest
        constant), ``brier_skill`` (1 − brier / brier_base_rate; > 0 beats the base rate),
        ``ece`` (expected calibration error over equal-width bins, against the outcomes),
        ``mae_truth`` (mean |pred − true probability|) and ``reliability`` (per bin: mean
        predicted, observed rate, mean true probability, count).
    """
    pred, y, p_true = (np.asarray(a, dtype=np.float64) for a in (pred, y, p_true))
    base = float(y.mean())
    brier = float(np.mean((pred - y) ** 2))
    brier_base = float(np.mean((base - y) ** 2))
    bins = np.clip((pred * RELIABILITY_BINS).astype(int), 0, RELIABILITY_BINS - 1)
    rows, ece = [], 0.0
    for b in range(RELIABILITY_BINS):
        mask = bins == b
        if not mask.any():
            continue
        rows.append({"bin_lo": b / RELIABILITY_BINS, "bin_hi": (b + 1) / RELIABILITY_BINS,
                     "mean_predicted": float(pred[mask].mean()),
                     "observed_rate": float(y[mask].mean()),
                     "mean_true": float(p_true[mask].mean()), "n": int(mask.sum())})
        ece += mask.mean() * abs(pred[mask].mean() - y[mask].mean())
    return {
        "citl": float(pred.mean() - p_true.mean()),
        "slope": _calibration_slope(pred, y),
        "brier": brier,
        "brier_base_rate": brier_base,
        "brier_skill": 1.0 - brier / brier_base if brier_base > 0 else None,
        "ece": float(ece),
        "mae_truth": float(np.mean(np.abs(pred - p_true))),
        "reliability": rows,
    }


def _calibration_slope(pred: np.ndarray, y: np.ndarray) -> float | None:
    """Slope of the logistic regression of the outcomes on logit(pred); None for one class."""
    if y.min() == y.max():
        return None
    z = logit(np.clip(pred, 1e-7, 1 - 1e-7))

    def nll(theta: np.ndarray) -> tuple[float, np.ndarray]:
        s = theta[0] + theta[1] * z
        r = expit(s) - y
        return float(np.sum(np.logaddexp(0.0, s) - y * s)), np.array([r.sum(), (r * z).sum()])

    return float(minimize(nll, np.array([0.0, 1.0]), jac=True, method="L-BFGS-B").x[1])


def dose_response_metrics(mean_curve: np.ndarray, true_curve: np.ndarray) -> dict[str, float]:
    """How near the served curves are to the truth along the whole dose grid.

    Args:
        mean_curve: served ensemble-mean probability, [P, D] over the protocol's dose grid.
        true_curve: the virtual trial's true probability there, [P, D].

    Returns:
        ``grid_mse_truth`` (mean over patient × dose points of the squared difference,
        probability²: the criterion the recalibration map is chosen by, here on held-out
        patients), ``rise_served_median`` and ``rise_true_median`` (median over patients of the
        probability's rise from the lowest to the highest grid dose) and ``rise_mae`` (mean
        absolute difference of the two rises: a flat curve where the truth rises shows here).
    """
    served_rise = mean_curve[:, -1] - mean_curve[:, 0]
    true_rise = true_curve[:, -1] - true_curve[:, 0]
    return {
        "grid_mse_truth": float(np.mean((mean_curve - true_curve) ** 2)),
        "rise_served_median": float(np.median(served_rise)),
        "rise_true_median": float(np.median(true_rise)),
        "rise_mae": float(np.mean(np.abs(served_rise - true_rise))),
    }


def evaluate_members(
    protocol: Protocol,
    outcome: str,
    members: Sequence[OutcomeEstimator],
    calibration: OutcomeCalibration = IDENTITY,
) -> dict[str, Any]:
    """Score an ensemble of one outcome, as served (recalibrated), on the fresh virtual cohort.

    Returns ``auroc_vs_truth`` (ensemble-mean probability at each patient's received dose
    against the outcomes drawn there), ``auroc_bayes_ceiling`` (the true probabilities' AUROC on
    the same draws), ``brier``, ``monotonicity_violation_rate`` (share of patients whose mean
    predicted probability decreases anywhere along the dose grid by more than 1e-6),
    ``ensemble_sd_mean`` (mean over patients and doses of the members' standard deviation),
    ``calibration`` (:func:`calibration_metrics` plus ``interval_level``,
    ``interval_coverage_truth`` — the share of patient × dose points whose true probability lies
    in the served interval — and ``interval_width_mean``), ``calibration_raw`` (the same
    metrics before recalibration) and ``dose_response`` (:func:`dose_response_metrics`).
    """
    table, truth = evaluation_cohort(protocol.name)
    y = table[outcome].to_numpy().astype(int)
    raw_received = np.stack([m.predict_proba(table) for m in members])  # [M, P]
    at_received = member_calibrated_proba(members, calibration, table)  # [M, P]
    curves = member_calibrated_proba(members, calibration, table, protocol.dose_grid())
    mean_received = at_received.mean(axis=0)
    mean_curve = curves.mean(axis=0)
    decreasing = (np.diff(mean_curve, axis=1) < -1e-6).any(axis=1)
    true_curves = ReferenceModel(protocol.name).predict_curves(table, protocol)
    true_curve = (true_curves.tcp if outcome == protocol.target.outcome else true_curves.ntcp)[0]
    lo, hi = calibration.interval(curves)
    p_true = truth[f"p_{outcome}"].to_numpy()
    return {
        "auroc_vs_truth": auroc(mean_received, y),
        "auroc_bayes_ceiling": bayes_ceiling(table, truth, outcome),
        "brier": float(np.mean((mean_received - y) ** 2)),
        "monotonicity_violation_rate": float(decreasing.mean()),
        "ensemble_sd_mean": float(curves.std(axis=0, ddof=1).mean()) if len(members) > 1 else 0.0,
        "n_eval_cases": len(y),
        "n_eval_events": int(y.sum()),
        "n_members": len(members),
        "calibration": calibration_metrics(mean_received, y, p_true) | {
            "interval_level": calibration.interval_level,
            "interval_coverage_truth": float(((true_curve >= lo) & (true_curve <= hi)).mean()),
            "interval_width_mean": float((hi - lo).mean()),
        },
        "calibration_raw": {
            k: v for k, v in calibration_metrics(raw_received.mean(axis=0), y, p_true).items()
            if k != "reliability"
        },
        "dose_response": dose_response_metrics(mean_curve, true_curve),
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
        "calibration",
        "calibration_raw",
        "calibrator",
        "dose_response",
        "n_members",
        "n_patients",
        "split_by",
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
        "regret_learning_curve": payload.get("regret_learning_curve", []),
        "n_members": payload.get("n_members"),
        "calibration_cohort": payload.get("calibration_cohort"),
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


SKILL_MARGIN = 0.02
"""Brier skill within ±this of 0 is reported as "about the same" as the base rate: smaller
differences are within what another fresh cohort could change."""


@dataclass(frozen=True)
class OutcomeQuality:
    """How good one served outcome probability is on the fresh virtual cohort (patients no model
    was trained, tuned or calibrated on), against the base rate — for the label beside it."""

    outcome_key: str
    """``"tcp"`` or ``"ntcp"``."""
    brier: float
    """Brier score of the served probability at the received dose (0 best)."""
    brier_base_rate: float
    """Brier score of always predicting the cohort's event rate (the no-skill baseline)."""
    interval_level: float | None
    """Level of the served interval, in (0, 1); None when the model states none."""
    coverage_truth: float | None
    """Share of patient × dose points whose true probability lies in that interval."""

    @property
    def brier_skill(self) -> float:
        """1 − Brier / Brier of the base rate: above 0 beats always predicting the rate."""
        return 1.0 - self.brier / self.brier_base_rate if self.brier_base_rate > 0 else 0.0

    def against_base_rate(self, margin: float = SKILL_MARGIN) -> str:
        """``"better"``, ``"worse"`` or ``"about the same"`` as always predicting the event rate
        (a Brier skill within ±``margin`` is about the same)."""
        if self.brier_skill > margin:
            return "better"
        return "worse" if self.brier_skill < -margin else "about the same"


def probability_quality(summary: dict[str, Any] | None, arch: str
                        ) -> tuple[OutcomeQuality, ...] | None:
    """TCP and NTCP quality of architecture ``arch`` from :func:`summarise_evaluation` of the
    saved evaluation; None when it holds no calibration for ``arch`` (older evaluation, other
    architecture)."""
    entry = ((summary or {}).get("architectures") or {}).get(arch) or {}
    out = []
    for key in ("tcp", "ntcp"):
        cal = (entry.get(key) or {}).get("calibration") or {}
        if cal.get("brier") is None or cal.get("brier_base_rate") is None:
            return None
        out.append(OutcomeQuality(
            outcome_key=key, brier=float(cal["brier"]),
            brier_base_rate=float(cal["brier_base_rate"]),
            interval_level=cal.get("interval_level"),
            coverage_truth=cal.get("interval_coverage_truth")))
    return tuple(out)
