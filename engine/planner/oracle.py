"""Exact oracle: every weekly-constant plan (A^W, 3⁷ = 2,187 for the lung case) scored on the
same scenarios as the planner, vectorised with numpy.

Plans are enumerated as a tree of week prefixes: the course is simulated once per prefix, so
the work is Σ_w A^w ≈ 1.5 A^W week-blocks instead of W · A^W. Each plan is scored by
:func:`engine.planner.env.course_step`, the very function the RL environment uses, so oracle and
planner are measured with the same reward to the last bit. A plan is *feasible* when its total
dose lies within the course's total-dose bounds (the planner's action mask enforces the same).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from engine.planner.config import PlanConfig
from engine.planner.env import CourseState, ScenarioSet, course_start, course_step
from engine.planner.model import TumourState

__all__ = ["OracleResult", "enumerate_weekly_plans", "solve_oracle"]


def enumerate_weekly_plans(actions_gy: tuple[float, ...], n_weeks: int) -> np.ndarray:
    """All weekly dose plans, ``[A^W, W]`` Gy, in ``itertools.product`` order (week 1 slowest)."""
    return np.array(list(itertools.product(actions_gy, repeat=n_weeks)), dtype=np.float64)


@dataclass(frozen=True)
class OracleResult:
    """Every weekly plan's score and the best feasible one."""

    weekly_plans_gy: np.ndarray
    """[A^W, W] weekly doses per fraction, Gy."""
    mean_return: np.ndarray
    """[A^W] mean course return over the scenarios."""
    mean_tumour_bed_gy: np.ndarray
    """[A^W] mean final tumour BED, Gy."""
    oar_bed_gy: np.ndarray
    """[A^W] final OAR BED, Gy (the same in every scenario)."""
    feasible: np.ndarray
    """[A^W] total dose within the course's bounds."""
    best_index: int
    """Index of the feasible plan with the highest mean return (first in enumeration order on
    ties)."""
    reference_index: int
    """Index of the equal-dose reference plan."""

    @property
    def best_plan_gy(self) -> np.ndarray:
        return self.weekly_plans_gy[self.best_index]

    @property
    def best_return(self) -> float:
        return float(self.mean_return[self.best_index])

    @property
    def reference_return(self) -> float:
        return float(self.mean_return[self.reference_index])

    @property
    def n_plans(self) -> int:
        return int(self.weekly_plans_gy.shape[0])


def _expand(cs: CourseState, n_actions: int) -> CourseState:
    """Repeat every prefix ``n_actions`` times (prefix-major, action-minor)."""

    def rep(a: np.ndarray) -> np.ndarray:
        return np.repeat(a, n_actions, axis=0)

    return CourseState(
        k=cs.k, tumour=TumourState(rep(cs.tumour.viable), rep(cs.tumour.dead),
                                   rep(cs.tumour.doomed)),
        bed_t=rep(cs.bed_t), oar_bed=rep(cs.oar_bed), dose_gy=rep(cs.dose_gy),
        objective=rep(cs.objective),
    )


def solve_oracle(scen: ScenarioSet, cfg: PlanConfig) -> OracleResult:
    """Score every weekly-constant plan on ``scen`` and pick the best feasible one."""
    course = cfg.course
    actions = np.asarray(course.actions_gy)
    n_a, n_w, fpw = len(actions), course.n_weeks, course.fractions_per_week
    cs = course_start(scen, (1,))
    ret = np.zeros_like(cs.bed_t)
    for _ in range(n_w):
        cs = _expand(cs, n_a)
        ret = np.repeat(ret, n_a, axis=0)
        dose = np.tile(actions, cs.bed_t.shape[0] // n_a)[:, None]  # [R, 1]
        for _ in range(fpw):
            cs, r = course_step(cs, dose, scen, cfg.reward)
            ret = ret + r
    plans = enumerate_weekly_plans(course.actions_gy, n_w)
    total = plans.sum(1) * fpw
    lo, hi = course.total_dose_bounds_gy
    feasible = (total >= lo - 1e-9) & (total <= hi + 1e-9)
    mean_ret = ret.mean(1)
    best = int(np.argmax(np.where(feasible, mean_ret, -np.inf)))
    ref_row = np.flatnonzero(np.all(np.isclose(plans, course.reference_dose_gy), axis=1))
    return OracleResult(
        weekly_plans_gy=plans, mean_return=mean_ret, mean_tumour_bed_gy=cs.bed_t.mean(1),
        oar_bed_gy=cs.oar_bed[:, 0], feasible=feasible, best_index=best,
        reference_index=int(ref_row[0]) if ref_row.size else -1,
    )
