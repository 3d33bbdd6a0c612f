"""Synthetic patients: a WGAN-GP over a protocol's features, and per-feature distribution checks.

ARCliDS S5 trains a Wasserstein GAN with gradient penalty (Gulrajani et al. 2017) on the
complete cases and draws 10,000 synthetic patients for the decision maker to plan on. The paper
says a uniform distribution over the feature space would serve the ODM too, only at a higher cost;
the GAN concentrates the planning memory where patients are.

Architecture and training as printed (DESIGN.md §3): generator and critic 4 hidden layers × 256
(LeakyReLU 0.2; no normalisation in the critic, as the gradient penalty requires), latent 64
(standard normal), Adam 1e-4 with β = (0.5, 0.9), 5 critic steps per generator step, penalty
weight 10, 500 epochs. An epoch is ⌈N / batch⌉ generator steps, each after 5 critic steps on
fresh real minibatches (the usual WGAN-GP loop on a small table; with the 67-case NSCLC trial and
batch 32 that is 1,500 generator and 7,500 critic steps).

Feature types are respected by a fixed, invertible :class:`TabularTransform`: right-skewed
measurements (``scale = "log"``) are modelled as log(1 + x), every column is standardised, and
generated values are mapped back, clipped to the protocol's accepted range and rounded where only
whole numbers are valid (SNP genotypes 0/1/2, Child–Pugh points, number of sites). The
evaluation-phase dose per fraction is generated with the features (the transition needs it),
clipped to the protocol's accepted evaluation doses.

:func:`jensen_shannon` (base 2, so 0 = identical, 1 = disjoint) compares one feature's real and
synthetic histograms; :func:`feature_divergences` does it for every column with shared bins
(one bin per integer value for integer features, 20 equal bins on the modelling scale otherwise).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from engine.core.config import DictConfig, check_range
from engine.core.protocols import Protocol

__all__ = [
    "DOSE_EVAL_COLUMN",
    "WGANGP",
    "GANConfig",
    "TabularTransform",
    "feature_divergences",
    "feature_histograms",
    "gan_columns",
    "jensen_shannon",
]

DOSE_EVAL_COLUMN = "dose_eval_gy"
"""Evaluation-phase dose per fraction, generated with the features (the transition needs it)."""
DOSE_STEPS_GY: tuple[float, ...] = (1.0, 0.5, 0.25, 0.1, 0.05)
"""Prescription steps a training table's evaluation doses are checked against, largest first."""
N_BINS = 20
"""Histogram bins of a continuous feature for the divergence and the overlay plots."""


@dataclass(frozen=True)
class GANConfig(DictConfig):
    """Hyperparameters of the WGAN-GP (ARCliDS S5)."""

    hidden: int = 256
    """Width of every hidden layer of the generator and the critic."""
    n_layers: int = 4
    """Hidden layers of the generator and of the critic."""
    latent_dim: int = 64
    """Dimension of the generator's standard-normal input."""
    lr: float = 1e-4
    """Adam learning rate of both networks."""
    beta1: float = 0.5
    """Adam β1."""
    beta2: float = 0.9
    """Adam β2."""
    n_critic: int = 5
    """Critic steps per generator step (keeps the critic ahead)."""
    gp_weight: float = 10.0
    """Weight λ of the gradient penalty λ (‖∇D(x̂)‖ − 1)²."""
    epochs: int = 500
    """Epochs; each is ⌈N / batch_size⌉ generator steps."""
    batch_size: int = 32
    """Real and generated rows per critic step."""
    seed: int = 0
    """Seed of the initialisation, minibatches and latent draws (``torch.manual_seed``)."""

    def __post_init__(self) -> None:
        for name in ("hidden", "n_layers", "latent_dim", "n_critic"):
            check_range(f"GANConfig.{name}", getattr(self, name), 1, integer=True)
        check_range("GANConfig.lr", self.lr, 0.0, lo_open=True)
        check_range("GANConfig.beta1", self.beta1, 0.0, 1.0, hi_open=True)
        check_range("GANConfig.beta2", self.beta2, 0.0, 1.0, hi_open=True)
        check_range("GANConfig.gp_weight", self.gp_weight, 0.0)
        check_range("GANConfig.epochs", self.epochs, 0, integer=True)
        check_range("GANConfig.batch_size", self.batch_size, 2, integer=True)
        check_range("GANConfig.seed", self.seed, 0, integer=True)


def gan_columns(protocol: Protocol) -> tuple[str, ...]:
    """Generated columns: the protocol features in order, then ``dose_eval_gy``."""
    return (*protocol.feature_names, DOSE_EVAL_COLUMN)


@dataclass(frozen=True)
class _ColumnKind:
    name: str
    log: bool
    integer: bool
    lo: float
    hi: float


def _column_kinds(protocol: Protocol) -> list[_ColumnKind]:
    kinds = [
        _ColumnKind(f.name, f.scale == "log", f.integer, f.min, f.max) for f in protocol.features
    ]
    kinds.append(
        _ColumnKind(
            DOSE_EVAL_COLUMN, False, False, protocol.dose_eval_min_gy, protocol.dose_eval_max_gy
        )
    )
    return kinds


class TabularTransform:
    """Feature-type-aware map between a table and the GAN's standardised space.

    ``transform``: log(1 + x) for log-scale features, then (t − mean) / sd per column.
    ``inverse``: back to the original scale, clipped to the protocol's accepted range, rounded
    to whole numbers for genotype and ordinal features, and the evaluation dose rounded to the
    prescription step of the training data (``dose_step_gy_``: the largest of
    :data:`DOSE_STEPS_GY` dividing every training value, 0 when none does). Doses per fraction
    are prescribed in steps (0.1 Gy in the NSCLC trial, 0.5 Gy in the HCC one); without the
    rounding the generated doses would spread between the steps real patients sit on.
    """

    def __init__(self, protocol: Protocol) -> None:
        self.protocol = protocol
        self.kinds = _column_kinds(protocol)

    @property
    def columns(self) -> tuple[str, ...]:
        return gan_columns(self.protocol)

    def _scaled(self, table: pd.DataFrame) -> np.ndarray:
        missing = [c for c in self.columns if c not in table.columns]
        if missing:
            raise KeyError(f"table lacks the columns {', '.join(missing)}")
        values = np.array(table[list(self.columns)], dtype=np.float64)  # [N, F]
        if not np.isfinite(values).all():
            raise ValueError("the GAN trains on complete cases only (found missing values)")
        for j, kind in enumerate(self.kinds):
            if kind.log:
                values[:, j] = np.log1p(values[:, j])
        return values

    def fit(self, table: pd.DataFrame) -> TabularTransform:
        values = self._scaled(table)
        self.mean_ = values.mean(axis=0)
        self.sd_ = np.maximum(values.std(axis=0), 1e-6)
        doses = values[:, -1]
        self.dose_step_gy_ = next(
            (s for s in DOSE_STEPS_GY if np.allclose(doses / s, np.round(doses / s), atol=1e-6)),
            0.0,
        )
        return self

    def transform(self, table: pd.DataFrame) -> np.ndarray:
        """Standardised values, float32 [N, F]."""
        return ((self._scaled(table) - self.mean_) / self.sd_).astype(np.float32)

    def inverse(self, values: np.ndarray) -> pd.DataFrame:
        """Table on the original scale from standardised values [N, F]; valid by construction."""
        out = np.asarray(values, dtype=np.float64) * self.sd_ + self.mean_
        for j, kind in enumerate(self.kinds):
            col = out[:, j]
            if kind.log:
                col = np.expm1(col)
            if kind.integer:
                col = np.round(col)
            elif kind.name == DOSE_EVAL_COLUMN and self.dose_step_gy_ > 0:
                col = np.round(np.round(col / self.dose_step_gy_) * self.dose_step_gy_, 6)
            out[:, j] = np.clip(col, kind.lo, kind.hi)
        return pd.DataFrame(out, columns=list(self.columns))

    def state(self) -> dict[str, torch.Tensor]:
        return {
            "mean": torch.from_numpy(self.mean_.copy()),
            "sd": torch.from_numpy(self.sd_.copy()),
            "dose_step_gy": torch.tensor(self.dose_step_gy_, dtype=torch.float64),
        }

    @classmethod
    def from_state(cls, protocol: Protocol, state: Mapping[str, torch.Tensor]) -> TabularTransform:
        tr = cls(protocol)
        mean = state["mean"].to(torch.float64).numpy()
        sd = state["sd"].to(torch.float64).numpy()
        if mean.shape != (len(tr.columns),) or sd.shape != mean.shape:
            raise ValueError(
                f"GAN transform state has shape {mean.shape}; protocol {protocol.name} generates "
                f"{len(tr.columns)} columns"
            )
        tr.mean_, tr.sd_ = mean.copy(), sd.copy()
        tr.dose_step_gy_ = float(state["dose_step_gy"])
        return tr


def _mlp(n_in: int, hidden: int, n_layers: int, n_out: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = n_in
    for _ in range(n_layers):
        layers += [nn.Linear(width, hidden), nn.LeakyReLU(0.2)]
        width = hidden
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


def _gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """E[(‖∇_x̂ D(x̂)‖₂ − 1)²] at random interpolates x̂ of real and fake rows [B, F]."""
    eps = torch.rand(real.shape[0], 1)  # [B, 1]
    mixed = (eps * real + (1.0 - eps) * fake).requires_grad_(True)  # [B, F]
    score = critic(mixed)  # [B, 1]
    (grad,) = torch.autograd.grad(score.sum(), mixed, create_graph=True)  # [B, F]
    return ((grad.norm(2, dim=1) - 1.0) ** 2).mean()


class WGANGP:
    """WGAN-GP synthetic-patient generator of one protocol (scikit-learn shape).

    Args:
        protocol: supplies the columns, their types and ranges.
        config: hyperparameters.

    Learned attributes after :meth:`fit` (or :meth:`from_state_dict`): ``transform_``
    (:class:`TabularTransform`), ``generator_`` (nn.Module, latent [B, latent_dim] → standardised
    rows [B, F]); after :meth:`fit` also ``critic_`` and ``history_`` (per epoch: mean critic
    loss, mean generator loss, mean Wasserstein estimate E[D(real)] − E[D(fake)]).
    """

    def __init__(self, protocol: Protocol, config: GANConfig | None = None) -> None:
        self.protocol = protocol
        self.config = config or GANConfig()

    def _build(self) -> None:
        cfg, n_cols = self.config, len(gan_columns(self.protocol))
        self.generator_ = _mlp(cfg.latent_dim, cfg.hidden, cfg.n_layers, n_cols)
        self.critic_ = _mlp(n_cols, cfg.hidden, cfg.n_layers, 1)

    def fit(self, table: pd.DataFrame) -> WGANGP:
        """Train on the complete cases of ``table`` (features and ``dose_eval_gy``)."""
        cfg = self.config
        torch.manual_seed(cfg.seed)
        gen = torch.Generator().manual_seed(cfg.seed)
        self.transform_ = TabularTransform(self.protocol).fit(table)
        real_all = torch.from_numpy(self.transform_.transform(table))  # [N, F]
        n = real_all.shape[0]
        if n < 2:
            raise ValueError("the GAN needs at least 2 complete cases")
        batch = min(cfg.batch_size, n)
        self._build()
        opt_g = torch.optim.Adam(
            self.generator_.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2)
        )
        opt_c = torch.optim.Adam(
            self.critic_.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2)
        )
        steps_per_epoch = math.ceil(n / batch)
        self.history_: list[dict[str, float]] = []
        self.generator_.train()
        self.critic_.train()
        for _ in range(cfg.epochs):
            c_losses, g_losses, w_dists = [], [], []
            for _ in range(steps_per_epoch):
                for _ in range(cfg.n_critic):
                    idx = torch.randint(0, n, (batch,), generator=gen)
                    real = real_all[idx]  # [B, F]
                    z = torch.randn(batch, cfg.latent_dim, generator=gen)  # [B, latent]
                    with torch.no_grad():
                        fake = self.generator_(z)  # [B, F]
                    w_dist = self.critic_(real).mean() - self.critic_(fake).mean()
                    loss_c = -w_dist + cfg.gp_weight * _gradient_penalty(self.critic_, real, fake)
                    opt_c.zero_grad(set_to_none=True)
                    loss_c.backward()
                    opt_c.step()
                    c_losses.append(float(loss_c.detach()))
                    w_dists.append(float(w_dist.detach()))
                z = torch.randn(batch, cfg.latent_dim, generator=gen)
                loss_g = -self.critic_(self.generator_(z)).mean()
                opt_g.zero_grad(set_to_none=True)
                loss_g.backward()
                opt_g.step()
                g_losses.append(float(loss_g.detach()))
            self.history_.append(
                {
                    "critic_loss": float(np.mean(c_losses)),
                    "generator_loss": float(np.mean(g_losses)),
                    "wasserstein": float(np.mean(w_dists)),
                }
            )
        self.generator_.eval()
        self.critic_.eval()
        return self

    def sample(self, n: int, seed: int = 0) -> pd.DataFrame:
        """``n`` synthetic cases (features and ``dose_eval_gy``), deterministic by ``seed``.

        Rows are valid inputs: every value inside the protocol's accepted range, integers where
        the feature is an integer. No identifiers (synthetic rows belong to no patient).
        """
        if not hasattr(self, "generator_"):
            raise RuntimeError("the GAN is not fitted; call fit() or from_state_dict() first")
        gen = torch.Generator().manual_seed(int(seed))
        z = torch.randn(int(n), self.config.latent_dim, generator=gen)  # [n, latent]
        with torch.no_grad():
            values = self.generator_(z).numpy()  # [n, F]
        return self.transform_.inverse(values)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Generator weights and transform statistics (the critic is not needed to sample)."""
        state = {f"transform.{k}": v for k, v in self.transform_.state().items()}
        for key, value in self.generator_.state_dict().items():
            state[f"generator.{key}"] = value.detach().clone()
        return state

    @classmethod
    def from_state_dict(
        cls, protocol: Protocol, config: GANConfig, state: Mapping[str, torch.Tensor]
    ) -> WGANGP:
        gan = cls(protocol, config)
        gan.transform_ = TabularTransform.from_state(
            protocol, {k: state[f"transform.{k}"] for k in ("mean", "sd", "dose_step_gy")}
        )
        gan._build()
        sub = {k[len("generator.") :]: v for k, v in state.items() if k.startswith("generator.")}
        gan.generator_.load_state_dict(sub, strict=True)
        gan.generator_.eval()
        del gan.critic_
        return gan


# ------------------------------------------------------------------------------------------------
# Distribution checks


def jensen_shannon(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen–Shannon divergence (base 2, in [0, 1]) of two histograms over the same bins.

    JSD(P‖Q) = ½ KL(P‖M) + ½ KL(Q‖M) with M = ½ (P + Q); counts are normalised first and empty
    bins contribute nothing (0 log 0 = 0). 0 means identical distributions, 1 disjoint support.
    """
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    if p.shape != q.shape or p.ndim != 1:
        raise ValueError(f"histograms must be 1-D of equal length, got {p.shape} and {q.shape}")
    if (p < 0).any() or (q < 0).any() or p.sum() <= 0 or q.sum() <= 0:
        raise ValueError("histograms need non-negative counts with a positive total")
    p, q = p / p.sum(), q / q.sum()
    m = 0.5 * (p + q)

    def kl(a: np.ndarray) -> float:
        nz = a > 0
        return float(np.sum(a[nz] * np.log2(a[nz] / m[nz])))

    return float(min(max(0.5 * kl(p) + 0.5 * kl(q), 0.0), 1.0))


def _bin_edges(kind: _ColumnKind, samples: list[np.ndarray]) -> np.ndarray:
    """Shared bin edges on the modelling scale: integers get one bin per value."""
    if kind.integer:
        return np.arange(kind.lo - 0.5, kind.hi + 1.0, 1.0)
    lo = min(float(np.min(s)) for s in samples)
    hi = max(float(np.max(s)) for s in samples)
    if hi <= lo:
        hi = lo + 1e-6
    return np.linspace(lo, hi, N_BINS + 1)


def feature_histograms(
    protocol: Protocol, tables: Mapping[str, pd.DataFrame]
) -> dict[str, dict[str, Any]]:
    """Per column, shared bins and each table's share of rows per bin (for JSD and plots).

    Continuous log-scale features are binned on log(1 + x); ``edges`` are reported on the
    original scale. Returns ``{column: {"edges": [B + 1], "integer": bool, "log": bool,
    "shares": {table name: [B]}}}``.
    """
    out: dict[str, dict[str, Any]] = {}
    for kind in _column_kinds(protocol):
        scaled = {
            name: (np.log1p(t[kind.name].to_numpy(np.float64)) if kind.log and not kind.integer
                   else t[kind.name].to_numpy(np.float64))
            for name, t in tables.items()
        }
        edges = _bin_edges(kind, list(scaled.values()))
        shares = {}
        for name, values in scaled.items():
            counts, _ = np.histogram(values, bins=edges)
            shares[name] = (counts / max(len(values), 1)).tolist()
        shown = np.expm1(edges) if kind.log and not kind.integer else edges
        out[kind.name] = {
            "edges": shown.tolist(),
            "integer": kind.integer,
            "log": kind.log and not kind.integer,
            "shares": shares,
        }
    return out


def feature_divergences(
    protocol: Protocol, reference: pd.DataFrame, other: pd.DataFrame
) -> dict[str, float]:
    """Per-column Jensen–Shannon divergence between two tables (shared bins, see module doc)."""
    hist = feature_histograms(protocol, {"a": reference, "b": other})
    return {
        col: jensen_shannon(np.asarray(h["shares"]["a"]), np.asarray(h["shares"]["b"]))
        for col, h in hist.items()
    }
