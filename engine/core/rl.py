"""Double-DQN pieces shared by the two agents: the Q-network, the target and the target update.

Used by the ARCliDS optimal decision maker (:mod:`engine.arclids.odm`, one-step episodes on a
fixed planning memory) and the fractionation planner (:mod:`engine.planner.dqn`, whole courses
with a replay buffer), with the same argument names:

* :class:`QNetwork` — the MLP state [..., S] → one q-value per action [..., A];
* :func:`double_dqn_target` — y = r + γ (1 − done) Q_target(s', argmax_a Q_online(s', a)),
  optionally over the allowed actions of s' only (van Hasselt et al. 2016);
* :func:`polyak_update` — θ_target ← (1 − τ) θ_target + τ θ_online in place; τ = 1 is the hard
  copy of classic DQN.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["QNetwork", "double_dqn_target", "polyak_update"]


class QNetwork(nn.Module):
    """MLP: state [..., S] → one q-value per action [..., A].

    ``n_layers`` × (Linear → ReLU) of width ``hidden``, then a linear output layer, held in
    ``self.net`` (an ``nn.Sequential``), so the ``state_dict`` keys are ``net.0.weight``,
    ``net.0.bias``, ``net.2.weight``, … (saved ODM weights depend on them).

    Args:
        n_state: state dimension S, ≥ 1.
        n_actions: number of actions A, ≥ 1.
        hidden: width of every hidden layer, ≥ 1.
        n_layers: number of hidden layers, ≥ 1.
    """

    def __init__(self, n_state: int, n_actions: int, hidden: int, n_layers: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = n_state
        for _ in range(n_layers):
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        layers.append(nn.Linear(width, n_actions))
        self.net = nn.Sequential(*layers)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        """q-values [..., A] for states [..., S]."""
        return self.net(states)


def double_dqn_target(
    rewards: torch.Tensor,
    dones: torch.Tensor,
    next_q_online: torch.Tensor,
    next_q_target: torch.Tensor,
    gamma: float,
    *,
    next_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Double-DQN target y = r + γ (1 − done) Q_target(s', argmax_{a' allowed} Q_online(s', a')).

    The online network picks the next action, the target network scores it (van Hasselt et al.
    2016), which removes the max operator's overestimation bias of plain DQN.

    Args:
        rewards: [...] reward of each transition (float).
        dones: [...] bool or 0/1, True where s' is terminal (no bootstrap).
        next_q_online: [..., A] online-network q-values of the next states (select the action).
        next_q_target: [..., A] target-network q-values of the same next states (evaluate it).
        gamma: discount factor γ in [0, 1] (for an n-step target, γ^n).
        next_mask: [..., A] bool, the actions allowed in s' (at least one per row); None allows
            every action.

    Returns:
        Targets [...], in the dtype of ``rewards``, without gradient.
    """
    with torch.no_grad():
        if next_mask is not None:
            next_q_online = next_q_online.masked_fill(~next_mask, float("-inf"))
        best = next_q_online.argmax(dim=-1, keepdim=True)  # [..., 1]
        bootstrap = next_q_target.gather(-1, best).squeeze(-1)  # [...]
        alive = 1.0 - dones.to(rewards.dtype)
        return rewards + gamma * alive * bootstrap


def polyak_update(target: nn.Module, online: nn.Module, tau: float) -> None:
    """θ_target ← (1 − τ) θ_target + τ θ_online for every parameter, in place.

    Args:
        target: the target network (updated).
        online: the online network (read), of the same architecture.
        tau: share of the online weights, in [0, 1]. Small τ averages slowly (ODM: 0.01 per
            step); τ = 1 copies the online weights exactly (``torch.lerp`` computes
            end − (end − start)(1 − τ) for τ ≥ 0.5), the hard update of classic DQN.
    """
    with torch.no_grad():
        torch._foreach_lerp_(list(target.parameters()), list(online.parameters()), tau)
