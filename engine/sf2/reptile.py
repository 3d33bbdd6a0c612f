"""First-order REPTILE (Nichol, Achiam & Schulman 2018) for small regression MLPs, in PyTorch.

REPTILE learns an initialisation θ from which a few SGD steps on a new task fit it well. Per
meta-iteration: draw a meta-batch of tasks; for each, copy θ to φ and take ``inner_steps`` SGD
steps of size ``inner_lr`` on the task's loss; then move θ towards the adapted weights,

    θ ← θ + β · mean_tasks(φ_t − θ),

with β annealed linearly from ``meta_lr`` to ``meta_lr_final`` over the iterations (as in the
paper's schedule, "step sizes linearly annealed"; only the outer step is annealed here, as in
Nichol et al.'s code). No second derivatives are taken.

The network of the SF2 paper (Peng et al., "Part III") is the default config: 20 → 64 → 32 → 1,
ReLU hidden layers, sigmoid output (SF2 ∈ (0, 1)), inner SGD 0.01 × 10 steps on the mean absolute
error, meta-batch 8, β = 0.001 annealed, 3,000 iterations. The same code runs the sine-wave toy
(identity output, MSE) that checks the meta-learner.

Efficiency: all tasks of a meta-batch (and, at test time, all lines being adapted, each on its
own support set) are adapted at once as a batch of independent networks: the weights carry a
leading task dimension and the layers are batched matrix products, so the sum of the per-task
losses has the per-task gradients as its gradient. Support sets of different sizes are padded
and masked.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from engine.core.config import check_choice, check_range, json_ready

__all__ = [
    "ACTIVATIONS",
    "LOSSES",
    "MLP",
    "OUTPUTS",
    "Reptile",
    "ReptileConfig",
    "TaskBatch",
    "adapt",
    "batched_forward",
    "check_layer_sizes",
    "forward_each",
    "sine_tasks",
]


ACTIVATIONS: tuple[str, ...] = ("relu", "tanh")
"""Hidden activations of :class:`MLP`."""
OUTPUTS: tuple[str, ...] = ("sigmoid", "identity")
"""Output activations of :class:`MLP`."""
LOSSES: tuple[str, ...] = ("mae", "mse")
"""Inner-loop losses: mean absolute error (the paper's) or mean squared error."""


@dataclass(frozen=True)
class ReptileConfig:
    """Network and meta-training schedule (defaults: the SF2 paper's)."""

    layer_sizes: tuple[int, ...] = (20, 64, 32, 1)
    """Widths from input to output; the SF2 network is 20 genes → 64 → 32 → 1."""
    activation: str = "relu"
    """Hidden activation: ``"relu"`` or ``"tanh"``."""
    output: str = "sigmoid"
    """Output activation: ``"sigmoid"`` (SF2 in (0, 1)) or ``"identity"``."""
    loss: str = "mae"
    """Inner-loop loss: ``"mae"`` (mean absolute error, the paper's) or ``"mse"``."""
    inner_lr: float = 0.01
    """Inner-loop SGD step size α."""
    inner_steps: int = 10
    """Inner-loop SGD steps per task (also the adaptation steps at test time)."""
    meta_batch: int = 8
    """Tasks per meta-iteration."""
    meta_lr: float = 0.001
    """Outer step size β at the first iteration."""
    meta_lr_final: float = 0.0
    """Outer step size at the last iteration (linear annealing)."""
    n_iterations: int = 3000
    """Meta-iterations."""
    seed: int = 0
    """Seed of the initial weights and the task draws."""

    def __post_init__(self) -> None:
        check_layer_sizes("ReptileConfig.layer_sizes", self.layer_sizes)
        check_choice("ReptileConfig.activation", self.activation, ACTIVATIONS)
        check_choice("ReptileConfig.output", self.output, OUTPUTS)
        check_choice("ReptileConfig.loss", self.loss, LOSSES)
        check_range("ReptileConfig.inner_lr", self.inner_lr, 0.0)
        check_range("ReptileConfig.inner_steps", self.inner_steps, 0, integer=True)
        check_range("ReptileConfig.meta_batch", self.meta_batch, 1, integer=True)
        check_range("ReptileConfig.meta_lr", self.meta_lr, 0.0)
        check_range("ReptileConfig.meta_lr_final", self.meta_lr_final, 0.0)
        check_range("ReptileConfig.n_iterations", self.n_iterations, 1, integer=True)
        check_range("ReptileConfig.seed", self.seed, 0, integer=True)

    def to_dict(self) -> dict:
        """JSON-ready copy (tuples as lists)."""
        return json_ready(self)


def check_layer_sizes(name: str, layer_sizes: tuple[int, ...]) -> None:
    """Refuse network widths that do not go from an input width ≥ 1 through hidden widths ≥ 1
    to one output (ValueError naming ``name``, as :func:`engine.core.config.check_range`)."""
    if len(layer_sizes) < 2:
        raise ValueError(f"{name} = {layer_sizes!r}; accepted the input width, any hidden "
                         "widths, then 1")
    for i, width in enumerate(layer_sizes[:-1]):
        check_range(f"{name}[{i}]", width, 1, integer=True)
    check_choice(f"{name}[-1]", layer_sizes[-1], (1,))


class MLP(nn.Module):
    """Fully connected regression network; ``forward``: ``[n, in] → [n]``."""

    def __init__(self, layer_sizes: tuple[int, ...], activation: str = "relu",
                 output: str = "sigmoid") -> None:
        super().__init__()
        if len(layer_sizes) < 2 or layer_sizes[-1] != 1:
            raise ValueError(f"layer_sizes must go from the input width to 1, got {layer_sizes}")
        if activation not in ACTIVATIONS or output not in OUTPUTS:
            raise ValueError(f"unknown activation {activation!r} or output {output!r}")
        self.layer_sizes = tuple(layer_sizes)
        self.activation = activation
        self.output = output
        self.layers = nn.ModuleList(
            nn.Linear(a, b) for a, b in itertools.pairwise(layer_sizes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        params = [p.unsqueeze(0) for p in self.parameters()]
        return batched_forward(params, x.unsqueeze(0), self.activation, self.output)[0]

    def flat_params(self) -> list[torch.Tensor]:
        """Parameters in layer order: weight ``[out, in]``, bias ``[out]``, …"""
        return [p for p in self.parameters()]


def batched_forward(params: list[torch.Tensor], x: torch.Tensor, activation: str,
                    output: str) -> torch.Tensor:
    """T independent networks on T inputs: ``x [T, n, in]`` → ``[T, n]``.

    ``params`` alternate weight ``[T, out, in]`` and bias ``[T, out]`` per layer.
    """
    act = torch.relu if activation == "relu" else torch.tanh
    h = x
    n_layers = len(params) // 2
    for k in range(n_layers):
        w, b = params[2 * k], params[2 * k + 1]
        h = torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2))  # [T, n, out]
        if k < n_layers - 1:
            h = act(h)
    h = h.squeeze(-1)  # [T, n]
    return torch.sigmoid(h) if output == "sigmoid" else h


def forward_each(params: list[torch.Tensor], x: torch.Tensor, activation: str = "relu",
                 output: str = "sigmoid") -> np.ndarray:
    """Network t applied to its own input ``x[t]``: params ``[T, ...]``, x ``[T, in]`` → ``[T]``.

    How adapted networks score the line each was adapted for (no gradient). The defaults are
    the SF2 network's activations (:class:`ReptileConfig`).
    """
    with torch.no_grad():
        return batched_forward(params, x[:, None, :], activation, output)[:, 0].numpy()


def _task_loss(pred: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, loss: str) -> torch.Tensor:
    """Masked mean loss per task: ``[T, n]`` → ``[T]``."""
    err = (pred - y).abs() if loss == "mae" else (pred - y) ** 2
    return (err * mask).sum(1) / mask.sum(1).clamp_min(1.0)


def adapt(
    params: list[torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    mask: torch.Tensor | None,
    *,
    lr: float,
    steps: int,
    activation: str,
    output: str,
    loss: str,
) -> list[torch.Tensor]:
    """Inner loop: ``steps`` SGD steps of size ``lr`` per task, all tasks at once.

    Args:
        params: batched parameters (leading task dimension T, see :func:`batched_forward`),
            or unbatched ones (then broadcast to T copies).
        x: ``[T, k, in]`` support inputs; y: ``[T, k]`` targets; mask: ``[T, k]`` 1 for real
            support points, 0 for padding (None: all real). A task whose mask is all zero is
            left unchanged.

    Returns:
        Adapted parameters ``[T, ...]`` (detached).
    """
    n_tasks = x.shape[0]
    if params[0].dim() == 2:  # unbatched: a weight is [out, in]
        phi = [p.detach().expand(n_tasks, *p.shape).clone() for p in params]
    else:
        phi = [p.detach().clone() for p in params]
    if mask is None:
        mask = torch.ones_like(y)
    weight = mask / mask.sum(1, keepdim=True).clamp_min(1.0)  # [T, k]: masked mean per task
    with torch.no_grad():
        for _ in range(steps):
            grads = _gradients(phi, x, y, weight, activation, output, loss)
            phi = [p - lr * g for p, g in zip(phi, grads, strict=True)]
    return phi


def _gradients(params: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor,
               weight: torch.Tensor, activation: str, output: str,
               loss: str) -> list[torch.Tensor]:
    """Per-task gradients of the weighted task loss, by hand-written backpropagation.

    Equal to ``torch.autograd.grad(_task_loss(...).sum(), params)`` (checked in the unit tests)
    but several times faster for these tiny networks, where autograd's bookkeeping dominates.
    Subgradient 0 at |e| = 0 for the MAE and at z = 0 for ReLU, as autograd uses.
    """
    n_layers = len(params) // 2
    hs = [x]  # inputs of each layer
    zs = []
    h = x
    for k in range(n_layers):
        z = torch.baddbmm(params[2 * k + 1].unsqueeze(1), h, params[2 * k].transpose(1, 2))
        zs.append(z)
        if k < n_layers - 1:
            h = torch.relu(z) if activation == "relu" else torch.tanh(z)
            hs.append(h)
    out = zs[-1].squeeze(-1)  # [T, k]
    pred = torch.sigmoid(out) if output == "sigmoid" else out
    err = pred - y
    g = (torch.sign(err) if loss == "mae" else 2.0 * err) * weight  # dL/dpred, [T, k]
    if output == "sigmoid":
        g = g * pred * (1.0 - pred)
    g = g.unsqueeze(-1)  # dL/dz of the last layer, [T, k, 1]
    grads: list[torch.Tensor] = [torch.empty(0)] * len(params)
    for k in range(n_layers - 1, -1, -1):
        grads[2 * k] = torch.bmm(g.transpose(1, 2), hs[k])  # [T, out, in]
        grads[2 * k + 1] = g.sum(1)  # [T, out]
        if k > 0:
            g = torch.bmm(g, params[2 * k])  # dL/dh_{k}, [T, k, in]
            # ReLU': 1 where the pre-activation was positive; tanh' = 1 - tanh².
            g = g * (zs[k - 1] > 0) if activation == "relu" else g * (1.0 - hs[k] ** 2)
    return grads


@dataclass(frozen=True)
class TaskBatch:
    """A meta-batch of tasks, padded: ``x [T, k, in]``, ``y [T, k]``, ``mask [T, k]``."""

    x: torch.Tensor
    y: torch.Tensor
    mask: torch.Tensor


TaskSampler = Callable[[np.random.Generator, int], TaskBatch]
"""``sampler(rng, n_tasks)`` → a :class:`TaskBatch` of ``n_tasks`` tasks."""


class Reptile:
    """First-order REPTILE meta-learner (scikit-learn shape: ``fit`` returns self).

    Learned attributes: ``model_`` (the meta-learned initialisation, an :class:`MLP`) and
    ``history_`` (mean post-adaptation task loss per iteration, ``[n_iterations]``).
    """

    def __init__(self, config: ReptileConfig | None = None) -> None:
        self.config = config or ReptileConfig()

    def init_model(self) -> MLP:
        """A freshly initialised network (PyTorch's default init, seeded by ``config.seed``)."""
        c = self.config
        torch.manual_seed(c.seed)
        return MLP(c.layer_sizes, c.activation, c.output)

    def fit(self, sampler: TaskSampler, *, init: MLP | None = None,
            progress: Callable[[int, int], None] | None = None) -> Reptile:
        """Meta-train from ``init`` (default :meth:`init_model`) on tasks from ``sampler``."""
        c = self.config
        model = init if init is not None else self.init_model()
        rng = np.random.default_rng(c.seed)
        theta = [p.detach().clone() for p in model.parameters()]
        history = np.zeros(c.n_iterations)
        for it in range(c.n_iterations):
            batch = sampler(rng, c.meta_batch)
            phi = adapt(theta, batch.x, batch.y, batch.mask, lr=c.inner_lr,
                        steps=c.inner_steps, activation=c.activation, output=c.output,
                        loss=c.loss)
            frac = it / max(c.n_iterations - 1, 1)
            beta = (1.0 - frac) * c.meta_lr + frac * c.meta_lr_final
            with torch.no_grad():
                pred = batched_forward(phi, batch.x, c.activation, c.output)
                history[it] = float(_task_loss(pred, batch.y, batch.mask, c.loss).mean())
                theta = [t + beta * (p - t.unsqueeze(0)).mean(0) for t, p in
                         zip(theta, phi, strict=True)]
            if progress is not None and (it + 1) % 100 == 0:
                progress(it + 1, c.n_iterations)
        with torch.no_grad():
            for p, t in zip(model.parameters(), theta, strict=True):
                p.copy_(t)
        self.model_ = model
        self.history_ = history
        return self


# --- the sine-wave toy (paper Fig. 2; Nichol et al. Sec. 6) --------------------------------------


def sine_tasks(n_points: int = 10, amplitude: tuple[float, float] = (0.1, 5.0),
               x_range: tuple[float, float] = (-5.0, 5.0)) -> TaskSampler:
    """Sampler of sine tasks y = A sin(x + φ), A ∈ ``amplitude``, φ ∈ [0, π], x uniform."""

    def sample(rng: np.random.Generator, n_tasks: int) -> TaskBatch:
        a = rng.uniform(*amplitude, size=(n_tasks, 1))
        phase = rng.uniform(0.0, math.pi, size=(n_tasks, 1))
        x = rng.uniform(*x_range, size=(n_tasks, n_points))
        y = a * np.sin(x + phase)
        return TaskBatch(torch.tensor(x[..., None], dtype=torch.float32),
                         torch.tensor(y, dtype=torch.float32),
                         torch.ones(n_tasks, n_points))

    return sample
