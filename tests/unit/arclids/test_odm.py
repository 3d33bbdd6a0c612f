"""Double-DQN machinery, planning memory and the ODM ensemble."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from engine.arclids.arte import evaluate_arte
from engine.arclids.cohort import ReferenceModel, generate_cohort
from engine.arclids.gan import TabularTransform
from engine.arclids.odm import (
    DoubleDQN,
    ODMConfig,
    ODMEnsemble,
    Transitions,
    plan,
    state_columns,
)
from engine.core.protocols import load_protocol
from engine.core.rl import QNetwork, double_dqn_target, polyak_update

NSCLC = load_protocol("nsclc")


def test_double_dqn_target_uses_online_argmax_scored_by_target():
    rewards = torch.tensor([0.5, 0.5, 1.0])
    dones = torch.tensor([False, False, True])
    online = torch.tensor([[1.0, 2.0], [3.0, 0.0], [9.0, 9.0]])  # picks action 1, 0, -
    target = torch.tensor([[5.0, 0.0], [4.0, 7.0], [9.0, 9.0]])
    y = double_dqn_target(rewards, dones, online, target, gamma=0.5)
    # row 0: target's value of online's choice (action 1) is 0, not target's own max 5
    torch.testing.assert_close(y, torch.tensor([0.5 + 0.5 * 0.0, 0.5 + 0.5 * 4.0, 1.0]))


def test_polyak_update_moves_target_one_percent_towards_online():
    torch.manual_seed(0)
    online, target = QNetwork(3, 2, 4, 1), QNetwork(3, 2, 4, 1)
    before = [p.clone() for p in target.parameters()]
    polyak_update(target, online, tau=1.0 - ODMConfig().polyak)  # as DoubleDQN.fit does
    for b, t, o in zip(before, target.parameters(), online.parameters(), strict=True):
        torch.testing.assert_close(t, 0.99 * b + 0.01 * o)


def _chain_mdp(gamma: float) -> tuple[Transitions, np.ndarray]:
    """States 0, 1, 2 (one-hot) and a terminal 3; right moves on (reward 1 on reaching 3),
    left moves back (floor 0, reward 0). Returns every (s, a) transition and Q*."""
    eye = torch.eye(3)
    states, actions, rewards, nexts, dones = [], [], [], [], []
    for s in range(3):
        for a in (0, 1):  # 0 = left, 1 = right
            nxt = max(s - 1, 0) if a == 0 else s + 1
            states.append(eye[s])
            actions.append([a])
            rewards.append([1.0 if nxt == 3 else 0.0])
            nexts.append(torch.zeros(1, 3) if nxt == 3 else eye[nxt][None])
            dones.append([nxt == 3])
    memory = Transitions(
        torch.stack(states), torch.tensor(actions), torch.tensor(rewards),
        torch.stack(nexts), torch.tensor(dones),
    )
    v = {2: 1.0, 1: gamma, 0: gamma**2}  # optimal values: always right
    q_star = np.array([[gamma * v[max(s - 1, 0)], v[s]] for s in range(3)])
    return memory, q_star


def test_double_dqn_learns_the_optimal_policy_of_a_multi_step_mdp():
    gamma = 0.8
    memory, q_star = _chain_mdp(gamma)
    config = ODMConfig(hidden=32, n_layers=2, lr=1e-2, batch_size=6, epochs=300, gamma=gamma,
                       polyak=0.9, seed=0)
    dqn = DoubleDQN(3, 2, config).fit(memory)
    q = dqn.q_values(torch.eye(3)).numpy()
    np.testing.assert_array_equal(q.argmax(axis=1), [1, 1, 1])  # always move right
    np.testing.assert_allclose(q, q_star, atol=0.02)  # bootstrapped values, not just rewards


def test_flattened_memory_keeps_every_transition():
    memory, _ = _chain_mdp(0.8)
    wide = Transitions(memory.states[:2], torch.tensor([[0, 1], [1, 0]]),
                       torch.tensor([[1.0, 2.0], [3.0, 4.0]]),
                       torch.zeros(2, 2, 3), torch.ones(2, 2, dtype=torch.bool))
    flat = wide.flattened()
    assert len(flat) == 4 and flat.actions.shape == (4, 1)
    torch.testing.assert_close(flat.rewards[:, 0], torch.tensor([1.0, 2.0, 3.0, 4.0]))
    torch.testing.assert_close(flat.states[1], wide.states[0])


@pytest.mark.parametrize("unit", ["state", "transition"])
def test_tiny_budget_learns_the_argmax_of_a_toy_reward(unit):
    """Reward peaks at a state-dependent dose; a small Q-net must find that peak."""
    rng = np.random.default_rng(0)
    n, d = 200, 11
    doses = np.linspace(0.0, 1.0, d)
    x = rng.uniform(-1, 1, (n, 2))
    peak = 0.5 + 0.4 * x[:, 0]  # [N] in 0.1…0.9
    reward = 1.0 - 4.0 * (doses[None, :] - peak[:, None]) ** 2  # [N, D]
    memory = Transitions(
        torch.tensor(x, dtype=torch.float32), torch.arange(d).expand(n, d).clone(),
        torch.tensor(reward, dtype=torch.float32), torch.zeros(n, d, 2),
        torch.ones(n, d, dtype=torch.bool),
    )
    epochs = 40 if unit == "state" else 4
    config = ODMConfig(hidden=32, n_layers=2, lr=3e-3, batch_size=32, epochs=epochs,
                       batch_unit=unit, seed=1)
    dqn = DoubleDQN(2, d, config).fit(memory)
    test = rng.uniform(-1, 1, (200, 2))
    chosen = doses[dqn.q_values(torch.tensor(test, dtype=torch.float32)).numpy().argmax(1)]
    best = doses[np.argmin(np.abs(doses[None, :] - (0.5 + 0.4 * test[:, :1])), axis=1)]
    assert np.mean(np.abs(chosen - best) <= 0.1 + 1e-9) >= 0.9
    assert dqn.loss_[-1] < dqn.loss_[0]


def test_training_is_deterministic():
    memory, _ = _chain_mdp(0.8)
    config = ODMConfig(hidden=8, n_layers=2, batch_size=2, epochs=5, seed=3)
    a = DoubleDQN(3, 2, config).fit(memory).q_values(torch.eye(3))
    b = DoubleDQN(3, 2, config).fit(memory).q_values(torch.eye(3))
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_plan_stores_every_dose_as_a_terminal_transition():
    cases = generate_cohort("nsclc", seed=3, n_patients=12).complete_table
    encoder = TabularTransform(NSCLC).fit(cases)
    arte = evaluate_arte(cases, NSCLC, ReferenceModel("nsclc"))
    memory, flags = plan(cases, NSCLC, arte, encoder)
    p, d = len(cases), len(NSCLC.dose_grid_gy)
    assert memory.states.shape == (p, len(state_columns(NSCLC)))
    assert memory.next_states.shape == (p, d, memory.states.shape[1])
    assert bool(memory.dones.all()) and flags.shape == (len(NSCLC.goals), p, d)
    np.testing.assert_allclose(memory.rewards.numpy(), arte.reward[0], rtol=1e-6)
    np.testing.assert_array_equal(memory.actions[0].numpy(), np.arange(d))
    # the next state carries the adapted tumour gEUD, which rises with the dose
    j = NSCLC.feature_names.index("tumour_geud_gy")
    assert (np.diff(memory.next_states[:, :, j].numpy(), axis=1) > 0).all()


class _Constant(torch.nn.Module):
    def __init__(self, q: list[float]) -> None:
        super().__init__()
        self.q = torch.tensor(q)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.q.expand(x.shape[0], -1)


def test_ensemble_prediction_mean_sem_and_q():
    cases = generate_cohort("nsclc", seed=3, n_patients=4).complete_table
    encoder = TabularTransform(NSCLC).fit(cases)
    d = len(NSCLC.dose_grid_gy)
    members = []
    for best in (0, 2, 4):
        q = [0.0] * d
        q[best] = 1.0 + best
        members.append(_Constant(q))
    odm = ODMEnsemble(NSCLC, encoder, members, version="v", rtoe_version="r", arch="glogd")
    pred = odm.predict(cases)
    doses = NSCLC.dose_grid()
    np.testing.assert_allclose(pred.dose_gy, doses[[0, 2, 4]].mean())
    np.testing.assert_allclose(pred.dose_sem_gy, np.std(doses[[0, 2, 4]], ddof=1) / np.sqrt(3))
    np.testing.assert_allclose(pred.q_value, np.mean([1.0, 3.0, 5.0]))
    assert pred.q_values.shape == (3, len(cases), d)


def test_mean_q_rule_serves_the_dose_the_members_score_best_on_average():
    """Two members' greedy doses straddle a dose both score poorly: their mean lands on it;
    the mean-q rule serves the grid dose with the highest average q instead."""
    cases = generate_cohort("nsclc", seed=3, n_patients=2).complete_table
    encoder = TabularTransform(NSCLC).fit(cases)
    d = len(NSCLC.dose_grid_gy)
    q_a, q_b = [0.0] * d, [0.0] * d
    q_a[0], q_a[4] = 3.0, 2.9  # member a: best 0, nearly as good 4
    q_b[4], q_b[8] = 2.9, 3.0  # member b: best 8, nearly as good 4
    members = [_Constant(q_a), _Constant(q_b)]
    doses = NSCLC.dose_grid()
    paper = ODMEnsemble(NSCLC, encoder, members, version="v", rtoe_version="r", arch="glogd")
    mean_q = ODMEnsemble(NSCLC, encoder, members, version="v", rtoe_version="r", arch="glogd",
                         serving_rule="mean-q")
    a, b = paper.predict(cases), mean_q.predict(cases)
    np.testing.assert_allclose(a.dose_gy, doses[[0, 8]].mean())
    np.testing.assert_allclose(b.dose_gy, doses[4])
    np.testing.assert_allclose(b.q_value, 2.9)  # the members' mean q of the served dose
    np.testing.assert_allclose(a.q_value, 3.0)  # each member's q of its own choice
    # whatever the rule, the members' mean dose and its SEM are reported
    for pred in (a, b):
        np.testing.assert_allclose(pred.member_mean_dose_gy, doses[[0, 8]].mean())
        np.testing.assert_allclose(pred.dose_sem_gy, np.std(doses[[0, 8]], ddof=1) / np.sqrt(2))
    with pytest.raises(ValueError, match="serving_rule"):
        ODMEnsemble(NSCLC, encoder, members, version="v", rtoe_version="r", arch="glogd",
                    serving_rule="median")


def test_resampled_planning_draws_fresh_states_each_epoch():
    """With planning_resample an epoch is n_planning_patients states drawn from the whole
    memory, so the step count does not grow with the pool; the result is deterministic."""
    n, d = 64, 3
    states = torch.arange(n, dtype=torch.float32)[:, None] / n
    memory = Transitions(states, torch.arange(d).expand(n, d).clone(),
                         states.expand(n, d).clone(), torch.zeros(n, d, 1),
                         torch.ones(n, d, dtype=torch.bool))
    seen: list[torch.Tensor] = []

    class Spy(Transitions):
        def rows(self, index):
            seen.append(index)
            return super().rows(index)

    spy = Spy(*(getattr(memory, f) for f in ("states", "actions", "rewards", "next_states",
                                              "dones")))
    config = ODMConfig(hidden=8, n_layers=1, batch_size=4, epochs=3, n_planning_patients=8,
                       planning_resample=True, seed=2)
    fitted = DoubleDQN(1, d, config).fit(spy)
    assert len(seen) == 3 * 2  # 8 states per epoch in batches of 4
    drawn = torch.cat(seen)
    assert len(torch.unique(drawn)) > 8  # not one fixed subset
    again = DoubleDQN(1, d, config).fit(memory)
    torch.testing.assert_close(fitted.q_values(states), again.q_values(states), rtol=0, atol=0)


def test_config_validation():
    with pytest.raises(ValueError, match="batch_unit"):
        ODMConfig(batch_unit="episode")
    with pytest.raises(ValueError, match="planning_arte"):
        ODMConfig(planning_arte="mean")
    with pytest.raises(ValueError, match="serving_rule"):
        ODMConfig(serving_rule="median")
    assert ODMConfig.from_dict(ODMConfig().to_dict()) == ODMConfig()
    pd.testing.assert_index_equal(pd.Index(state_columns(NSCLC))[-1:], pd.Index(["dose_eval_gy"]))
