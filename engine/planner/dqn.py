"""Double-DQN fractionation planner (Algorithm 1 of Ebrahimi & Lim, with Van Hasselt's target).

Training runs ``n_envs`` sampled biologies through a course in lock-step (a vectorised
environment, the biology re-drawn every episode for robustness), picks actions ε-greedily among
the allowed ones, stores transitions in a replay memory and takes minibatch gradient steps on
the Huber loss against the Double-DQN target (:func:`engine.core.rl.double_dqn_target` over the
allowed actions: the online network picks the next action, the target network scores it), with
gradient clipping and a hard target update (:func:`engine.core.rl.polyak_update` with τ = 1)
every ``target_update_steps`` gradient steps. The Q-network, target and update are the ones the
ARCliDS decision maker uses (:mod:`engine.core.rl`). The agent learns from the reward relative
to the reference plan on the same biology (see :class:`~engine.planner.env.FractionationEnv`).

Determinism: ``fit`` seeds torch and numpy from ``cfg.seed`` and runs torch on one thread, so
the same config gives the same weights, bit for bit, on the same machine and library versions.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from engine.core.rl import QNetwork, double_dqn_target, polyak_update
from engine.planner.config import DQNConfig, PlanConfig
from engine.planner.env import N_OBS, FractionationEnv, sample_biology

__all__ = [
    "N_HIDDEN_LAYERS",
    "DQNPlanner",
    "ReplayBuffer",
    "TrainingLog",
    "cosine_learning_rate",
    "greedy_actions",
    "linear_epsilon",
]

N_HIDDEN_LAYERS = 2
"""Hidden layers of the planner's Q-network (each ``DQNConfig.hidden`` wide)."""

ProgressFn = Callable[[int, int], None]
"""``progress(done_episodes, total_episodes)``."""


def greedy_actions(q_values: torch.Tensor | np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Index of the highest allowed Q-value per row, int [B] (lowest index on ties)."""
    q = q_values.detach().cpu().numpy() if isinstance(q_values, torch.Tensor) else q_values
    return np.where(mask, q, -np.inf).argmax(axis=1)


def linear_epsilon(episode: int, cfg: DQNConfig) -> float:
    """ε of an episode: linear from ``epsilon_start`` to ``epsilon_end`` over the first
    ``epsilon_decay_fraction`` of the episodes, then constant."""
    span = max(1.0, cfg.epsilon_decay_fraction * cfg.n_episodes)
    frac = min(1.0, episode / span)
    return cfg.epsilon_start + frac * (cfg.epsilon_end - cfg.epsilon_start)


def cosine_learning_rate(episode: int, cfg: DQNConfig) -> float:
    """Learning rate of an episode: cosine from ``learning_rate`` down to
    ``learning_rate × learning_rate_final_fraction`` at the last episode."""
    frac = episode / max(1, cfg.n_episodes - 1)
    final = cfg.learning_rate_final_fraction
    return cfg.learning_rate * (final + (1.0 - final) * 0.5 * (1.0 + np.cos(np.pi * frac)))


class ReplayBuffer:
    """Ring buffer of transitions (s, a, r, s', done, mask(s')) as numpy arrays."""

    def __init__(self, capacity: int, n_obs: int, n_actions: int) -> None:
        self.capacity = capacity
        self.obs = np.zeros((capacity, n_obs), np.float32)
        self.next_obs = np.zeros((capacity, n_obs), np.float32)
        self.actions = np.zeros(capacity, np.int64)
        self.rewards = np.zeros(capacity, np.float32)
        self.dones = np.zeros(capacity, np.float32)
        self.next_mask = np.zeros((capacity, n_actions), bool)
        self.size = 0
        self._pos = 0

    def add(self, obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray,
            next_obs: np.ndarray, done: bool, next_mask: np.ndarray) -> None:
        """Store a batch of transitions (one per parallel environment)."""
        n = obs.shape[0]
        idx = (self._pos + np.arange(n)) % self.capacity
        self.obs[idx], self.actions[idx], self.rewards[idx] = obs, actions, rewards
        self.next_obs[idx], self.dones[idx], self.next_mask[idx] = next_obs, float(done), next_mask
        self._pos = int((self._pos + n) % self.capacity)
        self.size = min(self.capacity, self.size + n)

    def sample(self, rng: np.random.Generator, batch: int) -> dict[str, torch.Tensor]:
        idx = rng.integers(0, self.size, batch)
        return {
            "obs": torch.from_numpy(self.obs[idx]),
            "actions": torch.from_numpy(self.actions[idx]),
            "rewards": torch.from_numpy(self.rewards[idx]),
            "next_obs": torch.from_numpy(self.next_obs[idx]),
            "dones": torch.from_numpy(self.dones[idx]),
            "next_mask": torch.from_numpy(self.next_mask[idx]),
        }


class _NStepTrace:
    """Turns the one-step transitions of a lock-step episode into n-step ones.

    ``push`` takes one vectorised step and returns the n-step transitions that became complete:
    (s_t, a_t, Σ_{i<n} γ^i r_{t+i}, s_{t+n}, done, mask(s_{t+n})). When the episode ends, the
    last ones are flushed with their shorter reward sums and ``done`` = True (no bootstrap, so
    the γ^n of the target does not matter for them).
    """

    def __init__(self, n: int, discount: float) -> None:
        self.n, self.discount = n, discount
        self.pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def push(self, obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray,
             next_obs: np.ndarray, done: bool, next_mask: np.ndarray) -> list[tuple]:
        self.pending.append((obs, actions, np.zeros(rewards.shape, np.float64)))
        m = len(self.pending)
        for i, (_, _, acc) in enumerate(self.pending):
            acc += self.discount ** (m - 1 - i) * rewards
        out = []
        if len(self.pending) == self.n and not done:
            o, a, acc = self.pending.pop(0)
            out.append((o, a, acc.astype(np.float32), next_obs, False, next_mask))
        if done:
            out += [(o, a, acc.astype(np.float32), next_obs, True, next_mask)
                    for o, a, acc in self.pending]
            self.pending = []
        return out


@contextmanager
def _one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass(frozen=True)
class TrainingLog:
    """What happened during :meth:`DQNPlanner.fit`."""

    episode_return: np.ndarray
    """[E] mean raw course return of each training episode (with exploration)."""
    episode_epsilon: np.ndarray
    """[E] ε of each episode."""
    loss: np.ndarray
    """[E] mean Huber loss of each episode's gradient steps (NaN before learning starts)."""
    n_transitions: int
    """Transitions collected."""
    n_updates: int
    """Gradient steps taken."""


class DQNPlanner:
    """Double-DQN agent over :class:`~engine.planner.env.FractionationEnv`.

    ``fit`` returns self and sets ``q_net_`` (the trained online network), ``log_``
    (:class:`TrainingLog`) and ``train_seconds_`` (wall-clock training time, s).
    """

    def __init__(self, cfg: PlanConfig) -> None:
        self.cfg = cfg

    def fit(self, progress: ProgressFn | None = None) -> DQNPlanner:
        cfg, dq = self.cfg, self.cfg.dqn
        start = time.perf_counter()
        with _one_thread():
            torch.manual_seed(cfg.seed)
            rng = np.random.default_rng([cfg.seed, 17])
            env = FractionationEnv(cfg, dq.scenarios_per_env)
            n_a = env.n_actions
            online = QNetwork(N_OBS, n_a, dq.hidden, N_HIDDEN_LAYERS)
            target = QNetwork(N_OBS, n_a, dq.hidden, N_HIDDEN_LAYERS)
            target.load_state_dict(online.state_dict())
            optimiser = torch.optim.Adam(online.parameters(), lr=dq.learning_rate)
            buffer = ReplayBuffer(dq.buffer_size, N_OBS, n_a)
            returns, epsilons, losses = [], [], []
            n_updates = 0
            if progress:
                progress(0, dq.n_episodes)
            for episode in range(dq.n_episodes):
                eps = linear_epsilon(episode, dq)
                for group in optimiser.param_groups:
                    group["lr"] = cosine_learning_rate(episode, dq)
                bio = sample_biology(cfg.biology, dq.n_envs * dq.scenarios_per_env, rng)
                obs, mask = env.reset(bio)
                total = np.zeros(dq.n_envs)
                ep_losses = []
                trace = _NStepTrace(dq.n_step, dq.discount)
                done = False
                while not done:
                    with torch.no_grad():
                        greedy = greedy_actions(online(torch.from_numpy(obs)), mask)
                    noise = rng.random(mask.shape)
                    random = np.where(mask, noise, -1.0).argmax(axis=1)
                    explore = rng.random(dq.n_envs) < eps
                    actions = np.where(explore, random, greedy)
                    next_obs, raw, rel, done, next_mask = env.step(actions)
                    for item in trace.push(obs, actions, rel, next_obs, done, next_mask):
                        buffer.add(*item)
                    total += raw
                    obs, mask = next_obs, next_mask
                    if buffer.size < max(dq.learning_starts, dq.batch_size):
                        continue
                    for _ in range(dq.updates_per_step):
                        ep_losses.append(self._update(online, target, optimiser, buffer, rng))
                        n_updates += 1
                        if n_updates % dq.target_update_steps == 0:
                            polyak_update(target, online, tau=1.0)  # hard copy
                returns.append(float(total.mean()))
                epsilons.append(eps)
                losses.append(float(np.mean(ep_losses)) if ep_losses else float("nan"))
                if progress:
                    progress(episode + 1, dq.n_episodes)
        online.eval()
        self.q_net_ = online
        self.log_ = TrainingLog(
            episode_return=np.array(returns), episode_epsilon=np.array(epsilons),
            loss=np.array(losses), n_transitions=dq.n_episodes * dq.n_envs
            * (cfg.course.n_fractions // cfg.course.fractions_per_decision),
            n_updates=n_updates,
        )
        self.train_seconds_ = time.perf_counter() - start
        return self

    def _update(self, online: QNetwork, target: QNetwork, optimiser: torch.optim.Optimizer,
                buffer: ReplayBuffer, rng: np.random.Generator) -> float:
        dq = self.cfg.dqn
        b = buffer.sample(rng, dq.batch_size)
        with torch.no_grad():
            q_next_online = online(b["next_obs"])  # [B, A]
            q_next_target = target(b["next_obs"])  # [B, A]
        y = double_dqn_target(b["rewards"], b["dones"], q_next_online, q_next_target,
                              dq.discount ** dq.n_step, next_mask=b["next_mask"])  # [B]
        q = online(b["obs"]).gather(1, b["actions"][:, None]).squeeze(1)  # [B]
        loss = nn.functional.smooth_l1_loss(q, y)
        optimiser.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(online.parameters(), dq.max_grad_norm)
        optimiser.step()
        return float(loss.item())

    def q_values(self, obs: np.ndarray) -> np.ndarray:
        """Q-values [B, A] of observations [B, N_OBS]."""
        with _one_thread(), torch.no_grad():
            return self.q_net_(torch.from_numpy(np.asarray(obs, np.float32))).numpy()

    def predict(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Greedy allowed action index per observation, int [B]."""
        return greedy_actions(self.q_values(obs), mask)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The trained Q-network's weights (for :mod:`engine.platform.registry`)."""
        return self.q_net_.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> DQNPlanner:
        """Restore a Q-network saved with :meth:`state_dict`; returns self."""
        net = QNetwork(N_OBS, len(self.cfg.course.actions_gy), self.cfg.dqn.hidden,
                       N_HIDDEN_LAYERS)
        net.load_state_dict(state)
        net.eval()
        self.q_net_ = net
        return self
