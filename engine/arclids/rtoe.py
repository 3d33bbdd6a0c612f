"""RT outcome estimators (RTOE): GLoGD-GNN, Single-GNN and a logistic baseline.

Every case is a small graph over the protocol's 13 features (:mod:`engine.arclids.graphs`); the
networks (:mod:`engine.arclids.nets`) map it to the probability of one outcome (local control or
toxicity) at a candidate adaptive dose per fraction. Three architectures (ARCliDS S2, S4;
DESIGN.md §3):

- ``"glogd"`` — GLoGD-GNN. Two graph networks read the mid-treatment graph (the dose is not an
  input) and give μ ∈ (0, 1) and T ∈ (T_MIN, T_MAX); the probability at adaptive dose d is the
  generalised logistic p = 1 / (1 + exp(−(ĝ(d) − μ)/T)) of the normalised adapted gEUD ĝ of the
  outcome's structure (:func:`engine.core.radiobiology.logistic_outcome`, sign as in DESIGN.md §3).
  Since ĝ rises strictly with d and μ, T do not depend on d, p is non-decreasing in dose by
  construction. The μ- and T-networks are trained alternately, as in the paper.
- ``"single"`` — Single-GNN. One graph network whose outcome-structure gEUD node carries the
  adapted gEUD at the candidate dose; it maps the graph straight to a probability, which is free
  to be non-monotone in dose (the contrast the paper shows).
- ``"logistic"`` — L2-regularised logistic regression on the same node values as the
  Single-GNN; a baseline without a graph.

Estimators follow the scikit-learn shape: ``__init__`` stores the protocol, outcome and config,
``fit`` returns self, learned state ends in ``_``. Trained artifacts are ``state_dict`` tensors
(with the config as JSON metadata, kept by the caller), never pickled objects.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from scipy.optimize import minimize
from scipy.special import expit
from torch import nn

from engine.arclids.architectures import ARCH_KEYS
from engine.arclids.evaluation import auroc, log_loss
from engine.arclids.geud import adapted_geud_norm, received_geud_norm
from engine.arclids.graphs import FeatureEncoder, feature_graph
from engine.arclids.nets import GraphNet, LogisticNet
from engine.core.config import DictConfig, check_bool, check_choice, check_range
from engine.core.protocols import Protocol, Structure
from engine.core.radiobiology import logistic_outcome

__all__ = [
    "T_MAX",
    "T_MIN",
    "OutcomeEstimator",
    "RTOEConfig",
    "oversample_indices",
    "t_from_logit",
]

T_MIN = 0.01
"""Smallest GLoGD width T (ĝ units): keeps the logistic from becoming a step."""
T_MAX = 1.0
"""Largest GLoGD width T (ĝ units): the whole normalisation range."""

_PREDICT_CHUNK = 8192
"""Graphs per forward pass at inference (bounds memory for P × D Single-GNN inputs)."""


@dataclass(frozen=True)
class RTOEConfig(DictConfig):
    """Hyperparameters of one outcome estimator (ARCliDS S2 grid-searches lr, hidden, epochs)."""

    arch: str
    """Architecture: ``"single"`` (Single-GNN), ``"glogd"`` (GLoGD-GNN) or ``"logistic"``."""
    hidden: int = 64
    """Width H of the node embeddings, graph convolutions and head."""
    n_layers: int = 2
    """Number of graph-convolution layers (DenseGCNConv + ReLU)."""
    lr: float = 1e-3
    """Adam learning rate of the Single-GNN and of the GLoGD μ-network."""
    lr_t: float | None = None
    """Adam learning rate of the GLoGD T-network; None uses ``lr``."""
    epochs: int = 200
    """Passes over the training data (GLoGD: one μ pass and one T pass each). 0 leaves the
    networks at their seeded initialisation. Ignored by ``"logistic"`` (fitted to convergence)."""
    batch_size: int = 32
    """Cases per gradient step."""
    weight_decay: float = 1e-4
    """Adam L2 weight decay of the networks."""
    l2: float = 1.0
    """Logistic baseline: strength λ of the penalty (λ/2)‖β‖² added to the summed (weighted)
    log-loss; the intercept is not penalised (scikit-learn's C = 1/λ)."""
    oversample: bool = True
    """Randomly oversample the minority class of the training data to balance it (as the paper);
    the logistic baseline uses balanced class weights instead."""
    seed: int = 0
    """Seed of the weight initialisation (``torch.manual_seed``), oversampling and shuffling."""

    def __post_init__(self) -> None:
        check_choice("RTOEConfig.arch", self.arch, ARCH_KEYS)
        for name in ("hidden", "n_layers", "batch_size"):
            check_range(f"RTOEConfig.{name}", getattr(self, name), 1, integer=True)
        check_range("RTOEConfig.lr", self.lr, 0.0, lo_open=True)
        if self.lr_t is not None:
            check_range("RTOEConfig.lr_t", self.lr_t, 0.0, lo_open=True)
        check_range("RTOEConfig.epochs", self.epochs, 0, integer=True)
        check_range("RTOEConfig.weight_decay", self.weight_decay, 0.0)
        check_range("RTOEConfig.l2", self.l2, 0.0)
        check_bool("RTOEConfig.oversample", self.oversample)
        check_range("RTOEConfig.seed", self.seed, 0, integer=True)

    @property
    def t_lr(self) -> float:
        """Learning rate of the T-network (``lr_t``, or ``lr`` when None)."""
        return self.lr if self.lr_t is None else self.lr_t


def oversample_indices(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Row indices with the minority class randomly oversampled to the majority's count.

    Every original row appears at least once; minority rows are drawn with replacement to fill
    the gap. With a single class present, returns ``arange(len(y))``. Order is not shuffled.
    """
    y = np.asarray(y).astype(int)
    index = np.arange(len(y))
    counts = np.bincount(y, minlength=2)
    if counts.min() == 0 or counts[0] == counts[1]:
        return index
    minority = int(np.argmin(counts))
    extra = rng.choice(index[y == minority], size=int(counts.max() - counts.min()), replace=True)
    return np.concatenate([index, extra])


def _adam(net: nn.Module, lr: float, weight_decay: float) -> torch.optim.Adam:
    # The fused CPU kernel is several times faster than the per-parameter loop for these
    # small networks and gives the same update.
    return torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay, fused=True)


T_INIT = 0.15
"""Initial GLoGD width T in normalised-gEUD units (≈ the published dose–response widths)."""


def t_from_logit(logit: torch.Tensor) -> torch.Tensor:
    return T_MIN + (T_MAX - T_MIN) * torch.sigmoid(logit)


class OutcomeEstimator:
    """Probability of one outcome as a function of the case and the adaptive dose per fraction.

    Args:
        protocol: the treatment protocol (features, graph, fractions, normalisation ranges).
        outcome: ``protocol.target.outcome`` (TCP) or ``protocol.oar.outcome`` (NTCP).
        config: hyperparameters, including the architecture.

    Learned attributes (after :meth:`fit` or :meth:`from_state_dict`): ``encoder_``
    (:class:`~engine.arclids.graphs.FeatureEncoder`), ``net_`` (single, logistic) or ``mu_net_`` and
    ``t_net_`` (glogd), ``history_`` ({epoch: eval AUROC}), ``eval_log_loss_`` ({epoch: eval
    mean log-loss}) and ``loss_`` (mean training loss per
    epoch; GLoGD: of the T pass, which sees the updated μ).
    """

    def __init__(self, protocol: Protocol, outcome: str, config: RTOEConfig) -> None:
        self.protocol = protocol
        self.outcome = outcome
        self.config = config

    # ----------------------------------------------------------------- helpers

    @property
    def structure(self) -> Structure:
        """The structure whose gEUD drives :attr:`outcome`."""
        for s in (self.protocol.target, self.protocol.oar):
            if s.outcome == self.outcome:
                return s
        raise ValueError(
            f"protocol {self.protocol.name} has no outcome {self.outcome!r}; "
            f"choose one of {', '.join(self.protocol.outcome_names)}"
        )

    @property
    def _dose_node(self) -> int:
        return self.protocol.feature_names.index(self.structure.geud_feature)

    @property
    def _dose_as_node(self) -> bool:
        """True when the adapted gEUD at the dose is a node value (single, logistic)."""
        return self.config.arch != "glogd"

    def _new_encoder(self) -> FeatureEncoder:
        linear = (self.structure.geud_feature,) if self._dose_as_node else ()
        return FeatureEncoder(self.protocol, linear_features=linear)

    def _build_nets(self) -> None:
        graph = feature_graph(self.protocol)
        cfg = self.config
        if cfg.arch == "logistic":
            self.net_ = LogisticNet(graph.n_nodes)
            self.net_.reset_parameters()
        elif cfg.arch == "single":
            self.net_ = GraphNet(graph.adjacency, cfg.hidden, cfg.n_layers)
        else:
            self.mu_net_ = GraphNet(graph.adjacency, cfg.hidden, cfg.n_layers)
            self.t_net_ = GraphNet(graph.adjacency, cfg.hidden, cfg.n_layers)

    def _nets(self) -> dict[str, nn.Module]:
        if self.config.arch == "glogd":
            return {"mu_net": self.mu_net_, "t_net": self.t_net_}
        return {"net": self.net_}

    def _encode(self, cases: pd.DataFrame) -> torch.Tensor:
        """Node values [P, N] float32; for single/logistic the dose node is still to be set."""
        if self._dose_as_node:
            # The dose node's column is overwritten per dose later; feed a finite placeholder.
            cases = cases.assign(**{self.structure.geud_feature: 0.0})
        return torch.from_numpy(self.encoder_.transform(cases))

    def _dose_node_values(self, g_norm: torch.Tensor) -> torch.Tensor:
        """Standardise ĝ (float64, any shape) with the dose node's fitted statistics, float32."""
        j = self._dose_node
        return ((g_norm - float(self.encoder_.mean_[j])) / float(self.encoder_.sd_[j])).float()

    def _graph_inputs(self, x: torch.Tensor, g_norm: torch.Tensor) -> torch.Tensor:
        """Node values [P, D, N] with the dose node set to the standardised ĝ [P, D]."""
        p, d = g_norm.shape
        inputs = x.unsqueeze(1).expand(p, d, x.shape[1]).clone()  # [P, D, N]
        inputs[..., self._dose_node] = self._dose_node_values(g_norm)
        return inputs

    def _mu_t_tensor(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """GLoGD (μ, T), each [P], for node values [P, N]."""
        return torch.sigmoid(self.mu_net_(x)), t_from_logit(self.t_net_(x))

    @contextmanager
    def _inference(self) -> Iterator[None]:
        """No gradients and every network in eval mode; previous modes restored afterwards."""
        # Served networks are already in eval mode; toggling modes walks every submodule and
        # cost about a fifth of a one-case prediction, so only networks in training mode switch.
        training = [net for net in self._nets().values() if net.training]
        try:
            with torch.no_grad():
                for net in training:
                    net.eval()
                yield
        finally:
            for net in training:
                net.train()

    def _mu_t_all(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """GLoGD (μ, T), each float64 [P], for node values [P, N], in inference mode."""
        with self._inference():
            parts = [self._mu_t_tensor(chunk) for chunk in x.split(_PREDICT_CHUNK)]
        mu = torch.cat([m for m, _ in parts]).double()  # [P]
        t = torch.cat([t for _, t in parts]).double()  # [P]
        return mu, t

    def _proba_tensor(self, x: torch.Tensor, g_norm: torch.Tensor) -> torch.Tensor:
        """Probabilities [P, D] (float64) for node values [P, N] and ĝ [P, D] (float64)."""
        if self.config.arch == "glogd":
            mu, t = self._mu_t_all(x)  # [P], [P]
            return logistic_outcome(g_norm, mu[:, None], t[:, None])  # [P, D]
        flat = self._graph_inputs(x, g_norm).reshape(-1, x.shape[1])  # [P·D, N]
        with self._inference():
            logits = torch.cat([self.net_(chunk) for chunk in flat.split(_PREDICT_CHUNK)])
        return torch.sigmoid(logits.double()).reshape(g_norm.shape)  # [P, D]

    def _check_fitted(self) -> None:
        if not hasattr(self, "encoder_"):
            raise RuntimeError("this OutcomeEstimator is not fitted; call fit() first")

    # ----------------------------------------------------------------- public API

    def fit(
        self,
        cases: pd.DataFrame,
        y: np.ndarray,
        *,
        eval_set: tuple[pd.DataFrame, np.ndarray] | None = None,
        eval_epochs: Sequence[int] = (),
    ) -> OutcomeEstimator:
        """Train on ``cases`` (features, ``dose_eval_gy``, ``dose_adapt_gy``) with labels ``y``.

        Each label (0/1) was observed at the case's received ``dose_adapt_gy``. Deterministic:
        seeds ``torch.manual_seed(config.seed)`` and a numpy Generator for oversampling and
        shuffling.

        Args:
            cases: training cases, P rows, complete features.
            y: outcomes, shape [P], values 0/1.
            eval_set: optional (cases, labels) scored during training.
            eval_epochs: epoch counts (0 … ``config.epochs``) after which to record
                ``history_[epoch]`` = AUROC of the predictions at the eval cases' received doses
                (NaN when the eval labels hold one class) and ``eval_log_loss_[epoch]`` = their
                mean log-loss (defined for one class too). The logistic baseline does not train
                by epochs; it records its single fit's scores under every requested epoch.
        """
        cfg = self.config
        _ = self.structure  # validates the outcome name
        y = _labels(y, len(cases), "y")
        eval_epochs = sorted({int(e) for e in eval_epochs})
        if eval_epochs and eval_set is None:
            raise ValueError("eval_epochs needs an eval_set")
        if eval_epochs and not 0 <= eval_epochs[0] <= eval_epochs[-1] <= cfg.epochs:
            raise ValueError(f"eval_epochs must lie in 0…{cfg.epochs}, got {eval_epochs}")

        torch.manual_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        g_train = received_geud_norm(cases, self.protocol, self.structure)  # [P]
        encoder_cases = cases
        if self._dose_as_node:
            encoder_cases = cases.assign(**{self.structure.geud_feature: g_train})
        self.encoder_ = self._new_encoder().fit(encoder_cases)
        self._build_nets()
        if cfg.arch == "glogd":
            self._init_glogd_heads(g_train)
        self.history_: dict[int, float] = {}
        self.eval_log_loss_: dict[int, float] = {}
        self.loss_: list[float] = []

        x = self._encode(cases)  # [P, N]
        g = torch.from_numpy(g_train)  # [P] float64
        if self._dose_as_node:
            x[:, self._dose_node] = self._dose_node_values(g)
        target = torch.from_numpy(y.astype(np.float32))  # [P]

        scorer = self._eval_scorer(eval_set) if eval_set is not None else None
        if cfg.arch == "logistic":
            self._fit_logistic(x, y)
            if scorer is not None:
                for epoch in eval_epochs:
                    self._record(epoch, scorer)
        else:
            order = oversample_indices(y, rng) if cfg.oversample else np.arange(len(y))
            self._train_network(x, g.float(), target, order, rng, scorer, eval_epochs)
        for net in self._nets().values():
            net.eval()
        return self

    def _init_glogd_heads(self, g_train: np.ndarray) -> None:
        """Start the logistic where the data are: μ at the median received ĝ, T = T_INIT.

        With the heads' default biases μ ≈ 0.5 and T ≈ 0.5 of the normalised range, the logistic
        is nearly flat over the received doses and the gradients reaching μ are tiny, so
        training stalls for many epochs (measured: AUROC stuck at the dose-only value).
        """
        mu0 = float(np.clip(np.median(g_train), 0.05, 0.95))
        t_share = (T_INIT - T_MIN) / (T_MAX - T_MIN)
        with torch.no_grad():
            self.mu_net_.head[-1].bias.fill_(math.log(mu0 / (1.0 - mu0)))
            self.t_net_.head[-1].bias.fill_(math.log(t_share / (1.0 - t_share)))

    def _train_network(
        self,
        x: torch.Tensor,
        g: torch.Tensor,
        target: torch.Tensor,
        order: np.ndarray,
        rng: np.random.Generator,
        scorer: Callable[[], tuple[float, float]] | None,
        eval_epochs: list[int],
    ) -> None:
        """Adam epochs over the rows ``order`` (Single-GNN, or GLoGD's alternating passes).

        Args:
            x: node values [P, N] (Single-GNN: dose node at the received ĝ).
            g: received ĝ [P] (float32).
            target: labels [P] (float32).
            order: training row indices, oversampled when configured.
            rng: the fit's Generator (shuffling).
            scorer: eval-set (AUROC, log-loss), recorded at ``eval_epochs``.
            eval_epochs: sorted epoch counts to score.
        """
        cfg = self.config
        if scorer is not None and 0 in eval_epochs:
            self._record(0, scorer)
        for net in self._nets().values():
            net.train()
        if cfg.arch == "single":
            opt = _adam(self.net_, cfg.lr, cfg.weight_decay)
        else:
            opt_mu = _adam(self.mu_net_, cfg.lr, cfg.weight_decay)
            opt_t = _adam(self.t_net_, cfg.t_lr, cfg.weight_decay)
        for epoch in range(1, cfg.epochs + 1):
            if cfg.arch == "single":
                loss = self._single_pass(x, target, order, rng, opt)
            else:
                self._glogd_pass(x, g, target, order, rng, opt_mu, train_mu=True)
                loss = self._glogd_pass(x, g, target, order, rng, opt_t, train_mu=False)
            self.loss_.append(loss)
            if scorer is not None and epoch in eval_epochs:
                self._record(epoch, scorer)

    def _batches(self, order: np.ndarray, rng: np.random.Generator, *tensors: torch.Tensor) -> zip:
        """Shuffle ``order`` (row indices), gather ``tensors`` once, yield per-batch views.

        Gathering once per pass and slicing views is cheaper than indexing every batch.
        """
        perm = torch.from_numpy(rng.permutation(order))
        return zip(*(t[perm].split(self.config.batch_size) for t in tensors), strict=True)

    def _single_pass(
        self,
        x: torch.Tensor,
        target: torch.Tensor,
        order: np.ndarray,
        rng: np.random.Generator,
        opt: torch.optim.Optimizer,
    ) -> float:
        """One pass over the (oversampled) training rows; returns the mean loss."""
        total = torch.zeros(())
        for xb, yb in self._batches(order, rng, x, target):  # [B, N], [B]
            loss = F.binary_cross_entropy_with_logits(self.net_(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach() * len(yb)
        return float(total) / len(order)

    def _glogd_pass(
        self,
        x: torch.Tensor,
        g: torch.Tensor,
        target: torch.Tensor,
        order: np.ndarray,
        rng: np.random.Generator,
        opt: torch.optim.Optimizer,
        *,
        train_mu: bool,
    ) -> float:
        """One pass updating the μ-network (T frozen) or the T-network (μ frozen).

        The frozen network does not change during the pass, so its outputs for every training
        case are computed once up front ([P]) and sliced per batch. Returns the mean loss.
        """
        with torch.no_grad():
            frozen = (
                t_from_logit(self.t_net_(x)) if train_mu else torch.sigmoid(self.mu_net_(x))
            )  # [P]: T when training μ, μ when training T
        total = torch.zeros(())
        for xb, gb, yb, fb in self._batches(order, rng, x, g, target, frozen):
            if train_mu:
                mu, t = torch.sigmoid(self.mu_net_(xb)), fb  # [B], [B]
            else:
                mu, t = fb, t_from_logit(self.t_net_(xb))  # [B], [B]
            logit = (gb - mu) / t  # [B]; p = logistic_outcome(ĝ, μ, T) = sigmoid(logit)
            loss = F.binary_cross_entropy_with_logits(logit, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach() * len(yb)
        return float(total) / len(order)

    def _fit_logistic(self, x: torch.Tensor, y: np.ndarray) -> None:
        """L-BFGS on Σ w_i log-loss_i + (λ/2)‖β‖² (float64, zero start: deterministic)."""
        design = np.hstack([x.double().numpy(), np.ones((len(y), 1))])  # [P, N + 1]
        counts = np.bincount(y, minlength=2)
        weights = np.ones(len(y))
        if self.config.oversample and counts.min() > 0:
            weights = (len(y) / (2.0 * counts))[y]  # balanced class weights
        penalty = np.ones(design.shape[1])
        penalty[-1] = 0.0  # intercept not penalised
        lam = self.config.l2

        def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
            z = design @ theta
            loss = np.sum(weights * (np.logaddexp(0.0, z) - y * z))
            loss += 0.5 * lam * np.sum(penalty * theta**2)
            grad = design.T @ (weights * (expit(z) - y)) + lam * penalty * theta
            return float(loss), grad

        result = minimize(
            objective,
            np.zeros(design.shape[1]),
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": 2000, "gtol": 1e-9},
        )
        theta = torch.from_numpy(result.x).float()
        with torch.no_grad():
            self.net_.linear.weight.copy_(theta[:-1].unsqueeze(0))
            self.net_.linear.bias.copy_(theta[-1:])

    def _record(self, epoch: int, scorer: Callable[[], tuple[float, float]]) -> None:
        self.history_[epoch], self.eval_log_loss_[epoch] = scorer()

    def _eval_scorer(
        self, eval_set: tuple[pd.DataFrame, np.ndarray]
    ) -> Callable[[], tuple[float, float]]:
        """A closure scoring (AUROC, mean log-loss) on the eval set (inputs encoded once)."""
        eval_cases, eval_y = eval_set
        eval_y = _labels(eval_y, len(eval_cases), "eval_set labels")
        x = self._encode(eval_cases)  # [Pe, N]
        g = torch.from_numpy(received_geud_norm(eval_cases, self.protocol, self.structure))
        g = g.unsqueeze(1)  # [Pe, 1]
        one_class = eval_y.min() == eval_y.max()

        def score() -> tuple[float, float]:
            p = self._proba_tensor(x, g)[:, 0].numpy()
            return (math.nan if one_class else auroc(p, eval_y)), log_loss(p, eval_y)

        return score

    def predict_proba(self, cases: pd.DataFrame, doses_gy: np.ndarray | None = None) -> np.ndarray:
        """Outcome probability per case and adaptive dose per fraction.

        Args:
            cases: P cases with the features and ``dose_eval_gy`` (and ``dose_adapt_gy`` when
                ``doses_gy`` is None).
            doses_gy: candidate adaptive doses per fraction, Gy, shape [D]; None → each case's
                received ``dose_adapt_gy``.

        Returns:
            float64 probabilities, shape [P] (``doses_gy`` None) or [P, D].
        """
        self._check_fitted()
        x = self._encode(cases)  # [P, N]
        if doses_gy is None:
            g = received_geud_norm(cases, self.protocol, self.structure)[:, None]  # [P, 1]
            return self._proba_tensor(x, torch.from_numpy(g))[:, 0].numpy()
        doses = np.asarray(doses_gy, dtype=np.float64).reshape(-1)
        g = adapted_geud_norm(cases, self.protocol, self.structure, doses)  # [P, D]
        return self._proba_tensor(x, torch.from_numpy(g)).numpy()

    def predict_mu_t(self, cases: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """GLoGD only: the per-case logistic midpoint μ and width T (ĝ units), each [P]."""
        if self.config.arch != "glogd":
            raise ValueError(f"predict_mu_t needs arch 'glogd', not {self.config.arch!r}")
        self._check_fitted()
        mu, t = self._mu_t_all(self._encode(cases))
        return mu.numpy(), t.numpy()

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Learned weights, encoder statistics and the graph adjacency, as plain tensors.

        Keys: ``encoder.mean``, ``encoder.sd``, ``graph.adjacency`` and ``net.*`` (single,
        logistic) or ``mu_net.*`` and ``t_net.*`` (glogd). Loadable with
        ``torch.load(..., weights_only=True)``; the config travels separately as JSON.
        """
        self._check_fitted()
        state = {f"encoder.{k}": v for k, v in self.encoder_.state().items()}
        state["graph.adjacency"] = feature_graph(self.protocol).adjacency.clone()
        for prefix, net in self._nets().items():
            for key, value in net.state_dict().items():
                state[f"{prefix}.{key}"] = value.detach().clone()
        return state

    @classmethod
    def from_state_dict(
        cls,
        protocol: Protocol,
        outcome: str,
        config: RTOEConfig,
        state: Mapping[str, torch.Tensor],
    ) -> OutcomeEstimator:
        """Rebuild a fitted estimator from :meth:`state_dict` (identical predictions)."""
        est = cls(protocol, outcome, config)
        adjacency = state.get("graph.adjacency")
        if adjacency is None or not torch.equal(adjacency, feature_graph(protocol).adjacency):
            raise ValueError(
                f"the saved weights were trained on another feature graph than protocol "
                f"{protocol.name}'s current one"
            )
        linear = (est.structure.geud_feature,) if est._dose_as_node else ()
        est.encoder_ = FeatureEncoder.from_state(
            protocol, {k: state[f"encoder.{k}"] for k in ("mean", "sd")}, linear
        )
        est._build_nets()
        for prefix, net in est._nets().items():
            sub = {k[len(prefix) + 1 :]: v for k, v in state.items() if k.startswith(prefix + ".")}
            net.load_state_dict(sub, strict=True)
            net.eval()
        est.history_, est.eval_log_loss_, est.loss_ = {}, {}, []
        return est


def _labels(y: np.ndarray, n: int, what: str) -> np.ndarray:
    y = np.asarray(y)
    if y.shape != (n,):
        raise ValueError(f"{what} has shape {y.shape}; expected ({n},), one label per case")
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"{what} must be 0/1 outcomes")
    return y.astype(np.int64)
