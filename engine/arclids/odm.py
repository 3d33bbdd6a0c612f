"""Optimal decision maker (ODM): Double-DQN Q-networks trained on ARTE by planning and learning.

ARCliDS (Fig. 8, S6; DESIGN.md §3). A Q-network maps a patient's mid-treatment state (the
protocol's features and the evaluation dose per fraction) to one q-value per candidate adaptive
dose of the protocol's grid; the greedy policy recommends the dose with the highest q-value.

Planning: 4,000 synthetic patients (drawn with replacement from the WGAN-GP's 10,000), every
candidate dose evaluated by one ARTE member, are stored as transitions (s, a, r, s', done) with
the goal flags; s' is the state after the adaptive phase (the dosimetric features replaced by the
adapted gEUDs). Learning: Double DQN (van Hasselt et al. 2016) on that memory — Huber loss,
Adam 5e-4, batch 128, Polyak averaging of the target network with factor 0.99, γ 0.8, 300 epochs.
Every episode ends after its one step (the clinician chooses one adaptive dose), so the Double-DQN
target reduces to the reward; the general target is :func:`engine.core.rl.double_dqn_target`
(shared with the planner, like the Q-network and the Polyak update), tested on a multi-step MDP.
With one-step episodes the best any ODM can do is the exact argmax of its ARTE's reward over the
grid: the evaluation measures how close it gets.

Batches. Planning explores every dose of every state, so a minibatch can hold 128 planned states
with all their D transitions (``batch_unit="state"``, the default: the same Double-DQN update on
the same memory, grouped by state, 32 steps per epoch for 4,000 states) or 128 transitions drawn
from the flattened memory (``batch_unit="transition"``, the literal reading; D times as many
steps per epoch).

Five members, member k on ARTE member k (its own TCP and NTCP estimators) and its own draw of
planning patients, give the recommendation's mean and standard error (:class:`ODMEnsemble`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from engine.arclids.arte import ARTEOutcome
from engine.arclids.gan import TabularTransform
from engine.core.config import DictConfig, check_bool, check_choice, check_range
from engine.core.protocols import Protocol
from engine.core.rl import QNetwork, double_dqn_target, polyak_update
from engine.platform import registry

__all__ = [
    "BATCH_UNITS",
    "PLANNING_ARTES",
    "SERVING_RULES",
    "DoubleDQN",
    "ODMConfig",
    "ODMEnsemble",
    "ODMPrediction",
    "Transitions",
    "arte_member",
    "ensemble_version",
    "plan",
    "state_columns",
]

BATCH_UNITS: tuple[str, ...] = ("state", "transition")
"""What a minibatch of ``batch_size`` holds: planned states with all their doses, or single
transitions (see the module docstring)."""
PLANNING_ARTES: tuple[str, ...] = ("member", "ensemble")
"""Which ARTE member k plans on: its own outcome-ensemble member k (the paper), or the
ensemble-mean curves that the exact argmax is computed on (see :class:`ODMConfig`)."""
SERVING_RULES: tuple[str, ...] = ("mean-dose", "mean-q")
"""How the ensemble's served dose is formed from its members (see :class:`ODMPrediction`)."""


@dataclass(frozen=True)
class ODMConfig(DictConfig):
    """Hyperparameters of one ODM member (ARCliDS S6)."""

    hidden: int = 256
    """Width of every hidden layer of the Q-network."""
    n_layers: int = 5
    """Hidden layers of the Q-network."""
    lr: float = 5e-4
    """Adam learning rate."""
    batch_size: int = 128
    """Minibatch size, in units of ``batch_unit``."""
    batch_unit: str = "state"
    """``"state"`` (planned states with every dose) or ``"transition"``."""
    epochs: int = 300
    """Passes over the planning memory."""
    gamma: float = 0.8
    """Discount factor (irrelevant for one-step episodes, used by the general target)."""
    polyak: float = 0.99
    """Target-network averaging: θ_target ← polyak θ_target + (1 − polyak) θ_online per step."""
    huber_delta: float = 1.0
    """Huber loss threshold (reward units)."""
    grad_clip_norm: float = 10.0
    """Gradient norm clip of each step (0 disables)."""
    n_planning_patients: int = 4000
    """Synthetic patients drawn with replacement for one member's planning memory (with
    ``planning_resample``: drawn afresh from the synthetic pool for every epoch)."""
    planning_resample: bool = False
    """False (the paper): one fixed draw of ``n_planning_patients`` is the memory for every
    epoch. True: the whole synthetic pool is planned and every epoch draws its own
    ``n_planning_patients`` from it with replacement — same steps per epoch, more distinct
    patients seen (measured in docs/model-card-odm.md: it generalises better)."""
    planning_arte: str = "member"
    """``"member"`` (the paper): member k's rewards come from outcome-ensemble member k, so
    the members' spread carries the outcome model's uncertainty. ``"ensemble"``: every member
    plans on the ensemble-mean TCP/NTCP curves, the environment of the served exact argmax."""
    serving_rule: str = "mean-dose"
    """``"mean-dose"`` (the paper): serve the members' mean greedy dose. ``"mean-q"``: serve
    the grid dose with the highest members'-mean q-value (see :class:`ODMPrediction`)."""
    seed: int = 0
    """Seed of the initialisation, the planning draw and the minibatch order."""

    def __post_init__(self) -> None:
        for name in ("hidden", "n_layers", "batch_size", "n_planning_patients"):
            check_range(f"ODMConfig.{name}", getattr(self, name), 1, integer=True)
        check_range("ODMConfig.lr", self.lr, 0.0, lo_open=True)
        check_choice("ODMConfig.batch_unit", self.batch_unit, BATCH_UNITS)
        check_range("ODMConfig.epochs", self.epochs, 0, integer=True)
        check_range("ODMConfig.gamma", self.gamma, 0.0, 1.0)
        check_range("ODMConfig.polyak", self.polyak, 0.0, 1.0)
        check_range("ODMConfig.huber_delta", self.huber_delta, 0.0, lo_open=True)
        check_range("ODMConfig.grad_clip_norm", self.grad_clip_norm, 0.0)
        check_bool("ODMConfig.planning_resample", self.planning_resample)
        check_choice("ODMConfig.planning_arte", self.planning_arte, PLANNING_ARTES)
        check_choice("ODMConfig.serving_rule", self.serving_rule, SERVING_RULES)
        check_range("ODMConfig.seed", self.seed, 0, integer=True)


def state_columns(protocol: Protocol) -> tuple[str, ...]:
    """Columns of the patient state: the protocol features, then ``dose_eval_gy``."""
    return (*protocol.feature_names, "dose_eval_gy")


@dataclass(frozen=True)
class Transitions:
    """A replay memory of rows, each holding K transitions that share one start state.

    One-step ODM planning stores each planned patient as a row with all D doses (K = D, every
    ``done`` True); a generic memory has K = 1.
    """

    states: torch.Tensor
    """Start states, float32 [N, S]."""
    actions: torch.Tensor
    """Actions taken, int64 [N, K]."""
    rewards: torch.Tensor
    """Rewards, float32 [N, K]."""
    next_states: torch.Tensor
    """Next states, float32 [N, K, S]."""
    dones: torch.Tensor
    """Episode ended with the transition, bool [N, K]."""

    def __len__(self) -> int:
        return int(self.states.shape[0])

    def rows(self, index: torch.Tensor) -> Transitions:
        """The rows ``index`` (int64 [B]) as a smaller memory."""
        return Transitions(
            self.states[index],
            self.actions[index],
            self.rewards[index],
            self.next_states[index],
            self.dones[index],
        )

    def flattened(self) -> Transitions:
        """The same transitions as N·K rows of one transition each (K = 1)."""
        n, k = self.actions.shape
        return Transitions(
            states=self.states.repeat_interleave(k, dim=0),
            actions=self.actions.reshape(n * k, 1),
            rewards=self.rewards.reshape(n * k, 1),
            next_states=self.next_states.reshape(n * k, 1, -1),
            dones=self.dones.reshape(n * k, 1),
        )


class DoubleDQN:
    """Double-DQN learner on a fixed replay memory (planning-and-learning; scikit-learn shape).

    Args:
        n_state: state dimension S.
        n_actions: number of actions A.
        config: hyperparameters (``n_planning_patients`` is used only with
            ``planning_resample``, as the number of states drawn per epoch).

    Learned attributes after :meth:`fit`: ``online_`` and ``target_`` (:class:`QNetwork`) and
    ``loss_`` (mean Huber loss per epoch).
    """

    def __init__(self, n_state: int, n_actions: int, config: ODMConfig) -> None:
        self.n_state = n_state
        self.n_actions = n_actions
        self.config = config

    def _targets(self, batch: Transitions) -> torch.Tensor:
        """Double-DQN targets [B, K]; next states are only evaluated where the episode goes on.

        When every transition of the batch is terminal (one-step ODM planning) no next state is
        evaluated at all: the bootstrap terms are zero-width placeholders ([B, K, 1]) that
        :func:`double_dqn_target` multiplies by (1 − done) = 0.
        """
        alive = ~batch.dones
        if not alive.any():
            placeholder = torch.zeros(*batch.actions.shape, 1)  # [B, K, 1]
            return double_dqn_target(
                batch.rewards, batch.dones, placeholder, placeholder, self.config.gamma
            )
        next_online = torch.zeros(*batch.actions.shape, self.n_actions)  # [B, K, A]
        next_target = torch.zeros_like(next_online)
        with torch.no_grad():
            nxt = batch.next_states[alive]  # [n, S]
            next_online[alive] = self.online_(nxt)
            next_target[alive] = self.target_(nxt)
        return double_dqn_target(
            batch.rewards, batch.dones, next_online, next_target, self.config.gamma
        )

    def fit(self, memory: Transitions) -> DoubleDQN:
        cfg = self.config
        torch.manual_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        self.online_ = QNetwork(self.n_state, self.n_actions, cfg.hidden, cfg.n_layers)
        self.target_ = QNetwork(self.n_state, self.n_actions, cfg.hidden, cfg.n_layers)
        self.target_.load_state_dict(self.online_.state_dict())
        self.target_.requires_grad_(False)
        # The fused CPU kernel gives the same update several times faster for these small nets.
        opt = torch.optim.Adam(self.online_.parameters(), lr=cfg.lr, fused=True)
        # Rows per epoch: the whole fixed memory, or a fresh draw of n_planning_patients planned
        # states (with all their doses) from a memory holding the whole synthetic pool.
        per_epoch = cfg.n_planning_patients * memory.actions.shape[1]
        if cfg.batch_unit == "transition":
            memory = memory.flattened()
        else:
            per_epoch = cfg.n_planning_patients
        self.loss_: list[float] = []
        self.online_.train()
        n = len(memory)
        for _ in range(cfg.epochs):
            if cfg.planning_resample:
                order = rng.choice(n, size=per_epoch, replace=True)
            else:
                order = rng.permutation(n)
            perm = torch.from_numpy(order)
            total = torch.zeros(())
            for idx in perm.split(cfg.batch_size):
                batch = memory.rows(idx)
                y = self._targets(batch)  # [B, K]
                q = self.online_(batch.states).gather(1, batch.actions)  # [B, K]
                loss = F.huber_loss(q, y, delta=cfg.huber_delta)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip_norm > 0:
                    nn.utils.clip_grad_norm_(self.online_.parameters(), cfg.grad_clip_norm)
                opt.step()
                polyak_update(self.target_, self.online_, 1.0 - cfg.polyak)
                total += loss.detach() * len(idx)
            self.loss_.append(float(total) / len(perm))
        self.online_.eval()
        return self

    def q_values(self, states: torch.Tensor) -> torch.Tensor:
        """Online-network q-values [N, A] for states [N, S]."""
        with torch.no_grad():
            return self.online_(states)


# ------------------------------------------------------------------------------------------------
# Planning


def _next_states(
    cases: pd.DataFrame, protocol: Protocol, arte: ARTEOutcome, encoder: TabularTransform
) -> torch.Tensor:
    """Encoded states after the adaptive phase, float32 [P, D, S]: gEUD features replaced by the
    adapted gEUDs of each dose."""
    base = cases[list(state_columns(protocol))].reset_index(drop=True)
    p, d = arte.target_geud_gy.shape
    expanded = base.loc[base.index.repeat(d)].reset_index(drop=True)
    expanded[protocol.target.geud_feature] = arte.target_geud_gy.reshape(-1)
    expanded[protocol.oar.geud_feature] = arte.oar_geud_gy.reshape(-1)
    encoded = encoder.transform(expanded)  # [P·D, S]
    return torch.from_numpy(encoded).reshape(p, d, -1)


def plan(
    cases: pd.DataFrame,
    protocol: Protocol,
    arte: ARTEOutcome,
    encoder: TabularTransform,
    member: int = 0,
) -> tuple[Transitions, np.ndarray]:
    """Planning memory of one ARTE member: every case × every dose as a one-step transition.

    Args:
        cases: P planning cases (features and ``dose_eval_gy``).
        protocol: the protocol (dose grid, gEUD features).
        arte: :func:`engine.arclids.arte.evaluate_arte` of ``cases`` (any number of members).
        encoder: fitted state encoder (features and ``dose_eval_gy``).
        member: which ARTE member's rewards to store.

    Returns:
        (transitions with K = D, all terminal; goal flags bool [G, P, D] of that member).
    """
    p, d = arte.target_geud_gy.shape
    states = torch.from_numpy(encoder.transform(cases[list(state_columns(protocol))]))  # [P, S]
    memory = Transitions(
        states=states,
        actions=torch.arange(d).expand(p, d).clone(),  # [P, D]
        rewards=torch.from_numpy(arte.reward[member].astype(np.float32)),  # [P, D]
        next_states=_next_states(cases, protocol, arte, encoder),  # [P, D, S]
        dones=torch.ones(p, d, dtype=torch.bool),
    )
    return memory, arte.goal_flags[:, member]


# ------------------------------------------------------------------------------------------------
# Serving


@dataclass(frozen=True)
class ODMPrediction:
    """The ODM ensemble's recommendation for a batch of cases.

    Two serving rules (``serving_rule``): ``"mean-dose"``, the paper's, serves the members' mean
    greedy dose; ``"mean-q"`` serves the grid dose with the highest q-value averaged over the
    members. Both are reported with the members' mean dose and its standard error. The reward
    jumps by 1–2 at goal boundaries, so the mean of doses either side of a boundary can land on
    its wrong side, while the mean-q dose is always a dose the members scored.
    """

    doses_gy: np.ndarray
    """Candidate doses per fraction, Gy, [D]."""
    q_values: np.ndarray
    """q-value per member, case and dose, [M, P, D]."""
    member_dose_gy: np.ndarray
    """Each member's greedy dose (lowest dose on ties), Gy, [M, P]."""
    member_q_value: np.ndarray
    """Each member's q-value at its greedy dose, [M, P]."""
    serving_rule: str = "mean-dose"
    """One of :data:`SERVING_RULES`: which dose :attr:`dose_gy` serves."""

    @property
    def n_members(self) -> int:
        return int(self.q_values.shape[0])

    @property
    def member_mean_dose_gy(self) -> np.ndarray:
        """The members' mean greedy dose per fraction, Gy, [P] (the paper's recommendation)."""
        return self.member_dose_gy.mean(axis=0)

    @property
    def mean_q_index(self) -> np.ndarray:
        """Grid index of the highest members'-mean q-value (lowest dose on ties), [P]."""
        return np.argmax(self.q_values.mean(axis=0), axis=1)

    @property
    def mean_q_dose_gy(self) -> np.ndarray:
        """Grid dose with the highest members'-mean q-value, Gy, [P]."""
        return self.doses_gy[self.mean_q_index]

    @property
    def dose_gy(self) -> np.ndarray:
        """Recommended dose per fraction under ``serving_rule``, Gy, [P]."""
        if self.serving_rule == "mean-q":
            return self.mean_q_dose_gy
        return self.member_mean_dose_gy

    @property
    def dose_sem_gy(self) -> np.ndarray:
        """Standard error of the members' mean greedy dose, sd(ddof=1)/√M, Gy, [P]; 0 for one
        member (the members' disagreement, whichever rule serves)."""
        m = self.n_members
        if m < 2:
            return np.zeros(self.member_dose_gy.shape[1])
        return self.member_dose_gy.std(axis=0, ddof=1) / np.sqrt(m)

    @property
    def q_value(self) -> np.ndarray:
        """Confidence, the expected reward of the served choice, [P]: with ``"mean-dose"`` the
        members' mean q-value of their own greedy dose; with ``"mean-q"`` the members' mean
        q-value of the served grid dose."""
        if self.serving_rule == "mean-q":
            mean_q = self.q_values.mean(axis=0)  # [P, D]
            return np.take_along_axis(mean_q, self.mean_q_index[:, None], axis=1)[:, 0]
        return self.member_q_value.mean(axis=0)


class ODMEnsemble:
    """Serves the recommendation of M trained Q-networks (an ODM ensemble).

    Args:
        protocol: the protocol every member was trained for.
        encoder: fitted state encoder shared by the members.
        members: Q-networks, each [.., S] → [.., D] with D the protocol's grid.
        version: version string of this ensemble.
        rtoe_version: version of the outcome-model ensemble the members were trained against;
            serving compares it with the served outcome model's version.
        arch: architecture of that outcome model (``"glogd"``, ``"single"``).
        serving_rule: one of :data:`SERVING_RULES` (the members' training config).
        planning_arte: one of :data:`PLANNING_ARTES`: the environment the members planned on.
    """

    def __init__(
        self,
        protocol: Protocol,
        encoder: TabularTransform,
        members: Sequence[QNetwork],
        *,
        version: str,
        rtoe_version: str,
        arch: str,
        serving_rule: str = "mean-dose",
        planning_arte: str = "member",
    ) -> None:
        if not members:
            raise ValueError("an ODM ensemble needs at least one member")
        check_choice("serving_rule", serving_rule, SERVING_RULES)
        check_choice("planning_arte", planning_arte, PLANNING_ARTES)
        self.serving_rule = serving_rule
        self.planning_arte = planning_arte
        self.protocol = protocol
        self.encoder = encoder
        self.members = list(members)
        for net in self.members:
            net.eval()
        self.version = version
        self.rtoe_version = rtoe_version
        self.arch = arch

    def states(self, cases: pd.DataFrame) -> torch.Tensor:
        """Encoded states, float32 [P, S]."""
        return torch.from_numpy(self.encoder.transform(cases[list(state_columns(self.protocol))]))

    def predict(self, cases: pd.DataFrame) -> ODMPrediction:
        """Every member's greedy dose and q-values for the cases."""
        doses = self.protocol.dose_grid()
        x = self.states(cases)  # [P, S]
        with torch.no_grad():
            q = torch.stack([net(x) for net in self.members]).double().numpy()  # [M, P, D]
        best = np.argmax(q, axis=2)  # first maximum: lowest dose on ties
        return ODMPrediction(
            doses_gy=doses,
            q_values=q,
            member_dose_gy=doses[best],
            member_q_value=np.take_along_axis(q, best[..., None], axis=2)[..., 0],
            serving_rule=self.serving_rule,
        )


def ensemble_version(protocol_name: str, arch: str, sha256s: Sequence[str]) -> str:
    """``odm-<protocol>-<arch>-<10 hex>`` from the members' artifact hashes (in member order)."""
    return registry.ensemble_version("odm", protocol_name, arch, sha256s, hex_per_member=8)


def arte_member(model: Any, k: int) -> Any:
    """Outcome model made of member ``k`` of a learned ensemble (the ARTE member ODM k plans on)."""
    from engine.arclids.ensemble import EnsembleOutcomeModel

    return EnsembleOutcomeModel(
        model.protocol,
        [model.tcp_members[k]],
        [model.ntcp_members[k]],
        name=f"{model.name}[{k}]",
        label=f"{model.label}, member {k}",
        version=f"{model.version}[{k}]",
        # the member's probabilities as served: recalibrated like the whole ensemble's
        tcp_calibration=model.tcp_calibration,
        ntcp_calibration=model.ntcp_calibration,
    )

