"""Artificial RT environment (ARTE): transition → outcome model → reward, over patients × doses.

For every case (row) and every candidate adaptive dose the gEUD transition gives the adapted
tumour and organ-at-risk gEUDs; an outcome model turns them into TCP and NTCP (one array per
ensemble member); the reward scores each (tcp, ntcp) pair with the protocol's goals.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from engine.arclids.geud import adapted_geud
from engine.arclids.outcomes import OutcomeModel
from engine.core.protocols import Goal, Protocol

__all__ = [
    "ARTEOutcome",
    "at_dose",
    "evaluate_arte",
    "goal_flags",
    "goal_index",
    "reward",
]


def goal_flags(tcp: np.ndarray, ntcp: np.ndarray, goals: tuple[Goal, ...]) -> np.ndarray:
    """Whether each goal is met (tcp > tcp_min and ntcp < ntcp_max), regardless of priority.

    Returns bool [G, *shape] in ``goals`` order, for ``tcp`` and ``ntcp`` of a common
    (broadcast) shape; scalars give [G].
    """
    tcp, ntcp = np.asarray(tcp), np.asarray(ntcp)
    return np.stack([(tcp > g.tcp_min) & (ntcp < g.ntcp_max) for g in goals])


def goal_index(tcp: np.ndarray, ntcp: np.ndarray, goals: tuple[Goal, ...]) -> np.ndarray:
    """Index of the first goal met (tcp > tcp_min and ntcp < ntcp_max), −1 where none is met."""
    met = goal_flags(tcp, ntcp, goals)  # [G, ...]
    index = np.full(met.shape[1:], -1, dtype=np.int64)
    for i in reversed(range(len(goals))):  # reversed so the first goal in priority wins
        index = np.where(met[i], i, index)
    return index


def reward(tcp: np.ndarray, ntcp: np.ndarray, goals: tuple[Goal, ...]) -> np.ndarray:
    """ARCliDS reward: r = tcp (1 − ntcp) plus the bonus of the first goal met (Eq. 4).

    With the protocols' goals: +2 for the population goal, otherwise +1 for the default goal.
    """
    tcp, ntcp = np.asarray(tcp, dtype=np.float64), np.asarray(ntcp, dtype=np.float64)
    bonuses = np.array([g.bonus for g in goals] + [0.0])
    return tcp * (1.0 - ntcp) + bonuses[goal_index(tcp, ntcp, goals)]


def at_dose(doses_gy: np.ndarray, values: np.ndarray, dose_gy: np.ndarray) -> np.ndarray:
    """Values of per-case curves at one dose per case, linear between grid doses.

    A recommended dose that is the mean of several grid doses (the ODM ensemble's) lies between
    grid points; TCP and NTCP are smooth in dose, so linear interpolation of the curves is
    accurate to well below the ensemble spread on the protocols' 0.1–0.5 Gy grids. Apply the
    reward to interpolated probabilities, never interpolate the reward (its goal bonus jumps).

    Args:
        doses_gy: the grid, ascending, [D].
        values: curves [..., P, D].
        dose_gy: one dose per case [P], clipped to the grid's range.

    Returns:
        [..., P].
    """
    grid = np.asarray(doses_gy, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    dose = np.clip(np.asarray(dose_gy, dtype=np.float64), grid[0], grid[-1])
    hi = np.clip(np.searchsorted(grid, dose, side="right"), 1, len(grid) - 1)  # [P]
    lo = hi - 1
    span = grid[hi] - grid[lo]
    w = np.where(span > 0, (dose - grid[lo]) / np.where(span > 0, span, 1.0), 0.0)  # [P]
    rows = np.arange(dose.shape[0])
    return values[..., rows, lo] * (1.0 - w) + values[..., rows, hi] * w


@dataclass(frozen=True)
class ARTEOutcome:
    """What ARTE returns for a batch of cases × candidate doses × ensemble members.

    The transition (adapted gEUDs) does not depend on the member; the outcome probabilities,
    the reward and the goal attained do.
    """

    doses_gy: np.ndarray
    """Candidate adaptive doses per fraction, Gy, shape [D]."""
    target_geud_gy: np.ndarray
    """Adapted gEUD of the target at the end of treatment, Gy, [P, D] (the next state)."""
    oar_geud_gy: np.ndarray
    """Adapted gEUD of the organ at risk at the end of treatment, Gy, [P, D]."""
    tcp: np.ndarray
    """Tumour control probability per member, [M, P, D]."""
    ntcp: np.ndarray
    """Normal-tissue complication probability per member, [M, P, D]."""
    reward: np.ndarray
    """Reward tcp (1 − ntcp) + bonus of the first goal met, per member, [M, P, D]."""
    goal: np.ndarray
    """Index into ``protocol.goals`` of the first goal met, −1 where none, int64 [M, P, D]."""
    goal_flags: np.ndarray
    """Each protocol goal met (tcp > tcp_min and ntcp < ntcp_max), regardless of priority,
    bool [G, M, P, D] in ``protocol.goals`` order: the binary goal information the planning
    memory stores next to the reward."""

    @property
    def n_members(self) -> int:
        return int(self.tcp.shape[0])


def evaluate_arte(cases: pd.DataFrame, protocol: Protocol, model: OutcomeModel) -> ARTEOutcome:
    """ARTE for every case, every dose of ``protocol.dose_grid()`` and every ensemble member.

    One batched call: the transition is computed once for all cases and doses ([P, D]); the
    outcome model returns every member's TCP and NTCP ([M, P, D]); reward and goals are then
    elementwise over [M, P, D]. The result equals looping over the members one at a time
    (tested), without the loop.

    Args:
        cases: P cases with the protocol features and ``dose_eval_gy``.
        protocol: the protocol (dose grid, structures, goals).
        model: the outcome model (reference truth or a learned ensemble of M members).
    """
    doses = protocol.dose_grid()
    curves = model.predict_curves(cases, protocol)
    tcp, ntcp = np.asarray(curves.tcp, dtype=np.float64), np.asarray(curves.ntcp, np.float64)
    flags = goal_flags(tcp, ntcp, protocol.goals)  # [G, M, P, D]
    return ARTEOutcome(
        doses_gy=doses,
        target_geud_gy=adapted_geud(cases, protocol, protocol.target, doses),
        oar_geud_gy=adapted_geud(cases, protocol, protocol.oar, doses),
        tcp=tcp,
        ntcp=ntcp,
        reward=reward(tcp, ntcp, protocol.goals),
        goal=goal_index(tcp, ntcp, protocol.goals),
        goal_flags=flags,
    )
