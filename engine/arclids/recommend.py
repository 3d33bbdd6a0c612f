"""Dose recommendation: outcome curves over the dose grid, reward, and the recommended dose.

The recommended dose comes from the optimal decision maker (ODM, :mod:`engine.arclids.odm`) when one
is served for the outcome model: the mean of its members' greedy doses, with the standard error of
that mean (the decision maker's fitting noise) and the members' mean q-value (their predicted
reward, 0–3 with goal bonuses; not a confidence). TCP, NTCP and goal at that dose are read from
the outcome model's ensemble-mean curves, linearly between grid doses
(:func:`engine.arclids.arte.at_dose`).

The exact argmax of the reward of the ensemble-mean curves over the dose grid (ties to the lower
dose) is always reported next to it, and is the recommendation when no ODM can serve — none is
trained for the model (reference truth, logistic baseline), its artifacts do not load, or it was
trained against another version of the outcome model. ``recommender`` says which one it is and
``recommender_note`` why.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from engine.arclids.arte import at_dose, goal_index, reward
from engine.arclids.calibration import interval_draws
from engine.arclids.outcomes import OutcomeCurves, OutcomeModel
from engine.core.protocols import Protocol
from engine.core.schema import PROPOSAL_COLUMN, case_label

__all__ = [
    "ADVICE_THRESHOLD",
    "EXACT_ARGMAX",
    "ODM",
    "PROPOSAL_COLUMN",
    "ProposalComparison",
    "Recommendation",
    "compare_proposal",
    "dose_interval",
    "input_hash",
    "ntcp_caution",
    "recommend",
]

ADVICE_THRESHOLD = 0.8
"""``p_recommended_better`` a recommendation must reach before the advice is to change the
physician's proposed dose (the safe default keeps the clinician's dose unless the outcome models
are confident; chosen and measured in docs/model-card-odm.md)."""
N_DRAWS = 400
"""Draws of plausible TCP/NTCP curves behind ``p_recommended_better`` and the dose interval."""


def _draws(curves: OutcomeCurves, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Plausible (TCP, NTCP) curves, each [S, P, D], spread as the stated interval."""
    tcp_lo, tcp_hi, ntcp_lo, ntcp_hi = curves.interval()
    tcp = interval_draws(curves.tcp, tcp_lo, tcp_hi, curves.interval_level, N_DRAWS, seed)
    ntcp = interval_draws(curves.ntcp, ntcp_lo, ntcp_hi, curves.interval_level, N_DRAWS,
                          seed + 1)
    return tcp, ntcp


def dose_interval(curves: OutcomeCurves, protocol: Protocol, level: float | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi) of the best dose over plausible outcome models, Gy, each [P].

    The reward's argmax over the grid in each draw of :func:`_draws` (curves spread as the
    stated interval); the central ``level`` (default: the curves' interval level, else 0.8)
    share of those best doses. It says how far the outcome models' uncertainty moves the best
    dose — unlike the decision maker's SEM, which is only its members' fitting noise.
    """
    level = level or curves.interval_level or 0.8
    tcp, ntcp = _draws(curves)
    best = curves.doses_gy[np.argmax(reward(tcp, ntcp, protocol.goals), axis=2)]  # [S, P]
    tail = (1.0 - level) / 2.0
    return np.quantile(best, tail, axis=0), np.quantile(best, 1.0 - tail, axis=0)


@dataclass(frozen=True)
class ProposalComparison:
    """The physician's proposed dose against the recommendation, per case (arrays [P])."""

    proposed_dose_gy: np.ndarray
    """The proposal, Gy per fraction."""
    recommended_dose_gy: np.ndarray
    """The recommendation, Gy per fraction."""
    p_recommended_better: np.ndarray
    """Probability that the recommendation's reward exceeds the proposal's: the share of
    plausible outcome models (draws spread as the stated interval) saying so, mapped through the
    model's calibration of that share against the truth when it has one (``p_better_map``);
    0 where the two doses are equal."""
    advice: np.ndarray
    """``"change"`` where p_recommended_better ≥ the threshold, else ``"keep"``."""
    advised_dose_gy: np.ndarray
    """The recommendation where the advice is to change, else the proposal."""
    threshold: float
    """The threshold applied."""
    proposed_reward_interval: np.ndarray
    """[lo, hi] of the reward at the proposal over the same plausible outcome models, at the
    curves' interval level (0.8 when they state none), [2, P]."""
    recommended_reward_interval: np.ndarray
    """[lo, hi] of the reward at the recommendation, likewise, [2, P]."""


def compare_proposal(
    curves: OutcomeCurves,
    protocol: Protocol,
    recommended_dose_gy: np.ndarray,
    proposed_dose_gy: np.ndarray,
    threshold: float = ADVICE_THRESHOLD,
) -> ProposalComparison:
    """Compare a proposed dose per case with the recommended one under the models' uncertainty.

    Args:
        curves: the outcome model's curves for the P cases (with their interval).
        protocol: the protocol (goals of the reward).
        recommended_dose_gy: recommended dose per case, Gy, [P].
        proposed_dose_gy: the physician's proposal per case, Gy, [P] (within the dose grid).
        threshold: p_recommended_better needed to advise a change, in (0, 1).
    """
    rec = np.asarray(recommended_dose_gy, dtype=np.float64)
    prop = np.asarray(proposed_dose_gy, dtype=np.float64)
    tcp, ntcp = _draws(curves)  # [S, P, D]
    doses = curves.doses_gy
    s = tcp.shape[0]

    def reward_at(dose: np.ndarray) -> np.ndarray:  # [S, P]
        flat = np.repeat(dose[None], s, axis=0).reshape(-1)
        t = at_dose(doses, tcp.reshape(-1, len(doses)), flat).reshape(s, -1)
        n = at_dose(doses, ntcp.reshape(-1, len(doses)), flat).reshape(s, -1)
        return reward(t, n, protocol.goals)

    rec_reward, prop_reward = reward_at(rec), reward_at(prop)
    better = (rec_reward > prop_reward).mean(axis=0)
    if curves.p_better_map is not None:
        # the share of plausible models is itself over-confident when the curves' errors are;
        # the model's map, fitted against the truth of the calibration cohort, corrects it
        better = curves.p_better_map.apply(better)
    better = np.where(np.isclose(rec, prop), 0.0, better)
    change = better >= threshold
    tail = (1.0 - (curves.interval_level or 0.8)) / 2.0
    return ProposalComparison(
        proposed_dose_gy=prop,
        recommended_dose_gy=rec,
        p_recommended_better=better,
        advice=np.where(change, "change", "keep"),
        advised_dose_gy=np.where(change, rec, prop),
        threshold=threshold,
        proposed_reward_interval=np.quantile(prop_reward, [tail, 1.0 - tail], axis=0),
        recommended_reward_interval=np.quantile(rec_reward, [tail, 1.0 - tail], axis=0),
    )


def ntcp_caution(protocol: Protocol, ntcp: float) -> str | None:
    """A visible caution when a recommendation's NTCP exceeds the protocol's default goal."""
    default = next((g for g in protocol.goals if g.name == "default"), None)
    if default is None or ntcp < default.ntcp_max:
        return None
    return (f"NTCP {ntcp:.0%} at this dose exceeds the default goal's limit "
            f"({default.ntcp_max:.0%}): weigh the toxicity risk before accepting it")

ODM = "odm"
"""``Recommendation.recommender`` when the ODM ensemble recommended the dose."""
EXACT_ARGMAX = "exact-argmax"
"""``Recommendation.recommender`` when the dose is the exact reward argmax over the grid."""


@dataclass(frozen=True)
class Recommendation:
    """Everything shown and reported for one case; lists run over ``doses_gy``."""

    patient_id: str
    """Patient identifier as given in the input."""
    site_id: int | None
    """Tumour-site number for protocols with one row per site (HCC), else None."""
    protocol: str
    """Protocol name."""
    model: str
    """Label of the outcome model that produced the curves."""
    model_version: str
    """Version of that model."""
    input_hash: str
    """sha256 of the protocol name and the case's inputs, for the audit trail."""
    doses_gy: list[float]
    """Candidate adaptive doses per fraction, Gy."""
    tcp: list[float]
    """Ensemble-mean TCP per dose."""
    ntcp: list[float]
    """Ensemble-mean NTCP per dose."""
    tcp_sd: list[float]
    """Ensemble standard deviation of TCP per dose (0 for a single model)."""
    ntcp_sd: list[float]
    """Ensemble standard deviation of NTCP per dose."""
    tcp_ntcp_cov: list[float]
    """Ensemble covariance of TCP and NTCP per dose (with the sds it gives the 2×2 covariance
    whose ellipse the outcome space draws; 0 for a single model)."""
    n_members: int
    """Ensemble members behind the curves (1 for the reference model)."""
    reward: list[float]
    """Reward per dose: tcp (1 − ntcp) + goal bonus."""
    goal: list[str | None]
    """Name of the first goal met per dose, None where no goal is met."""
    recommended_dose_gy: float
    """Recommended dose per fraction, Gy: the ODM ensemble's served dose (its serving rule: the
    members' mean greedy dose, or the grid dose with the highest members'-mean q-value), or the
    exact reward argmax when no ODM serves (see ``recommender``)."""
    recommended_tcp: float
    """TCP at the recommended dose (ensemble mean, linear between grid doses)."""
    recommended_ntcp: float
    """NTCP at the recommended dose."""
    recommended_goal: str | None
    """Goal met at the recommended dose, if any."""
    dose_eval_gy: float
    """Evaluation-phase dose per fraction the curves start from, Gy."""
    exact_argmax_dose_gy: float = math.nan
    """Grid dose with the highest reward of the ensemble-mean curves, Gy (lowest on ties)."""
    recommended_dose_sem_gy: float | None = None
    """Standard error of the ODM members' mean dose, Gy: the decision maker's fitting noise only,
    not the outcome models' uncertainty (see ``dose_interval_gy``); None without an ODM."""
    q_value: float | None = None
    """The ODM members' mean q-value of the chosen dose: their predicted reward (0–3, with goal
    bonuses; it can exceed 3 and is not a confidence); None without an ODM."""
    member_mean_dose_gy: float | None = None
    """The ODM members' mean greedy dose, Gy (what ``recommended_dose_sem_gy`` is the standard
    error of; equals ``recommended_dose_gy`` under the ``mean-dose`` rule); None without an
    ODM."""
    odm_serving_rule: str | None = None
    """``"mean-dose"`` or ``"mean-q"``: how the ODM formed ``recommended_dose_gy``; None without
    an ODM."""
    member_doses_gy: list[float] | None = None
    """Each ODM member's greedy dose, Gy; None without an ODM."""
    recommender: str = EXACT_ARGMAX
    """``"odm"`` (Double-DQN ensemble) or ``"exact-argmax"`` (reward argmax over the grid)."""
    odm_version: str | None = None
    """Version of the ODM ensemble that recommended, None without one."""
    recommender_note: str | None = None
    """Why the exact argmax is shown instead of an ODM recommendation (None with an ODM)."""
    interval_level: float | None = None
    """Level of every ``*_lo``/``*_hi`` interval (e.g. 0.8); None when the model states none
    (reference truth: lo = hi = the curve; an uncalibrated ensemble: its members' min–max)."""
    tcp_lo: list[float] | None = None
    """Lower end of the TCP interval per dose."""
    tcp_hi: list[float] | None = None
    """Upper end of the TCP interval per dose."""
    ntcp_lo: list[float] | None = None
    """Lower end of the NTCP interval per dose."""
    ntcp_hi: list[float] | None = None
    """Upper end of the NTCP interval per dose."""
    recommended_tcp_interval: list[float] | None = None
    """[lo, hi] of TCP at the recommended dose."""
    recommended_ntcp_interval: list[float] | None = None
    """[lo, hi] of NTCP at the recommended dose."""
    recommended_reward: float = math.nan
    """Predicted reward at the recommended dose (0–3: tcp (1 − ntcp) plus goal bonuses), from
    the outcome model's mean curves."""
    dose_interval_gy: list[float] | None = None
    """[lo, hi] of the best dose over plausible outcome models (the curves spread as their
    interval), at ``interval_level`` (0.8 when the model states none), Gy."""
    caution: str | None = None
    """Shown with the recommendation when its NTCP exceeds the protocol's default goal."""
    proposal: dict[str, Any] | None = None
    """The physician's proposal compared with the recommendation, when one was given: ``dose_gy``,
    ``tcp``, ``tcp_lo``, ``tcp_hi``, ``ntcp``, ``ntcp_lo``, ``ntcp_hi``, ``reward`` (at the
    proposal) with ``reward_lo``, ``reward_hi``, ``recommended_reward`` with
    ``recommended_reward_lo``, ``recommended_reward_hi`` (reward intervals over the plausible
    outcome models, at ``interval_level``, 0.8 when that is None), ``p_recommended_better``,
    ``advice`` ("keep" or "change"), ``advised_dose_gy`` and ``threshold``."""

    @property
    def label(self) -> str:
        return case_label(self.patient_id, self.site_id)

    def to_dict(self) -> dict:
        return asdict(self)


def _json_value(value: object) -> object:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) else round(float(value), 10)
    return value


def input_hash(case: pd.Series | Mapping[str, object], protocol: Protocol) -> str:
    """sha256 over the protocol name, the id columns, the features and the evaluation dose
    of one case (a row of a case table, or the same values as a mapping)."""
    keys = [*protocol.id_columns, *protocol.feature_names, "dose_eval_gy"]
    payload = {"protocol": protocol.name} | {
        k: _json_value(case[k]) for k in keys if k in case  # a Series: its index
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def recommend(
    cases: pd.DataFrame,
    protocol: Protocol,
    model: OutcomeModel,
    odm: Any = None,
    *,
    odm_note: str | None = None,
) -> list[Recommendation]:
    """Recommend an adaptive dose per fraction for every row of ``cases``.

    Args:
        cases: validated cases (see :mod:`engine.core.schema`): id columns, every protocol
            feature and ``dose_eval_gy``, with no missing values.
        protocol: the treatment protocol.
        model: the outcome model serving TCP/NTCP curves.
        odm: an :class:`engine.arclids.odm.ODMEnsemble` trained against ``model``, or None. One
            trained against another outcome-model version is not used: the exact argmax is
            recommended with a note saying so (never an error).
        odm_note: why no ODM is given (shown as ``recommender_note``), when ``odm`` is None.
    """
    if cases.empty:
        return []
    cases = cases.reset_index(drop=True)
    curves = model.predict_curves(cases, protocol)
    tcp, ntcp = curves.mean()  # [P, D]
    tcp_sd, ntcp_sd = curves.sd()
    cov = curves.covariance()[..., 0, 1]  # [P, D]
    rewards = reward(tcp, ntcp, protocol.goals)  # [P, D]
    goals = goal_index(tcp, ntcp, protocol.goals)
    best = np.argmax(rewards, axis=1)  # first maximum = lowest dose on ties
    doses = curves.doses_gy
    goal_names = [g.name for g in protocol.goals]

    note = odm_note or "no decision maker is served; the exact argmax of the reward is shown"
    if odm is not None and odm.rtoe_version != model.version:
        note = (f"decision maker {odm.version} was trained against outcome model "
                f"{odm.rtoe_version}, not the served {model.version}: the exact argmax of the "
                f"reward is shown; retrain with `artds train odm --protocol {protocol.name}`")
        odm = None
    if odm is not None:
        pred = odm.predict(cases)
        rec_dose = pred.dose_gy  # [P]
        rec_tcp, rec_ntcp = at_dose(doses, tcp, rec_dose), at_dose(doses, ntcp, rec_dose)
    else:
        pred = None
        rec_dose = doses[best]
        rec_tcp, rec_ntcp = tcp[np.arange(len(cases)), best], ntcp[np.arange(len(cases)), best]
    rec_goal = goal_index(rec_tcp, rec_ntcp, protocol.goals)  # [P]
    rec_reward = reward(rec_tcp, rec_ntcp, protocol.goals)  # [P]
    tcp_lo, tcp_hi, ntcp_lo, ntcp_hi = curves.interval()  # each [P, D]
    dose_lo, dose_hi = dose_interval(curves, protocol)
    proposals = _proposals(cases, protocol, curves, rec_dose, rec_reward)

    out = []
    for i, row in cases.iterrows():
        b = int(best[i])
        site = row.get("site_id") if "site_id" in protocol.id_columns else None
        odm_fields: dict[str, Any] = {"recommender": EXACT_ARGMAX, "recommender_note": note}
        if pred is not None:
            odm_fields = {
                "recommender": ODM,
                "recommender_note": None,
                "recommended_dose_sem_gy": float(pred.dose_sem_gy[i]),
                "q_value": float(pred.q_value[i]),
                "member_doses_gy": [float(d) for d in pred.member_dose_gy[:, i]],
                "member_mean_dose_gy": float(pred.member_mean_dose_gy[i]),
                "odm_serving_rule": odm.serving_rule,
                "odm_version": odm.version,
            }
        out.append(
            Recommendation(
                patient_id=str(row["patient_id"]),
                site_id=None if site is None else int(site),
                protocol=protocol.name,
                model=model.label,
                model_version=model.version,
                input_hash=input_hash(row, protocol),
                doses_gy=[float(d) for d in doses],
                tcp=tcp[i].tolist(),
                ntcp=ntcp[i].tolist(),
                tcp_sd=tcp_sd[i].tolist(),
                ntcp_sd=ntcp_sd[i].tolist(),
                tcp_ntcp_cov=cov[i].tolist(),
                n_members=curves.n_members,
                reward=rewards[i].tolist(),
                goal=[goal_names[g] if g >= 0 else None for g in goals[i]],
                recommended_dose_gy=float(rec_dose[i]),
                recommended_tcp=float(rec_tcp[i]),
                recommended_ntcp=float(rec_ntcp[i]),
                recommended_goal=goal_names[rec_goal[i]] if rec_goal[i] >= 0 else None,
                dose_eval_gy=float(row["dose_eval_gy"]),
                exact_argmax_dose_gy=float(doses[b]),
                interval_level=curves.interval_level,
                tcp_lo=tcp_lo[i].tolist(),
                tcp_hi=tcp_hi[i].tolist(),
                ntcp_lo=ntcp_lo[i].tolist(),
                ntcp_hi=ntcp_hi[i].tolist(),
                recommended_tcp_interval=_at(doses, tcp_lo, tcp_hi, i, rec_dose[i]),
                recommended_ntcp_interval=_at(doses, ntcp_lo, ntcp_hi, i, rec_dose[i]),
                recommended_reward=float(rec_reward[i]),
                dose_interval_gy=[float(dose_lo[i]), float(dose_hi[i])],
                caution=ntcp_caution(protocol, float(rec_ntcp[i])),
                proposal=proposals[i],
                **odm_fields,
            )
        )
    return out


def _at(doses: np.ndarray, lo: np.ndarray, hi: np.ndarray, i: int, dose: float) -> list[float]:
    """[lo, hi] of case ``i``'s interval at one dose (linear between grid doses)."""
    return [float(np.interp(dose, doses, lo[i])), float(np.interp(dose, doses, hi[i]))]


def _proposals(cases: pd.DataFrame, protocol: Protocol, curves: OutcomeCurves,
               rec_dose: np.ndarray, rec_reward: np.ndarray) -> list[dict[str, Any] | None]:
    """Per case, the proposal compared with the recommendation (None where none was given)."""
    out: list[dict[str, Any] | None] = [None] * len(cases)
    if PROPOSAL_COLUMN not in cases.columns:
        return out
    proposed = pd.to_numeric(cases[PROPOSAL_COLUMN], errors="coerce").to_numpy(np.float64)
    given = np.flatnonzero(np.isfinite(proposed))
    if not len(given):
        return out
    doses = curves.doses_gy
    tcp, ntcp = curves.mean()
    tcp_lo, tcp_hi, ntcp_lo, ntcp_hi = curves.interval()
    sub = OutcomeCurves(
        doses_gy=doses, tcp=curves.tcp[:, given], ntcp=curves.ntcp[:, given],
        interval_level=curves.interval_level, tcp_lo=tcp_lo[given], tcp_hi=tcp_hi[given],
        ntcp_lo=ntcp_lo[given], ntcp_hi=ntcp_hi[given], p_better_map=curves.p_better_map)
    comparison = compare_proposal(sub, protocol, rec_dose[given], proposed[given])
    for j, i in enumerate(given):
        dose = float(proposed[i])
        t, n = float(np.interp(dose, doses, tcp[i])), float(np.interp(dose, doses, ntcp[i]))
        out[i] = {
            "dose_gy": dose,
            "tcp": t, "tcp_lo": float(np.interp(dose, doses, tcp_lo[i])),
            "tcp_hi": float(np.interp(dose, doses, tcp_hi[i])),
            "ntcp": n, "ntcp_lo": float(np.interp(dose, doses, ntcp_lo[i])),
            "ntcp_hi": float(np.interp(dose, doses, ntcp_hi[i])),
            "reward": float(reward(np.array(t), np.array(n), protocol.goals)),
            "reward_lo": float(comparison.proposed_reward_interval[0, j]),
            "reward_hi": float(comparison.proposed_reward_interval[1, j]),
            "recommended_reward": float(rec_reward[i]),
            "recommended_reward_lo": float(comparison.recommended_reward_interval[0, j]),
            "recommended_reward_hi": float(comparison.recommended_reward_interval[1, j]),
            "p_recommended_better": float(comparison.p_recommended_better[j]),
            "advice": str(comparison.advice[j]),
            "advised_dose_gy": float(comparison.advised_dose_gy[j]),
            "threshold": comparison.threshold,
        }
    return out
