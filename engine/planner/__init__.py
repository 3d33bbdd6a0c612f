"""Tumour-response RL planner: adaptive fractionation under uncertain biology (DESIGN.md §5).

Modules: :mod:`~engine.planner.model` (tumour/OAR response, BED, Theorem 2, Algorithm 2),
:mod:`~engine.planner.config` (frozen configs), :mod:`~engine.planner.env` (the fractionation
environment and reward (15)), :mod:`~engine.planner.dqn` (Double-DQN planner),
:mod:`~engine.planner.oracle` (every weekly plan, exactly), :mod:`~engine.planner.evaluate`
(the pipeline behind ``artds plan``), :mod:`~engine.planner.beamlet` (beamlet LP on a phantom)
and :mod:`~engine.planner.figures` (plotly figures). Units and readings of the paper's formulas:
``docs/planner.md``.
"""

from engine.planner.config import (
    BiologyRanges,
    CourseConfig,
    DQNConfig,
    PlanConfig,
    RewardWeights,
    preference_weights,
)
from engine.planner.evaluate import PlanResult, run_plan

__all__ = [
    "BiologyRanges",
    "CourseConfig",
    "DQNConfig",
    "PlanConfig",
    "PlanResult",
    "RewardWeights",
    "preference_weights",
    "run_plan",
]
