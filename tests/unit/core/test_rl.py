"""The Double-DQN pieces both agents share (engine.core.rl), checked by hand."""

from __future__ import annotations

import pytest
import torch

from engine.core.rl import QNetwork, double_dqn_target, polyak_update


def test_double_dqn_target_by_hand_on_two_states():
    # Two next states s'_0, s'_1 with two actions each. Online q: s'_0 → (1, 3), s'_1 → (4, 2);
    # target q: s'_0 → (10, 6), s'_1 → (5, 8). Online picks action 1 in s'_0 and action 0 in
    # s'_1; the target scores them 6 and 5 (not its own maxima 10 and 8).
    rewards = torch.tensor([1.0, -0.5])
    online = torch.tensor([[1.0, 3.0], [4.0, 2.0]])
    target = torch.tensor([[10.0, 6.0], [5.0, 8.0]])
    y = double_dqn_target(rewards, torch.tensor([False, False]), online, target, 0.5)
    assert y.tolist() == [1.0 + 0.5 * 6.0, -0.5 + 0.5 * 5.0]
    # A terminal transition does not bootstrap; 0/1 floats work like bools.
    y = double_dqn_target(rewards, torch.tensor([1.0, 0.0]), online, target, 0.5)
    assert y.tolist() == [1.0, -0.5 + 0.5 * 5.0]
    # With s'_1's action 0 not allowed, online's best allowed action there is 1 (target: 8).
    mask = torch.tensor([[True, True], [False, True]])
    y = double_dqn_target(rewards, torch.tensor([False, False]), online, target, 0.5,
                          next_mask=mask)
    assert y.tolist() == [1.0 + 0.5 * 6.0, -0.5 + 0.5 * 8.0]
    # Leading batch dimensions broadcast ([B, K] rewards with [B, K, A] q-values).
    y = double_dqn_target(rewards[None], torch.zeros(1, 2), online[None], target[None], 1.0)
    assert y.shape == (1, 2) and y.tolist() == [[7.0, 4.5]]


def test_double_dqn_target_carries_no_gradient():
    online = torch.tensor([[1.0, 3.0]], requires_grad=True)
    y = double_dqn_target(torch.tensor([0.0]), torch.tensor([0.0]), online, online * 2, 0.9)
    assert not y.requires_grad and y.item() == pytest.approx(0.9 * 6.0)


@pytest.mark.parametrize("tau", [0.0, 0.01, 0.25, 0.5, 0.9])
def test_polyak_update_moves_target_by_tau(tau):
    torch.manual_seed(1)
    online, target = QNetwork(3, 2, 5, 2), QNetwork(3, 2, 5, 2)
    before = [p.clone() for p in target.parameters()]
    polyak_update(target, online, tau=tau)
    for b, t, o in zip(before, target.parameters(), online.parameters(), strict=True):
        torch.testing.assert_close(t, (1.0 - tau) * b + tau * o)
    assert not any(torch.equal(b, o) for b, o in zip(before, online.parameters(), strict=True))


def test_polyak_update_with_tau_one_is_an_exact_copy():
    torch.manual_seed(2)
    online, target = QNetwork(4, 3, 8, 3), QNetwork(4, 3, 8, 3)
    with torch.no_grad():
        for p in online.parameters():
            p.mul_(1e3).add_(1e-7)
    polyak_update(target, online, tau=1.0)
    for t, o in zip(target.parameters(), online.parameters(), strict=True):
        assert torch.equal(t, o)


def test_q_network_layout_and_shapes():
    net = QNetwork(n_state=6, n_actions=4, hidden=16, n_layers=3)
    assert list(net.state_dict()) == [
        f"net.{i}.{w}" for i in (0, 2, 4, 6) for w in ("weight", "bias")
    ]
    assert net.net[0].weight.shape == (16, 6) and net.net[6].weight.shape == (4, 16)
    assert net(torch.zeros(5, 6)).shape == (5, 4)
    assert net(torch.zeros(2, 5, 6)).shape == (2, 5, 4)
