"""A tiny planner configuration shared by the planner and job tests (trains in about a second)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from engine.planner.config import DQNConfig, PlanConfig

TINY_DQN: dict[str, Any] = dict(n_episodes=3, n_envs=4, scenarios_per_env=2, hidden=16,
                                batch_size=32, learning_starts=32, target_update_steps=5)
"""Double-DQN fields of a smoke-test budget (a few episodes on small batches)."""


def tiny_plan(beamlet: bool = False, seed: int = 0) -> PlanConfig:
    """A plan with the :data:`TINY_DQN` budget and 20 evaluation scenarios."""
    return PlanConfig(dqn=replace(DQNConfig(), **TINY_DQN), n_eval_scenarios=20,
                      beamlet=beamlet, seed=seed)
