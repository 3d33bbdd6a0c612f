"""Double-DQN planner: the target function on a tiny MDP, schedules, trainer smoke runs."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from engine.core.rl import double_dqn_target
from engine.planner.config import DQNConfig, PlanConfig
from engine.planner.dqn import (
    DQNPlanner,
    ReplayBuffer,
    _NStepTrace,
    cosine_learning_rate,
    greedy_actions,
    linear_epsilon,
)
from engine.planner.env import N_OBS, FractionationEnv, sample_biology
from tests.unit.planner.helpers import TINY_DQN


def test_target_selects_with_online_and_evaluates_with_target():
    q_online = torch.tensor([[1.0, 5.0, 3.0]])
    q_target = torch.tensor([[10.0, 2.0, 7.0]])
    mask = torch.tensor([[True, True, True]])
    y = double_dqn_target(torch.tensor([0.5]), torch.tensor([0.0]), q_online, q_target, 0.9,
                          next_mask=mask)
    assert y.item() == pytest.approx(0.5 + 0.9 * 2.0)  # not max(q_target) = 10
    masked = torch.tensor([[True, False, True]])
    y = double_dqn_target(torch.tensor([0.5]), torch.tensor([0.0]), q_online, q_target, 0.9,
                          next_mask=masked)
    assert y.item() == pytest.approx(0.5 + 0.9 * 7.0)
    y = double_dqn_target(torch.tensor([0.5]), torch.tensor([1.0]), q_online, q_target, 0.9,
                          next_mask=mask)
    assert y.item() == pytest.approx(0.5)


def test_double_dqn_target_solves_a_tiny_mdp():
    """Chain 0 → 1 → 2 → 3 (terminal): "right" moves on (reward 0, 1 on reaching 3), "stay"
    pays 0.3 once and ends the episode. With γ = 0.9 the optimal policy is "right" everywhere:
    Q*(s, right) = 0.9^(2 − s), Q*(s, stay) = 0.3. A tabular Q updated only through
    double_dqn_target (target table copied every 5 sweeps) must reach Q* and that policy."""
    gamma, n = 0.9, 3
    transitions = []  # (s, a, r, s', done)
    for s in range(n):
        transitions.append((s, 1, 1.0 if s == n - 1 else 0.0, s + 1, s == n - 1))
        transitions.append((s, 0, 0.3, s, True))
    online = torch.zeros(n + 1, 2)
    target = online.clone()
    mask = torch.ones(1, 2, dtype=torch.bool)
    for sweep in range(60):
        for s, a, r, s2, done in transitions:
            y = double_dqn_target(torch.tensor([r]), torch.tensor([float(done)]),
                                  online[s2][None], target[s2][None], gamma, next_mask=mask)
            online[s, a] = y.item()
        if sweep % 5 == 4:
            target = online.clone()
    expect_right = torch.tensor([gamma ** (n - 1 - s) for s in range(n)])
    assert torch.allclose(online[:n, 1], expect_right)
    assert torch.allclose(online[:n, 0], torch.full((n,), 0.3))
    assert greedy_actions(online[:n], np.ones((n, 2), bool)).tolist() == [1, 1, 1]


def test_greedy_respects_mask():
    q = np.array([[1.0, 3.0, 2.0], [5.0, 0.0, 0.0]])
    mask = np.array([[True, False, True], [False, True, True]])
    assert greedy_actions(q, mask).tolist() == [2, 1]


def test_schedules():
    cfg = DQNConfig(n_episodes=100, epsilon_start=1.0, epsilon_end=0.1,
                    epsilon_decay_fraction=0.5, learning_rate=1e-3,
                    learning_rate_final_fraction=0.1)
    assert linear_epsilon(0, cfg) == 1.0
    assert linear_epsilon(25, cfg) == pytest.approx(0.55)
    assert linear_epsilon(50, cfg) == pytest.approx(0.1) == linear_epsilon(99, cfg)
    assert cosine_learning_rate(0, cfg) == pytest.approx(1e-3)
    assert cosine_learning_rate(99, cfg) == pytest.approx(1e-4)


def test_replay_buffer_wraps_around():
    buf = ReplayBuffer(5, N_OBS, 3)
    for i in range(3):
        obs = np.full((2, N_OBS), i, np.float32)
        buf.add(obs, np.array([0, 1]), np.array([i, i], np.float32), obs, i == 2,
                np.ones((2, 3), bool))
    assert buf.size == 5
    batch = buf.sample(np.random.default_rng(0), 16)
    assert batch["obs"].shape == (16, N_OBS) and batch["next_mask"].dtype == torch.bool
    assert sorted(buf.rewards.tolist()) == [0.0, 1.0, 1.0, 2.0, 2.0]  # oldest one overwritten


def test_n_step_trace_sums_rewards_and_flushes_at_the_end():
    trace = _NStepTrace(2, 0.5)
    mask = np.ones((1, 3), bool)
    out = []
    for t, r in enumerate([1.0, 2.0, 4.0]):
        o = np.full((1, N_OBS), t, np.float32)
        out += trace.push(o, np.array([0]), np.array([r]), o + 1, t == 2, mask)
    rewards = [float(item[2][0]) for item in out]
    assert rewards == [1.0 + 0.5 * 2.0, 2.0 + 0.5 * 4.0, 4.0]
    assert [item[4] for item in out] == [False, True, True]


def _tiny(seed: int = 0, **dqn) -> PlanConfig:
    return PlanConfig(seed=seed, dqn=replace(DQNConfig(), **{**TINY_DQN, "n_episodes": 4, **dqn}))


def test_trainer_smoke_and_determinism():
    a = DQNPlanner(_tiny()).fit()
    b = DQNPlanner(_tiny()).fit()
    assert a.log_.episode_return.shape == (4,) and a.log_.n_updates > 0
    assert a.train_seconds_ > 0
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k])
    c = DQNPlanner(_tiny(seed=1)).fit()
    assert any(not torch.equal(v, c.state_dict()[k]) for k, v in a.state_dict().items())
    env = FractionationEnv(a.cfg)
    obs, mask = env.reset(sample_biology(a.cfg.biology, 6, np.random.default_rng(0)))
    done = False
    while not done:
        act = a.predict(obs, mask)
        assert mask[np.arange(6), act].all()
        obs, _, _, done, mask = env.step(act)


def test_trainer_per_fraction_with_n_step_and_reload():
    cfg = _tiny(n_step=5)
    cfg = replace(cfg, course=replace(cfg.course, fractions_per_decision=1))
    planner = DQNPlanner(cfg).fit()
    assert planner.log_.n_transitions == 4 * 4 * 35
    again = DQNPlanner(cfg).load_state_dict(planner.state_dict())
    obs = np.random.default_rng(0).random((3, N_OBS)).astype(np.float32)
    assert np.array_equal(again.q_values(obs), planner.q_values(obs))
