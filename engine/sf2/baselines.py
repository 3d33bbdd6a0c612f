"""Baselines for SF2 from gene expression: training mean, subgroup mean, OLS, a plain MLP.

* :class:`MeanBaseline` — predicts the mean SF2 of the training lines (the trivial baseline any
  model has to beat).
* Subgroup mean — the mean SF2 of the few labelled lines of a line's own subgroup, i.e. exactly
  the labels the honest REPTILE protocol adapts on (computed in :mod:`engine.sf2.evaluate`).
* :class:`OLSBaseline` — ordinary least squares on the top-20 genes (the paper's Fig. 4). The
  paper reports its *in-sample* MAE (fitted and scored on the same 73 lines); the evaluation
  reports that and the cross-validated MAE.
* :class:`MLPBaseline` — the paper's network (20 → 64 → 32 → 1, sigmoid) trained by plain
  gradient descent on the training lines, no meta-learning. :meth:`MLPBaseline.finetune`
  continues training on other labelled lines (the paper's Fig. 3 fine-tunes on the *test*
  split, i.e. on the very labels it then scores).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch

from engine.core.config import check_choice, check_range, json_ready
from engine.sf2.reptile import LOSSES, MLP, adapt, check_layer_sizes

__all__ = ["MLPBaseline", "MLPConfig", "MeanBaseline", "OLSBaseline"]


class MeanBaseline:
    """Predicts the training mean; ``fit`` sets ``mean_``."""

    def fit(self, x: np.ndarray, y: np.ndarray) -> MeanBaseline:
        self.mean_ = float(np.mean(y))
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.full(len(x), self.mean_)


class OLSBaseline:
    """Least squares with intercept on the given features; ``fit`` sets ``coef_``, ``intercept_``.

    With more features than lines the minimum-norm solution (``numpy.linalg.lstsq``) is used.
    """

    def fit(self, x: np.ndarray, y: np.ndarray) -> OLSBaseline:
        x = np.asarray(x, dtype=float)
        design = np.column_stack([np.ones(len(x)), x])
        beta, *_ = np.linalg.lstsq(design, np.asarray(y, dtype=float), rcond=None)
        self.intercept_ = float(beta[0])
        self.coef_ = beta[1:]
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.intercept_ + np.asarray(x, dtype=float) @ self.coef_


@dataclass(frozen=True)
class MLPConfig:
    """Plain MLP training (full batch)."""

    layer_sizes: tuple[int, ...] = (20, 64, 32, 1)
    """Network widths (the paper's)."""
    lr: float = 1e-3
    """Adam learning rate."""
    epochs: int = 500
    """Full-batch epochs on the training lines."""
    loss: str = "mae"
    """``"mae"`` (the paper's loss) or ``"mse"``."""
    finetune_lr: float = 0.01
    """SGD step of :meth:`MLPBaseline.finetune` (same as REPTILE's inner loop)."""
    finetune_steps: int = 10
    """Steps of :meth:`MLPBaseline.finetune`."""
    seed: int = 0
    """Seed of the initial weights."""

    def __post_init__(self) -> None:
        check_layer_sizes("MLPConfig.layer_sizes", self.layer_sizes)
        check_range("MLPConfig.lr", self.lr, 0.0, lo_open=True)
        check_range("MLPConfig.epochs", self.epochs, 0, integer=True)
        check_choice("MLPConfig.loss", self.loss, LOSSES)
        check_range("MLPConfig.finetune_lr", self.finetune_lr, 0.0)
        check_range("MLPConfig.finetune_steps", self.finetune_steps, 0, integer=True)
        check_range("MLPConfig.seed", self.seed, 0, integer=True)

    def to_dict(self) -> dict:
        """JSON-ready copy (tuples as lists)."""
        return json_ready(self)


class MLPBaseline:
    """The paper's network trained without meta-learning; ``fit`` sets ``model_``, ``history_``."""

    def __init__(self, config: MLPConfig | None = None) -> None:
        self.config = config or MLPConfig()

    def fit(self, x: np.ndarray, y: np.ndarray) -> MLPBaseline:
        c = self.config
        torch.manual_seed(c.seed)
        model = MLP(c.layer_sizes, "relu", "sigmoid")
        xt = torch.as_tensor(np.asarray(x), dtype=torch.float32)
        yt = torch.as_tensor(np.asarray(y), dtype=torch.float32)
        opt = torch.optim.Adam(model.parameters(), lr=c.lr)
        history = np.zeros(c.epochs)
        for epoch in range(c.epochs):
            opt.zero_grad()
            err = model(xt) - yt
            loss = err.abs().mean() if c.loss == "mae" else (err ** 2).mean()
            loss.backward()
            opt.step()
            history[epoch] = loss.item()
        self.model_ = model.eval()
        self.history_ = history
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self.model_(torch.as_tensor(np.asarray(x), dtype=torch.float32)).numpy()

    def finetune(self, x: np.ndarray, y: np.ndarray) -> MLPBaseline:
        """A copy trained ``finetune_steps`` more SGD steps (MAE) on all of ``x``, ``y`` jointly."""
        c = self.config
        params = adapt(self.model_.flat_params(),
                       torch.as_tensor(np.asarray(x), dtype=torch.float32)[None],
                       torch.as_tensor(np.asarray(y), dtype=torch.float32)[None], None,
                       lr=c.finetune_lr, steps=c.finetune_steps, activation="relu",
                       output="sigmoid", loss="mae")
        other = copy.copy(self)
        other.model_ = copy.deepcopy(self.model_)
        with torch.no_grad():
            for p, q in zip(other.model_.parameters(), params, strict=True):
                p.copy_(q[0])
        return other
