"""Dose recommendation: outcome curves over the dose grid, reward, and the recommended dose.

Until learned decision makers are served, the recommendation is the exact argmax of the reward
of the outcome model's (ensemble-mean) curves over the protocol's dose grid; ties go to the lower
dose.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from engine.arte import OutcomeModel, goal_index, reward
from engine.protocols import Protocol

__all__ = ["Recommendation", "case_label", "input_hash", "recommend"]


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
    """Dose per fraction with the highest reward, Gy (lowest such dose on ties)."""
    recommended_tcp: float
    """TCP at the recommended dose."""
    recommended_ntcp: float
    """NTCP at the recommended dose."""
    recommended_goal: str | None
    """Goal met at the recommended dose, if any."""
    dose_eval_gy: float
    """Evaluation-phase dose per fraction the curves start from, Gy."""

    @property
    def label(self) -> str:
        return case_label(self.patient_id, self.site_id)

    def to_dict(self) -> dict:
        return asdict(self)


def case_label(patient_id: str, site_id: int | None) -> str:
    """How a case is named on screen: ``"P-001"`` or ``"HCC-012 site 2"``."""
    return patient_id if site_id is None else f"{patient_id} site {site_id}"


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


def recommend(cases: pd.DataFrame, protocol: Protocol, model: OutcomeModel) -> list[Recommendation]:
    """Recommend an adaptive dose per fraction for every row of ``cases``.

    Args:
        cases: validated cases (see :mod:`engine.schema`): id columns, every protocol feature and
            ``dose_eval_gy``, with no missing values.
        protocol: the treatment protocol.
        model: the outcome model serving TCP/NTCP curves.
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
    out = []
    for i, row in cases.iterrows():
        b = int(best[i])
        site = row.get("site_id") if "site_id" in protocol.id_columns else None
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
                recommended_dose_gy=float(doses[b]),
                recommended_tcp=float(tcp[i, b]),
                recommended_ntcp=float(ntcp[i, b]),
                recommended_goal=goal_names[goals[i, b]] if goals[i, b] >= 0 else None,
                dose_eval_gy=float(row["dose_eval_gy"]),
            )
        )
    return out
