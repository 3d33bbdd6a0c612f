"""Artificial RT environment (ARTE): transition → outcome model → reward, over patients × doses.

For every case (row) and every candidate adaptive dose the gEUD transition gives the adapted
tumour and organ-at-risk gEUDs; an outcome model turns them into TCP and NTCP (one array per
ensemble member); the reward scores each (tcp, ntcp) pair with the protocol's goals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol as TypingProtocol

import numpy as np
import pandas as pd

from engine.protocols import Goal, Protocol, Structure
from engine.radiobiology import geud_transition, normalise_geud

__all__ = [
    "OutcomeCurves",
    "OutcomeModel",
    "adapted_geud",
    "adapted_geud_norm",
    "goal_index",
    "reward",
]


def adapted_geud(
    cases: pd.DataFrame, protocol: Protocol, structure: Structure, doses_gy: np.ndarray
) -> np.ndarray:
    """gEUD of ``structure`` at the end of treatment for every case and candidate dose, Gy.

    Args:
        cases: one row per case with the structure's gEUD feature and ``dose_eval_gy``.
        protocol: supplies the fraction numbers.
        structure: ``protocol.target`` or ``protocol.oar`` (α/β, D_T).
        doses_gy: candidate adaptive doses per fraction, Gy, shape [D].

    Returns:
        Array [P, D].
    """
    g_eval = cases[structure.geud_feature].to_numpy(dtype=np.float64)[:, None]
    d_eval = cases["dose_eval_gy"].to_numpy(dtype=np.float64)[:, None]
    return geud_transition(
        g_eval,
        protocol.n_eval_fractions,
        protocol.n_adapt_fractions,
        d_eval,
        np.asarray(doses_gy, dtype=np.float64)[None, :],
        structure.alpha_beta_gy,
        structure.threshold_gy,
    )


def adapted_geud_norm(
    cases: pd.DataFrame, protocol: Protocol, structure: Structure, doses_gy: np.ndarray
) -> np.ndarray:
    """Min–max normalised adapted gEUD ĝ with the protocol's fixed range, shape [P, D]."""
    return normalise_geud(
        adapted_geud(cases, protocol, structure, doses_gy),
        structure.geud_norm_min_gy,
        structure.geud_norm_max_gy,
    )


def goal_index(tcp: np.ndarray, ntcp: np.ndarray, goals: tuple[Goal, ...]) -> np.ndarray:
    """Index of the first goal met (tcp > tcp_min and ntcp < ntcp_max), −1 where none is met."""
    tcp, ntcp = np.asarray(tcp), np.asarray(ntcp)
    index = np.full(np.broadcast(tcp, ntcp).shape, -1, dtype=np.int64)
    for i in reversed(range(len(goals))):  # reversed so the first goal in priority wins
        met = (tcp > goals[i].tcp_min) & (ntcp < goals[i].ntcp_max)
        index = np.where(met, i, index)
    return index


def reward(tcp: np.ndarray, ntcp: np.ndarray, goals: tuple[Goal, ...]) -> np.ndarray:
    """ARCliDS reward: r = tcp (1 − ntcp) plus the bonus of the first goal met (Eq. 4).

    With the protocols' goals: +2 for the population goal, otherwise +1 for the default goal.
    """
    tcp, ntcp = np.asarray(tcp, dtype=np.float64), np.asarray(ntcp, dtype=np.float64)
    bonuses = np.array([g.bonus for g in goals] + [0.0])
    return tcp * (1.0 - ntcp) + bonuses[goal_index(tcp, ntcp, goals)]


@dataclass(frozen=True)
class OutcomeCurves:
    """Predicted TCP and NTCP over the dose grid for a batch of cases, per ensemble member."""

    doses_gy: np.ndarray
    """Candidate adaptive doses per fraction, Gy, shape [D]."""
    tcp: np.ndarray
    """Tumour control probability, shape [M, P, D] (M ensemble members, P cases)."""
    ntcp: np.ndarray
    """Normal-tissue complication probability, shape [M, P, D]."""

    @property
    def n_members(self) -> int:
        return int(self.tcp.shape[0])

    def mean(self) -> tuple[np.ndarray, np.ndarray]:
        """Ensemble-mean (tcp, ntcp), each [P, D]."""
        return self.tcp.mean(axis=0), self.ntcp.mean(axis=0)

    def sd(self) -> tuple[np.ndarray, np.ndarray]:
        """Ensemble standard deviation (tcp, ntcp), each [P, D]; zeros for a single member."""
        if self.n_members < 2:
            return np.zeros(self.tcp.shape[1:]), np.zeros(self.ntcp.shape[1:])
        return self.tcp.std(axis=0, ddof=1), self.ntcp.std(axis=0, ddof=1)

    def covariance(self) -> np.ndarray:
        """Ensemble covariance of (tcp, ntcp) per case and dose, shape [P, D, 2, 2]."""
        p, d = self.tcp.shape[1:]
        if self.n_members < 2:
            return np.zeros((p, d, 2, 2))
        stacked = np.stack([self.tcp, self.ntcp], axis=-1)  # [M, P, D, 2]
        centred = stacked - stacked.mean(axis=0, keepdims=True)
        return np.einsum("mpdi,mpdj->pdij", centred, centred) / (self.n_members - 1)


class OutcomeModel(TypingProtocol):
    """What the recommender needs from an outcome model (reference truth or learned ensemble)."""

    name: str
    """Short identifier, e.g. ``"reference"``."""
    label: str
    """What users see, e.g. ``"reference model (virtual trial ground truth)"``."""
    version: str
    """Version string recorded with every recommendation."""

    def predict_curves(self, cases: pd.DataFrame, protocol: Protocol) -> OutcomeCurves:
        """TCP and NTCP for every case and every dose of ``protocol.dose_grid()``."""
        ...
