"""Dose recommendation: outcome curves over the dose grid, reward, and the recommended dose.

The recommended dose comes from the optimal decision maker (ODM, :mod:`engine.arclids.odm`) when one
is served for the outcome model: the mean of its members' greedy doses, with the standard error of
that mean and the members' mean q-value (the expected reward, read as the AI's confidence). TCP,
NTCP and goal at that dose are read from the outcome model's ensemble-mean curves, linearly between
grid doses (:func:`engine.arclids.arte.at_dose`).

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
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from engine.arclids.arte import at_dose, goal_index, reward
from engine.arclids.outcomes import OutcomeModel
from engine.core.protocols import Protocol
from engine.core.schema import case_label

__all__ = ["EXACT_ARGMAX", "ODM", "Recommendation", "input_hash", "recommend"]

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
    """Standard error of the ODM members' mean dose, Gy; None without an ODM."""
    q_value: float | None = None
    """The ODM members' mean q-value of the chosen dose (expected reward, 0–3 with the goal
    bonuses): the recommendation's confidence; None without an ODM."""
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


def input_hash(case: pd.Series, protocol: Protocol) -> str:
    """sha256 over the protocol name, the id columns, the features and the evaluation dose."""
    keys = [*protocol.id_columns, *protocol.feature_names, "dose_eval_gy"]
    payload = {"protocol": protocol.name} | {
        k: _json_value(case[k]) for k in keys if k in case.index
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
                **odm_fields,
            )
        )
    return out
