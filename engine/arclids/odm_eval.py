"""Evaluation of the ODM ensembles, its summaries, and the app's review of them.

:func:`evaluate_odm` scores one RTOE+DDQN pairing (``artds train odm`` saves the result as
``odm/<protocol>_evaluation.json``): RMSD and MAD against the historic clinical decisions, the
self-evaluation, how much of the exact argmax's reward the ODM reaches (per serving rule and per
member), and regret against the virtual trial's oracle, on the training trial and on a fresh
virtual cohort. The evaluation scores the float16-rounded networks, i.e. exactly what is served.

The regret rows (:data:`REGRET_POLICIES`) judge the recommendation against the clinician: the
served dose, the historic clinicians' doses, one constant dose for everyone (chosen on the
training trial's truth), the exact argmax of the outcome model's reward, and the advised dose
(the clinician's dose kept unless the outcome models are confident the recommendation is better,
:func:`engine.arclids.recommend.compare_proposal`).

:func:`summarise_odm_evaluation` is what ``artds evaluate odm --json`` prints of it (flagged
stale when it was computed against another outcome model than the one served now);
:func:`load_odm_review` is what the app's review panel shows, with the GAN's distribution
checks, each with the one-line reason it did not load (the failure policy of
:mod:`engine.arclids.serving`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from engine.arclids.arte import at_dose, reward
from engine.arclids.cohort import ReferenceModel
from engine.arclids.evaluation import (
    best_fixed_dose,
    gain_captured,
    mad,
    mean_sem,
    positive_outcome,
    rmsd,
    self_evaluation,
    verdict_shares,
)
from engine.arclids.odm import ODMConfig, ODMEnsemble, ODMPrediction
from engine.arclids.outcomes import OutcomeCurves
from engine.arclids.recommend import ADVICE_THRESHOLD, compare_proposal
from engine.arclids.serving import (
    LOAD_ERRORS,
    N_SYNTHETIC,
    failure_reason,
    load_gan_evaluation,
    load_odm_evaluation,
    served_rtoe_versions,
)
from engine.core.protocols import Protocol
from engine.core.schema import case_labels

__all__ = [
    "ADVISED_NOTE",
    "REGRET_LABELS",
    "REGRET_POLICIES",
    "OdmReview",
    "TrackRecord",
    "best_constant_dose_gy",
    "evaluate_odm",
    "load_odm_review",
    "missing_regret_policies",
    "odm_summary",
    "regret",
    "summarise_odm_evaluation",
    "track_record",
]


REGRET_POLICIES = ("served", "historic", "best_constant_dose", "exact_argmax", "advised")
"""The policies every evaluation's ``regret`` compares, each a dose per case: ``served`` (the
dose the app shows, the ODM ensemble's under its serving rule), ``historic`` (the virtual trial's
clinicians, ``dose_adapt_gy``), ``best_constant_dose`` (one dose for everyone,
:func:`best_constant_dose_gy` of the training trial), ``exact_argmax`` (the grid argmax of the
served outcome model's ensemble-mean reward) and ``advised`` (the clinician's dose as the
proposal, changed to the served dose only where ``p_recommended_better`` clears
:data:`engine.arclids.recommend.ADVICE_THRESHOLD`). Evaluations saved before these rows existed
lack some of them: readers must tolerate that."""
REGRET_LABELS = {
    "served": "served recommendation",
    "historic": "historic clinicians",
    "best_constant_dose": "best constant dose",
    "exact_argmax": "exact argmax of the model",
    "advised": "advised dose",
}
"""What each policy of :data:`REGRET_POLICIES` is called on screen (plain text); say with it
what the advised dose is (:data:`ADVISED_NOTE`)."""
ADVISED_NOTE = (f"Advised dose: the clinician's, changed to the recommendation only where "
                f"p_recommended_better ≥ {ADVICE_THRESHOLD:g}")
"""One line on the advised policy, for the figures, tables and model cards that show it."""


def _true_reward(protocol: Protocol, truth_tcp: np.ndarray, truth_ntcp: np.ndarray,
                 dose_gy: np.ndarray) -> np.ndarray:
    """True reward at one (possibly off-grid) dose per case, [P]."""
    doses = protocol.dose_grid()
    return reward(at_dose(doses, truth_tcp, dose_gy), at_dose(doses, truth_ntcp, dose_gy),
                  protocol.goals)


def _policy_scores(
    protocol: Protocol, arte_tcp: np.ndarray, arte_ntcp: np.ndarray, dose_gy: np.ndarray
) -> np.ndarray:
    """ARTE (ensemble-mean) reward at one dose per case, [P]."""
    doses = protocol.dose_grid()
    return reward(at_dose(doses, arte_tcp, dose_gy), at_dose(doses, arte_ntcp, dose_gy),
                  protocol.goals)


def best_constant_dose_gy(protocol: Protocol, training: pd.DataFrame) -> float:
    """One adaptive dose for everyone: the grid dose with the highest mean *true* reward on the
    training trial. The truth makes it the strongest constant policy a clinic could choose (as if
    the population dose–response were known), so a learned policy is never flattered by it."""
    truth = ReferenceModel(protocol.name).predict_curves(training, protocol)
    mean_reward = reward(truth.tcp[0], truth.ntcp[0], protocol.goals).mean(axis=0)  # [D]
    return float(protocol.dose_grid()[int(np.argmax(mean_reward))])


def regret(protocol: Protocol, cases: pd.DataFrame, policies: dict[str, np.ndarray]
           ) -> dict[str, Any]:
    """Per policy (a dose per case, Gy): mean |dose − oracle dose| and mean true-reward loss
    against the oracle (the true reward's argmax over the grid), on ``cases``."""
    truth = ReferenceModel(protocol.name).predict_curves(cases, protocol)
    t_tcp, t_ntcp = truth.tcp[0], truth.ntcp[0]  # [P, D]
    t_reward = reward(t_tcp, t_ntcp, protocol.goals)
    doses = protocol.dose_grid()
    oracle_j = np.argmax(t_reward, axis=1)
    oracle_dose = doses[oracle_j]
    oracle_reward = t_reward[np.arange(len(cases)), oracle_j]
    out: dict[str, Any] = {
        "n_cases": len(cases),
        "oracle_true_reward_mean": float(oracle_reward.mean()),
        "oracle_dose_mean_gy": float(oracle_dose.mean()),
    }
    for name, dose in policies.items():
        r = _true_reward(protocol, t_tcp, t_ntcp, dose)
        out[name] = {
            "dose_abs_error_gy": float(np.mean(np.abs(dose - oracle_dose))),
            "true_reward_loss": float(np.mean(oracle_reward - r)),
            "true_reward_mean": float(r.mean()),
        }
    return out


def _reward_capture(
    protocol: Protocol, tcp: np.ndarray, ntcp: np.ndarray, dose_gy: np.ndarray
) -> dict[str, Any]:
    """argmax_reward_ratio and gain_captured of a dose per case on one ARTE ([P, D] curves)."""
    r = reward(tcp, ntcp, protocol.goals)  # [P, D]
    r_policy = float(_policy_scores(protocol, tcp, ntcp, dose_gy).mean())
    r_argmax = float(r.max(axis=1).mean())
    j_fixed, r_fixed = best_fixed_dose(r)
    return {
        "argmax_reward_ratio": r_policy / r_argmax if r_argmax > 0 else None,
        "gain_captured": gain_captured(r_policy, r_argmax, r_fixed),
        "reward_mean": r_policy,
        "exact_argmax_reward_mean": r_argmax,
        "best_fixed_dose_gy": float(protocol.dose_grid()[j_fixed]),
        "best_fixed_dose_reward_mean": r_fixed,
    }


def evaluate_odm(
    protocol: Protocol,
    model: Any,
    odm: ODMEnsemble,
    trial: pd.DataFrame,
    fresh: pd.DataFrame,
) -> dict[str, Any]:
    """Every metric of one RTOE+DDQN pairing (see the module docstring and the model card).

    Args:
        protocol: the protocol.
        model: the served outcome ensemble the ODM was trained on (ARTE); its curves, with
            their interval, also decide the advice on the clinician's dose.
        odm: the ODM ensemble.
        trial: complete cases of the training trial with ``dose_adapt_gy`` and both outcomes
            (the historic clinical decisions the paper compares with); the best constant dose
            is chosen on it.
        fresh: complete cases of a fresh virtual cohort, never trained on (regret on a larger
            sample, free of the training trial's optimism).

    Returns ``trial`` and ``fresh`` metrics; each ``regret`` has a row per policy of
    :data:`REGRET_POLICIES` (see :func:`_regret_rows`).
    """
    doses = protocol.dose_grid()
    window = 0.1 * float(doses[-1])
    constant = best_constant_dose_gy(protocol, trial)
    out: dict[str, Any] = {"odm_version": odm.version, "rtoe_version": model.version,
                           "self_evaluation_window_gy": window}
    cohort_metrics = {}
    for label, cases in (("trial", trial), ("fresh", fresh)):
        curves = model.predict_curves(cases, protocol)  # with the interval the app shows
        members_tcp = np.asarray(curves.tcp, dtype=np.float64)  # [M, P, D]
        members_ntcp = np.asarray(curves.ntcp, dtype=np.float64)
        pred = odm.predict(cases)
        tcp, ntcp = members_tcp.mean(axis=0), members_ntcp.mean(axis=0)  # [P, D]
        exact_dose = doses[np.argmax(reward(tcp, ntcp, protocol.goals), axis=1)]
        served = _reward_capture(protocol, tcp, ntcp, pred.dose_gy)
        # Each member on the environment it planned on: its own ARTE member, or the mean.
        own = odm.planning_arte == "member"
        per_member = [
            _reward_capture(protocol, members_tcp[k] if own else tcp,
                            members_ntcp[k] if own else ntcp, pred.member_dose_gy[k])
            for k in range(pred.n_members)
        ]
        by_rule = {
            rule: {key: value for key, value in _reward_capture(protocol, tcp, ntcp, dose).items()
                   if key in ("argmax_reward_ratio", "gain_captured", "reward_mean")}
            for rule, dose in (("mean-dose", pred.member_mean_dose_gy),
                               ("mean-q", pred.mean_q_dose_gy))
        }
        m: dict[str, Any] = {
            "n_cases": len(cases),
            **served,
            "serving_rule": odm.serving_rule,
            "by_serving_rule": by_rule,
            "per_member": {
                key: mean_sem(np.array([pm[key] if pm[key] is not None else np.nan
                                        for pm in per_member]))
                for key in ("argmax_reward_ratio", "gain_captured")
            },
            "exact_match_rate": float(np.mean(np.isclose(pred.dose_gy, exact_dose))),
            "dose_abs_error_vs_exact_argmax_gy": float(np.mean(np.abs(pred.dose_gy - exact_dose))),
            "dose_sem_mean_gy": float(pred.dose_sem_gy.mean()),
            "q_value_mean": float(pred.q_value.mean()),
            "regret": _regret_rows(protocol, cases, curves, pred, exact_dose, constant),
        }
        if label == "trial":
            m.update(_against_clinic(protocol, cases, pred, window))
            m["patients"] = _patient_rows(protocol, cases, pred, exact_dose, window)
        cohort_metrics[label] = m
    out["trial"] = cohort_metrics["trial"]
    out["fresh"] = cohort_metrics["fresh"]
    return out


def _regret_rows(protocol: Protocol, cases: pd.DataFrame, curves: OutcomeCurves,
                 pred: ODMPrediction, exact_dose: np.ndarray, constant_gy: float
                 ) -> dict[str, Any]:
    """:func:`regret` of every policy of :data:`REGRET_POLICIES` (and of both serving rules).

    Args:
        curves: the served outcome model's curves of ``cases`` (with their interval), behind
            the advice.
        pred: the ODM ensemble's prediction for ``cases``; ``pred.dose_gy`` is served.
        exact_dose: the exact argmax of the served model's reward per case, Gy, [P].
        constant_gy: the best constant dose of the training trial, Gy.

    Besides the rows: ``best_constant_dose_gy`` (the constant dose), and in the ``advised`` row
    ``change_share`` (share of cases advised to change from the clinician's dose),
    ``p_recommended_better_mean`` and the ``threshold`` applied.
    """
    clinical = cases["dose_adapt_gy"].to_numpy(np.float64)
    advice = compare_proposal(curves, protocol, pred.dose_gy, clinical)
    out = regret(protocol, cases, {
        "served": pred.dose_gy,
        "historic": clinical,
        "best_constant_dose": np.full(len(cases), constant_gy),
        "exact_argmax": exact_dose,
        "advised": advice.advised_dose_gy,
        # both serving rules, whichever is served (one of them equals "served")
        "odm_mean_dose": pred.member_mean_dose_gy,
        "odm_mean_q": pred.mean_q_dose_gy,
    })
    out["best_constant_dose_gy"] = constant_gy
    out["advised"] |= {
        "change_share": float(np.mean(advice.advice == "change")),
        "p_recommended_better_mean": float(np.mean(advice.p_recommended_better)),
        "threshold": advice.threshold,
    }
    return out


def _against_clinic(
    protocol: Protocol, cases: pd.DataFrame, pred: ODMPrediction, window: float
) -> dict[str, Any]:
    """RMSD/MAD (mean ± sem over members) and self-evaluation, overall and by outcome."""
    clinical = cases["dose_adapt_gy"].to_numpy(np.float64)
    tc = cases[protocol.target.outcome].to_numpy().astype(int)
    tox = cases[protocol.oar.outcome].to_numpy().astype(int)
    positive = positive_outcome(tc, tox)
    groups = {"overall": np.ones(len(cases), bool), "positive": positive, "negative": ~positive}
    verdicts = self_evaluation(pred.dose_gy, clinical, tc, tox, window)
    out: dict[str, Any] = {"rmsd_gy": {}, "mad_gy": {}, "self_evaluation": {}, "n_by_outcome": {}}
    for name, mask in groups.items():
        out["n_by_outcome"][name] = int(mask.sum())
        out["rmsd_gy"][name] = mean_sem(np.array(
            [rmsd(d[mask], clinical[mask]) for d in pred.member_dose_gy]))
        out["mad_gy"][name] = mean_sem(np.array(
            [mad(d[mask], clinical[mask]) for d in pred.member_dose_gy]))
        out["self_evaluation"][name] = verdict_shares(verdicts[mask])
    out["rmsd_served_gy"] = rmsd(pred.dose_gy, clinical)
    return out


def _patient_rows(protocol: Protocol, cases: pd.DataFrame, pred: ODMPrediction,
                  exact_dose: np.ndarray, window: float) -> dict[str, list]:
    """Per case (for the recommendation-vs-clinical figure): columns of equal length."""
    tc = cases[protocol.target.outcome].to_numpy().astype(int)
    tox = cases[protocol.oar.outcome].to_numpy().astype(int)
    clinical = cases["dose_adapt_gy"].to_numpy(np.float64)
    return {
        "label": case_labels(cases),
        "clinical_dose_gy": clinical.tolist(),
        "tumour_controlled": tc.tolist(),
        "toxicity": tox.tolist(),
        "recommended_dose_gy": [round(float(v), 6) for v in pred.dose_gy],
        "recommended_dose_sem_gy": [round(float(v), 6) for v in pred.dose_sem_gy],
        "member_mean_dose_gy": [round(float(v), 6) for v in pred.member_mean_dose_gy],
        "q_value": [round(float(v), 6) for v in pred.q_value],
        "exact_argmax_dose_gy": exact_dose.tolist(),
        "self_evaluation": self_evaluation(pred.dose_gy, clinical, tc, tox, window).tolist(),
    }


# ------------------------------------------------------------------------------------------------
# Summaries of the saved evaluation


_SUMMARY_KEYS = (
    "rmsd_gy", "mad_gy", "self_evaluation", "n_by_outcome", "argmax_reward_ratio",
    "gain_captured", "serving_rule", "by_serving_rule", "per_member", "best_fixed_dose_gy",
    "exact_match_rate", "dose_abs_error_vs_exact_argmax_gy", "dose_sem_mean_gy", "q_value_mean",
    "regret",
)


def summarise_odm_evaluation(
    payload: dict[str, Any], meta: Any, served_rtoe: dict[str, str] | None = None
) -> dict[str, Any]:
    """What ``artds evaluate odm --json`` prints: the metrics without per-patient rows.

    Per architecture, the training trial's metrics at the top level and the fresh cohort's
    under ``fresh_cohort``; each has ``regret`` (rows of :data:`REGRET_POLICIES`) and
    ``gain_captured`` beside every ``argmax_reward_ratio``. ``served_rtoe`` maps architecture →
    the version of the outcome model served now; an architecture whose evaluation was computed
    against another version gets ``"stale": true`` and a note.
    """
    archs = {}
    for arch, m in payload["architectures"].items():
        trial, fresh = (_summary_metrics(m[c]) for c in ("trial", "fresh"))
        entry = {
            "odm_version": m["odm_version"],
            "rtoe_version": m["rtoe_version"],
            **trial,
            "fresh_cohort": fresh | {"n_cases": m["fresh"]["n_cases"]},
            "n_cases": m["trial"]["n_cases"],
        }
        served = (served_rtoe or {}).get(arch)
        entry["stale"] = served is not None and served != m["rtoe_version"]
        if entry["stale"]:
            entry["note"] = (f"evaluated against outcome model {m['rtoe_version']}, but "
                             f"{served} is served: retrain with `artds train odm --protocol "
                             f"{payload['protocol']}`")
        archs[arch] = entry
    return {
        "protocol": payload["protocol"],
        "budget": payload["budget"],
        "created": meta.created,
        "cohort_version": payload["cohort_version"],
        "gan_jsd_vs_training_mean": payload.get("gan_jsd_vs_training_mean"),
        "planning": _planning_summary(payload),
        "architectures": archs,
    }


def odm_summary(protocol_name: str, models_dir: Any = None) -> dict[str, Any]:
    """What ``artds evaluate odm --json`` prints (and the model card's tables are written from):
    :func:`summarise_odm_evaluation` of the saved, hash-checked evaluation, stale flags against
    the outcome models served now included. Raises the registry's ``ArtifactError`` when the
    evaluation is missing or does not match the manifest."""
    payload, meta = load_odm_evaluation(protocol_name, models_dir)
    return summarise_odm_evaluation(payload, meta, served_rtoe_versions(protocol_name, models_dir))


def _summary_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """One cohort's summary keys; the served row of an evaluation saved before the regret rows
    of :data:`REGRET_POLICIES` existed (called ``odm`` there: the same served dose) is renamed
    ``served``, its other missing rows stay missing."""
    out = {k: metrics[k] for k in _SUMMARY_KEYS if k in metrics}
    reg = out.get("regret")
    if reg is not None and "served" not in reg and "odm" in reg:
        out["regret"] = {("served" if k == "odm" else k): v for k, v in reg.items()}
    return out


def missing_regret_policies(summary: dict[str, Any]) -> list[str]:
    """Policies of :data:`REGRET_POLICIES` that some architecture's trial or fresh-cohort
    ``regret`` of a :func:`summarise_odm_evaluation` lacks (an evaluation saved before they
    existed), in :data:`REGRET_POLICIES` order; empty when every row is there."""
    regrets = [reg for m in (summary.get("architectures") or {}).values()
               for reg in (m.get("regret"), (m.get("fresh_cohort") or {}).get("regret"))]
    return [p for p in REGRET_POLICIES if any(p not in (reg or {}) for reg in regrets)]


def _planning_summary(payload: dict[str, Any]) -> dict[str, Any]:
    """How the members planned and what is served (for the review text and the JSON)."""
    config = ODMConfig.from_dict(payload["odm_config"])
    return {
        "n_synthetic": payload.get("n_synthetic", N_SYNTHETIC),
        "n_planning_patients": config.n_planning_patients,
        "planning_resample": config.planning_resample,
        "planning_arte": config.planning_arte,
        "serving_rule": config.serving_rule,
        "epochs": config.epochs,
    }


# ------------------------------------------------------------------------------------------------
# The app's review


@dataclass(frozen=True)
class OdmReview:
    """A protocol's saved decision-maker and synthetic-patient checks (hash-checked on load)."""

    odm: dict[str, Any] | None
    """``artds evaluate odm`` payload (per architecture, with per-case rows), None if absent."""
    odm_summary: dict[str, Any] | None
    """:func:`summarise_odm_evaluation` of it (stale flags included)."""
    gan: dict[str, Any] | None
    """The GAN's distribution checks (per-feature JSD and histograms), None if absent."""
    errors: dict[str, str]
    """One-line reasons for what did not load, keyed "odm" / "gan"."""


def load_odm_review(protocol_name: str, models_dir: Any = None) -> OdmReview:
    """The saved ODM evaluation and GAN checks of a protocol, each None with a reason if absent."""
    errors: dict[str, str] = {}
    odm = summary = gan = None
    try:
        odm, meta = load_odm_evaluation(protocol_name, models_dir)
        summary = summarise_odm_evaluation(
            odm, meta, served_rtoe_versions(protocol_name, models_dir))
    except LOAD_ERRORS as exc:
        odm, errors["odm"] = None, failure_reason(exc)
    try:
        gan = load_gan_evaluation(protocol_name, models_dir)
    except LOAD_ERRORS as exc:
        errors["gan"] = failure_reason(exc)
    return OdmReview(odm, summary, gan, errors)


# ------------------------------------------------------------------------------------------------
# The track record shown beside a recommendation


@dataclass(frozen=True)
class TrackRecord:
    """How the policy behind a shown recommendation did on the fresh virtual cohort (patients no
    model was trained or tuned on), beside the simple policies a clinic could follow instead.

    Every ``*_loss`` is the mean true-reward loss against the virtual trial's oracle (each
    patient's truly best grid dose): reward units (0–3, with goal bonuses), lower is better.
    """

    n_cases: int
    """Patients of the fresh cohort."""
    recommender: str
    """``"odm"`` (the served decision maker's dose) or ``"exact-argmax"`` (the outcome model's
    reward argmax), as :attr:`engine.arclids.recommend.Recommendation.recommender`."""
    recommendation_loss: float
    """Following the recommendation for every patient."""
    advised_loss: float | None
    """Following the advice: the clinician's dose, changed to the recommendation only where
    ``p_recommended_better`` ≥ ``advice_threshold``; None when the evaluation lacks it."""
    advice_threshold: float | None
    """The threshold of the advice, in (0, 1); None with ``advised_loss``."""
    clinicians_loss: float
    """The virtual trial's clinicians' own rule (their adaptive doses)."""
    constant_loss: float
    """One dose for everyone (``constant_dose_gy``, chosen on the training trial's truth)."""
    constant_dose_gy: float
    """That dose, Gy per fraction."""

    def ranking(self) -> list[tuple[str, float]]:
        """(policy, loss) from best to worst; policies: "recommendation", "advice",
        "clinicians", "constant"."""
        rows = [("recommendation", self.recommendation_loss), ("advice", self.advised_loss),
                ("clinicians", self.clinicians_loss), ("constant", self.constant_loss)]
        return sorted(((k, v) for k, v in rows if v is not None), key=lambda kv: kv[1])


def track_record(summary: dict[str, Any] | None, model_version: str, recommender: str,
                 odm_version: str | None = None) -> TrackRecord | None:
    """The fresh-cohort track record of the policy that produced a recommendation.

    Args:
        summary: :func:`summarise_odm_evaluation` of the protocol's saved evaluation (None when
            it did not load).
        model_version: the outcome model behind the recommendation
            (:attr:`Recommendation.model_version`).
        recommender: ``"odm"`` or ``"exact-argmax"`` (:attr:`Recommendation.recommender`).
        odm_version: the decision maker that recommended (``"odm"`` only).

    Returns:
        None when no saved evaluation measured exactly this model (and decision maker): a
        record of another version would say more than it knows.
    """
    for entry in ((summary or {}).get("architectures") or {}).values():
        if entry.get("rtoe_version") != model_version or entry.get("stale"):
            continue
        if recommender == "odm" and entry.get("odm_version") != odm_version:
            continue
        fresh = entry.get("fresh_cohort") or {}
        reg = fresh.get("regret") or {}
        row = "served" if recommender == "odm" else "exact_argmax"
        needed = (row, "historic", "best_constant_dose")
        if any(k not in reg for k in needed) or "best_constant_dose_gy" not in reg:
            return None
        advised = reg.get("advised") or {}
        return TrackRecord(
            n_cases=int(fresh.get("n_cases") or reg.get("n_cases") or 0),
            recommender=recommender,
            recommendation_loss=float(reg[row]["true_reward_loss"]),
            advised_loss=(float(advised["true_reward_loss"]) if recommender == "odm"
                          and "true_reward_loss" in advised else None),
            advice_threshold=(float(advised["threshold"]) if recommender == "odm"
                              and "threshold" in advised else None),
            clinicians_loss=float(reg["historic"]["true_reward_loss"]),
            constant_loss=float(reg["best_constant_dose"]["true_reward_loss"]),
            constant_dose_gy=float(reg["best_constant_dose_gy"]),
        )
    return None
