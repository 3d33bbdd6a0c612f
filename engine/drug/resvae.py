"""Res-VAE transfer learning for drug resistance: a residual VAE pre-trained without drug labels,
then one small classifier head per drug on its latent mean (the method of the fourth seed paper,
"Interpretable transfer learning for cancer drug resistance", built from its abstract).

**Pre-training** (:class:`ResVAE`, unsupervised, pan-cancer): lines' molecular profiles ``x``
``[n_lines, n_features]`` (706 expression z-scores + 706 binary mutation calls + 706 relative
copy numbers in the project's data) are standardised per column with the *training* lines'
mean and sd (binary 0/1 columns are left as they are), encoded by a residual MLP into a Gaussian
posterior ``q(z | x) = N(μ, diag σ²)``, sampled with the reparameterisation ``z = μ + σ ε`` and
decoded by a mirrored residual MLP. The loss per line is the negative ELBO with a KL weight

    L = Σ_continuous ½ (x̂ − x)²  +  Σ_binary BCE(logit x̂, x)  +  β_t · KL(q(z|x) ‖ N(0, I)),

i.e. a unit-variance Gaussian likelihood for continuous columns and a Bernoulli likelihood for
binary ones (``reconstruction="mixed"``; the binary columns are those whose training values are
all 0 or 1, or the ones the caller names). ``reconstruction="mse"`` treats every column as
Gaussian. β_t rises linearly from 0 to ``beta`` over the first ``kl_warmup_fraction`` of the
epochs (KL warm-up, against posterior collapse).

Residual block (pre-activation, as in He et al. 2016): ``h + W₂ drop(act(N(W₁ act(N(h)))))``
with ``N`` a LayerNorm (default; no dependence on the batch, so one line scores the same alone
or in a batch) or a BatchNorm.

**Transfer** (:class:`ResVAEClassifier`, per drug): a small MLP head on the encoder's latent mean
μ predicts resistance (``y = 1``). Variant A freezes the encoder (the latent means are computed
once and only the head learns); variant B fine-tunes a deep copy of the encoder with a learning
rate ``encoder_lr_factor`` times the head's. The pre-trained :class:`ResVAE` is never changed, so
one pre-training serves every drug of a fold. Classes are weighted ``n / (2 n_class)``
(balanced) in the binary cross-entropy. Training is full-batch AdamW with early stopping on a
seeded stratified validation split of the *training* lines passed to ``fit`` (never the test
lines); the head of the epoch with the lowest class-weighted validation loss is kept (no refit
on all lines, to keep one head fit about a second on one core).

**Interpretation** (:mod:`engine.drug.resvae_explain`): ``integrated_gradients`` attributes
the head's resistance logit to the input features with captum's Integrated Gradients
(Sundararajan et al. 2017), from a baseline that is by default the training lines' mean
profile; a positive attribution pushes the prediction toward resistance, and the attributions
of a line sum to its logit minus the baseline's (completeness).

**Determinism**: every fit runs inside ``torch.random.fork_rng`` seeded with its ``seed`` (the
caller's global RNG state is left alone), with a private ``torch.Generator`` for minibatches and
reparameterisation noise and a numpy generator for the validation split: the same seed, data and
thread count give identical predictions. Threads are the caller's choice: the project's executor
(:mod:`engine.platform.executor`) pins one torch thread per worker; a lone call uses torch's
default.

**Artifacts** (:mod:`engine.drug.resvae_state`): ``vae_to_state`` / ``classifier_to_state``
give a flat ``dict[str, torch.Tensor]`` (readable with ``torch.load(weights_only=True)``, the
form :func:`engine.platform.registry.save_artifact` stores) and a JSON-ready metadata dict (config,
seed, widths); ``vae_from_state`` / ``classifier_from_state`` rebuild a model that predicts
exactly as the saved one.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from engine.core.config import DictConfig, check_bool, check_choice, check_range

__all__ = [
    "NORMS",
    "RECONSTRUCTIONS",
    "ResVAE",
    "ResVAEClassifier",
    "ResVAEConfig",
]

NORMS: tuple[str, ...] = ("layer", "batch")
"""Normalisation inside the residual blocks: LayerNorm or BatchNorm."""
RECONSTRUCTIONS: tuple[str, ...] = ("mixed", "mse")
"""Reconstruction likelihoods: Gaussian + Bernoulli for binary columns, or Gaussian for all."""
_MIN_SD = 1e-6  # a column with a smaller training sd is constant: centred, not scaled


@dataclass(frozen=True)
class ResVAEConfig(DictConfig):
    """Res-VAE architecture, pre-training and per-drug fine-tuning (defaults sized for one CPU
    core: pre-training ~10 s on ~460 lines × 2,118 features, a head fit ~1 s)."""

    hidden_dim: int = 128
    """Width of the residual trunk of the encoder and the decoder. Accepted ≥ 1."""
    n_blocks: int = 2
    """Residual blocks in the encoder and in the decoder each. Accepted 0–8."""
    latent_dim: int = 32
    """Dimension of the Gaussian latent space (the head's input). Accepted ≥ 1."""
    norm: str = "layer"
    """Normalisation in the residual blocks: ``"layer"`` (LayerNorm) or ``"batch"``
    (BatchNorm)."""
    dropout: float = 0.3
    """Dropout probability inside the residual blocks. Accepted [0, 1)."""
    beta: float = 1.0
    """Weight of the KL term after warm-up (β-VAE; 1 = the ELBO). Accepted ≥ 0."""
    kl_warmup_fraction: float = 0.25
    """Fraction of the pre-training epochs over which the KL weight rises linearly from 0 to
    ``beta``; 0 = no warm-up. Accepted [0, 1]."""
    reconstruction: str = "mixed"
    """``"mixed"``: Gaussian (½ squared error on standardised values) for continuous columns
    and Bernoulli (BCE on logits) for binary ones; ``"mse"``: Gaussian for every column."""
    pretrain_epochs: int = 80
    """Passes over the unlabelled lines in pre-training. Accepted ≥ 1."""
    pretrain_batch_size: int = 64
    """Lines per pre-training minibatch (the last one may be smaller). Accepted ≥ 2."""
    pretrain_lr: float = 1e-3
    """AdamW learning rate of pre-training. Accepted > 0."""
    weight_decay: float = 1e-4
    """AdamW decoupled weight decay, pre-training and fine-tuning. Accepted ≥ 0."""
    head_hidden_dim: int = 32
    """Hidden width of the classifier head (latent → hidden → 1 logit). Accepted ≥ 1."""
    head_dropout: float = 0.2
    """Dropout before the head's output layer. Accepted [0, 1)."""
    head_lr: float = 3e-3
    """AdamW learning rate of the head (full-batch steps). Accepted > 0."""
    encoder_lr_factor: float = 0.1
    """Unfrozen variant: the encoder's learning rate is ``head_lr`` times this. Accepted > 0."""
    head_max_epochs: int = 200
    """Most full-batch steps of a head fit. Accepted ≥ 1."""
    head_patience: int = 20
    """Early stopping: steps without a lower validation loss before stopping. Accepted ≥ 1."""
    val_fraction: float = 0.2
    """Fraction of the training lines held out (stratified, seeded) for early stopping.
    Accepted (0, 0.5]."""
    class_weighting: bool = True
    """Weight the classes ``n / (2 n_class)`` in the loss (True) or not (False)."""

    def __post_init__(self) -> None:
        check_range("ResVAEConfig.hidden_dim", self.hidden_dim, 1, integer=True)
        check_range("ResVAEConfig.n_blocks", self.n_blocks, 0, 8, integer=True)
        check_range("ResVAEConfig.latent_dim", self.latent_dim, 1, integer=True)
        check_choice("ResVAEConfig.norm", self.norm, NORMS)
        check_range("ResVAEConfig.dropout", self.dropout, 0.0, 1.0, hi_open=True)
        check_range("ResVAEConfig.beta", self.beta, 0.0)
        check_range("ResVAEConfig.kl_warmup_fraction", self.kl_warmup_fraction, 0.0, 1.0)
        check_choice("ResVAEConfig.reconstruction", self.reconstruction, RECONSTRUCTIONS)
        check_range("ResVAEConfig.pretrain_epochs", self.pretrain_epochs, 1, integer=True)
        check_range("ResVAEConfig.pretrain_batch_size", self.pretrain_batch_size, 2,
                    integer=True)
        check_range("ResVAEConfig.pretrain_lr", self.pretrain_lr, 0.0, lo_open=True)
        check_range("ResVAEConfig.weight_decay", self.weight_decay, 0.0)
        check_range("ResVAEConfig.head_hidden_dim", self.head_hidden_dim, 1, integer=True)
        check_range("ResVAEConfig.head_dropout", self.head_dropout, 0.0, 1.0, hi_open=True)
        check_range("ResVAEConfig.head_lr", self.head_lr, 0.0, lo_open=True)
        check_range("ResVAEConfig.encoder_lr_factor", self.encoder_lr_factor, 0.0,
                    lo_open=True)
        check_range("ResVAEConfig.head_max_epochs", self.head_max_epochs, 1, integer=True)
        check_range("ResVAEConfig.head_patience", self.head_patience, 1, integer=True)
        check_range("ResVAEConfig.val_fraction", self.val_fraction, 0.0, 0.5, lo_open=True)
        check_bool("ResVAEConfig.class_weighting", self.class_weighting)

    @classmethod
    def tiny(cls) -> ResVAEConfig:
        """A budget for unit tests: narrow, few epochs (well under a second per fit)."""
        return cls(hidden_dim=16, n_blocks=1, latent_dim=4, pretrain_epochs=5,
                   pretrain_batch_size=16, head_hidden_dim=8, head_max_epochs=15,
                   head_patience=5)


# --- networks -----------------------------------------------------------------------------------


def _norm(kind: str, width: int) -> nn.Module:
    return nn.LayerNorm(width) if kind == "layer" else nn.BatchNorm1d(width)


class ResidualBlock(nn.Module):
    """Pre-activation residual block ``h + W₂ drop(act(N(W₁ act(N(h)))))``: ``[n, w] → [n, w]``."""

    def __init__(self, width: int, norm: str, dropout: float) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _norm(norm, width), nn.GELU(), nn.Linear(width, width),
            _norm(norm, width), nn.GELU(), nn.Dropout(dropout), nn.Linear(width, width),
        )

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.body(h)  # [n, w]


class Encoder(nn.Module):
    """Residual encoder: standardised profiles ``[n, F]`` → posterior mean and log-variance,
    each ``[n, latent]``."""

    def __init__(self, n_features: int, config: ResVAEConfig) -> None:
        super().__init__()
        c = config
        self.trunk = nn.Sequential(
            nn.Linear(n_features, c.hidden_dim),
            *(ResidualBlock(c.hidden_dim, c.norm, c.dropout) for _ in range(c.n_blocks)),
            _norm(c.norm, c.hidden_dim), nn.GELU(),
        )
        self.mu = nn.Linear(c.hidden_dim, c.latent_dim)
        self.logvar = nn.Linear(c.hidden_dim, c.latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(x)  # [n, hidden]
        return self.mu(h), self.logvar(h).clamp(-10.0, 10.0)  # [n, latent] each


class Decoder(nn.Module):
    """Residual decoder: latent ``[n, latent]`` → reconstruction ``[n, F]`` (standardised
    values for continuous columns, logits for binary ones)."""

    def __init__(self, n_features: int, config: ResVAEConfig) -> None:
        super().__init__()
        c = config
        self.net = nn.Sequential(
            nn.Linear(c.latent_dim, c.hidden_dim),
            *(ResidualBlock(c.hidden_dim, c.norm, c.dropout) for _ in range(c.n_blocks)),
            _norm(c.norm, c.hidden_dim), nn.GELU(),
            nn.Linear(c.hidden_dim, n_features),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)  # [n, F]


class Head(nn.Module):
    """Classifier head on the latent mean: ``[n, latent]`` → resistance logit ``[n]``."""

    def __init__(self, config: ResVAEConfig) -> None:
        super().__init__()
        c = config
        self.net = nn.Sequential(
            nn.Linear(c.latent_dim, c.head_hidden_dim), nn.GELU(), nn.Dropout(c.head_dropout),
            nn.Linear(c.head_hidden_dim, 1),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).squeeze(-1)  # [n]


class _LogitModel(nn.Module):
    """Raw features ``[n, F]`` → standardise → encoder mean → head → resistance logit ``[n]``
    (what :func:`integrated_gradients` differentiates)."""

    def __init__(self, encoder: Encoder, head: Head, mean: torch.Tensor,
                 scale: torch.Tensor) -> None:
        super().__init__()
        self.encoder, self.head = encoder, head
        self.register_buffer("mean", mean)
        self.register_buffer("scale", scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu, _ = self.encoder((x - self.mean) / self.scale)  # [n, latent]
        return self.head(mu)  # [n]


# --- input checks and shared pieces -------------------------------------------------------------


def _check_x(x: Any, n_features: int | None = None, name: str = "x") -> np.ndarray:
    """``x`` as a finite float32 array ``[n, F]`` (F = ``n_features`` when given)."""
    arr = np.asarray(x, dtype=np.float32)
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"{name} must be a 2-D array (n_lines, n_features) with at least one "
                         f"line and one feature, got shape {arr.shape}")
    if n_features is not None and arr.shape[1] != n_features:
        raise ValueError(f"{name} has {arr.shape[1]} features; the model was fitted on "
                         f"{n_features}")
    if not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(f"{name}[{bad[0]}, {bad[1]}] = {arr[bad[0], bad[1]]}: every value "
                         "must be a finite number (impute missing values before fitting)")
    return arr


def _check_y(y: Any, n: int) -> np.ndarray:
    """``y`` as an int64 vector of 0/1 of length ``n`` with both classes present."""
    arr = np.asarray(y)
    if arr.shape != (n,):
        raise ValueError(f"y must have shape ({n},) to match x, got {arr.shape}")
    if not np.isin(arr, (0, 1)).all():
        raise ValueError(f"y must hold 0 (sensitive) or 1 (resistant) only, got values "
                         f"{sorted(set(np.unique(arr).tolist()) - {0, 1})[:5]}")
    arr = arr.astype(np.int64)
    counts = np.bincount(arr, minlength=2)
    if counts.min() < 1:
        raise ValueError(f"y needs both classes to fit a head, got {counts[0]} sensitive and "
                         f"{counts[1]} resistant lines")
    return arr


def _kl_per_line(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(μ, σ²) ‖ N(0, I)) per line, summed over latent dimensions: ``[n, L]`` → ``[n]``."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(1)


def _recon_per_line(x_hat: torch.Tensor, x: torch.Tensor, binary: torch.Tensor) -> torch.Tensor:
    """Negative log-likelihood per line (up to constants), summed over features: ``[n]``.

    Continuous columns: ½ (x̂ − x)² (unit-variance Gaussian on standardised values); binary
    columns (``binary [F]`` True): BCE of the logit x̂ against the 0/1 value.
    """
    gauss = 0.5 * (x_hat - x).pow(2)  # [n, F]
    if bool(binary.any()):
        bern = F.binary_cross_entropy_with_logits(x_hat, x, reduction="none")  # [n, F]
        gauss = torch.where(binary, bern, gauss)
    return gauss.sum(1)


def _class_weights(y: np.ndarray, enabled: bool) -> torch.Tensor:
    """Per-line loss weights ``[n]``: ``n / (2 n_class)`` (balanced) or all ones."""
    if not enabled:
        return torch.ones(len(y))
    counts = np.bincount(y, minlength=2).astype(np.float64)
    per_class = len(y) / (2.0 * np.maximum(counts, 1.0))
    return torch.from_numpy(per_class[y].astype(np.float32))


def _stratified_split(y: np.ndarray, fraction: float,
                      rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray] | None:
    """Indices (train, validation) with ``round(fraction · n_class)`` (at least 1) lines of each
    class held out, or None when a class has fewer than 2 lines (nothing left to both learn
    from and validate on)."""
    counts = np.bincount(y, minlength=2)
    if counts.min() < 2:
        return None
    val = []
    for cls in (0, 1):
        idx = rng.permutation(np.flatnonzero(y == cls))
        k = min(max(1, round(fraction * len(idx))), len(idx) - 1)
        val.append(idx[:k])
    val_idx = np.sort(np.concatenate(val))
    return np.setdiff1d(np.arange(len(y)), val_idx), val_idx


# --- the pre-trained VAE ------------------------------------------------------------------------


class ResVAE:
    """Residual VAE pre-trained without labels on lines' profiles (see the module docstring).

    Learned attributes (after :meth:`fit`): ``encoder_`` and ``decoder_`` (networks, eval
    mode), ``mean_`` and ``scale_`` (``[F]`` column standardisation of the training lines;
    binary columns 0 and 1), ``binary_`` (``[F]`` bool, the Bernoulli-reconstructed columns),
    ``baseline_`` (``[F]`` the training lines' raw mean profile, the default attribution
    baseline), ``history_`` (per epoch: mean reconstruction loss, KL and KL weight per line).
    """

    def __init__(self, config: ResVAEConfig, seed: int) -> None:
        check_range("ResVAE seed", seed, 0, integer=True)
        self.config = config
        self.seed = int(seed)

    @property
    def n_features_(self) -> int:
        return int(self.mean_.shape[0])

    def fit(self, x: Any, binary_columns: Any = None) -> ResVAE:
        """Pre-train on unlabelled lines.

        Args:
            x: ``[n_lines, n_features]`` finite values (float32 or castable), n_lines ≥ 2.
            binary_columns: optional ``[n_features]`` bool mask of 0/1 columns (e.g. mutation
                calls) reconstructed with BCE; default: the columns whose values in ``x`` are
                all 0 or 1 (with ``reconstruction="mse"`` every column is Gaussian).

        Returns:
            self.
        """
        c = self.config
        arr = _check_x(x)
        n, n_features = arr.shape
        if n < 2:
            raise ValueError(f"x has {n} line; pre-training needs at least 2")
        if binary_columns is None:
            binary = np.isin(arr, (0.0, 1.0)).all(0)
        else:
            binary = np.asarray(binary_columns, dtype=bool)
            if binary.shape != (n_features,):
                raise ValueError(f"binary_columns must have shape ({n_features},), got "
                                 f"{binary.shape}")
            if not np.isin(arr[:, binary], (0.0, 1.0)).all():
                raise ValueError("binary_columns names columns of x with values other than 0 "
                                 "and 1")
        if c.reconstruction == "mse":
            binary = np.zeros(n_features, dtype=bool)
        mean = np.where(binary, 0.0, arr.mean(0)).astype(np.float32)
        sd = arr.std(0)
        scale = np.where(binary | (sd < _MIN_SD), 1.0, sd).astype(np.float32)
        self.mean_ = torch.from_numpy(mean)
        self.scale_ = torch.from_numpy(scale)
        self.binary_ = torch.from_numpy(binary)
        self.baseline_ = torch.from_numpy(arr.mean(0).astype(np.float32))
        xs = (torch.from_numpy(arr) - self.mean_) / self.scale_  # [n, F]

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            gen = torch.Generator().manual_seed(self.seed)
            self.encoder_ = Encoder(n_features, c)
            self.decoder_ = Decoder(n_features, c)
            params = [*self.encoder_.parameters(), *self.decoder_.parameters()]
            opt = torch.optim.AdamW(params, lr=c.pretrain_lr, weight_decay=c.weight_decay)
            batch = min(c.pretrain_batch_size, n)
            warmup = c.kl_warmup_fraction * c.pretrain_epochs
            self.encoder_.train()
            self.decoder_.train()
            self.history_: list[dict[str, float]] = []
            for epoch in range(c.pretrain_epochs):
                kl_weight = c.beta * (min(1.0, (epoch + 1) / warmup) if warmup > 0 else 1.0)
                order = torch.randperm(n, generator=gen)
                # a last minibatch of one line would break BatchNorm: fold it into the previous
                starts = list(range(0, n, batch))
                if n - starts[-1] < 2 and len(starts) > 1:
                    starts.pop()
                bounds = [*starts[1:], n]
                sums = np.zeros(2)
                for lo, hi in zip(starts, bounds, strict=True):
                    xb = xs[order[lo:hi]]  # [b, F]
                    mu, logvar = self.encoder_(xb)  # [b, L]
                    eps = torch.randn(mu.shape, generator=gen)
                    z = mu + (0.5 * logvar).exp() * eps  # [b, L]
                    recon = _recon_per_line(self.decoder_(z), xb, self.binary_)  # [b]
                    kl = _kl_per_line(mu, logvar)  # [b]
                    loss = (recon + kl_weight * kl).mean()
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    nn.utils.clip_grad_norm_(params, 10.0)
                    opt.step()
                    sums += [float(recon.detach().sum()), float(kl.detach().sum())]
                self.history_.append({"recon": sums[0] / n, "kl": sums[1] / n,
                                      "kl_weight": kl_weight})
        self.encoder_.eval()
        self.decoder_.eval()
        for p in (*self.encoder_.parameters(), *self.decoder_.parameters()):
            p.requires_grad_(False)
        return self

    def _standardise(self, x: Any) -> torch.Tensor:
        return (torch.from_numpy(_check_x(x, self.n_features_)) - self.mean_) / self.scale_

    def encode(self, x: Any) -> np.ndarray:
        """Latent means μ ``[n, latent_dim]`` of raw profiles ``x [n, F]``."""
        with torch.no_grad():
            return self.encoder_(self._standardise(x))[0].numpy()

    def reconstruct(self, x: Any) -> np.ndarray:
        """Decoded latent means in raw units ``[n, F]`` (binary columns as probabilities)."""
        with torch.no_grad():
            out = self.decoder_(self.encoder_(self._standardise(x))[0])  # [n, F]
            out = torch.where(self.binary_, torch.sigmoid(out), out * self.scale_ + self.mean_)
        return out.numpy()

    def reconstruction_loss(self, x: Any) -> float:
        """Mean negative log-likelihood per line of ``x`` decoded from its latent mean (the
        pre-training's reconstruction term, without sampling)."""
        xs = self._standardise(x)
        with torch.no_grad():
            x_hat = self.decoder_(self.encoder_(xs)[0])
            return float(_recon_per_line(x_hat, xs, self.binary_).mean())


# --- the per-drug classifier --------------------------------------------------------------------


class ResVAEClassifier:
    """Per-drug resistance classifier on a pre-trained :class:`ResVAE`'s latent mean.

    ``freeze_encoder=True`` (variant A) trains the head only; ``False`` (variant B) fine-tunes a
    deep copy of the encoder at ``head_lr · encoder_lr_factor``. ``vae`` is never modified.

    Learned attributes (after :meth:`fit`): ``encoder_`` (this classifier's copy, eval mode,
    no gradients), ``head_``, ``mean_``/``scale_``/``baseline_`` (the VAE's, ``[F]``),
    ``n_epochs_`` (steps taken), ``best_epoch_`` (step whose weights were kept, 1-based),
    ``early_stopped_`` (False when a class had < 2 lines and there was no validation split),
    ``history_`` (per step: training and validation loss), ``val_index_`` (positions of the
    early-stopping validation lines in the ``x`` given to :meth:`fit`) and ``oof_`` (``[n]``
    probabilities of resistance of those validation lines from the kept weights, which never
    trained on them; NaN for the other lines — the evaluation picks the F1 threshold on
    them).
    """

    def __init__(self, vae: ResVAE, freeze_encoder: bool, config: ResVAEConfig,
                 seed: int) -> None:
        check_bool("ResVAEClassifier freeze_encoder", freeze_encoder)
        check_range("ResVAEClassifier seed", seed, 0, integer=True)
        self.vae = vae
        self.freeze_encoder = freeze_encoder
        self.config = config
        self.seed = int(seed)

    def fit(self, x: Any, y: Any) -> ResVAEClassifier:
        """Fine-tune on one drug's training lines.

        Args:
            x: ``[n, F]`` raw profiles, the same features as the VAE's.
            y: ``[n]`` 0 (sensitive) / 1 (resistant), both classes present.

        Returns:
            self.
        """
        vae, c = self.vae, self.config
        if not hasattr(vae, "encoder_"):
            raise ValueError("the ResVAE must be fitted (pre-trained) before a classifier")
        arr = _check_x(x, vae.n_features_)
        labels = _check_y(y, arr.shape[0])
        self.mean_, self.scale_ = vae.mean_.clone(), vae.scale_.clone()
        self.baseline_ = vae.baseline_.clone()
        xs = (torch.from_numpy(arr) - self.mean_) / self.scale_  # [n, F]
        rng = np.random.default_rng(self.seed)
        split = _stratified_split(labels, c.val_fraction, rng)
        tr, va = split if split is not None else (np.arange(len(labels)), None)
        self.early_stopped_ = split is not None
        weights = _class_weights(labels[tr], c.class_weighting)  # [n_tr]
        y_t = torch.from_numpy(labels.astype(np.float32))  # [n]

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.encoder_ = copy.deepcopy(vae.encoder_)
            self.head_ = Head(c)
            if self.freeze_encoder:
                self.encoder_.eval()
                with torch.no_grad():
                    inputs = self.encoder_(xs)[0]  # [n, L], computed once
            else:
                self.encoder_.requires_grad_(True)  # the copy only; the VAE stays frozen
                inputs = xs  # [n, F]
            self._train(inputs, y_t, tr, va, weights)

        self.encoder_.eval()
        self.head_.eval()
        for p in (*self.encoder_.parameters(), *self.head_.parameters()):
            p.requires_grad_(False)
        # out-of-sample scores of the validation lines: the kept weights never trained on them
        # (they only chose the stopping step); NaN for the lines the head learned from
        self.oof_ = np.full(len(labels), np.nan)
        self.val_index_ = va if va is not None else np.zeros(0, dtype=np.int64)
        if va is not None:
            with torch.no_grad():
                self.oof_[va] = torch.sigmoid(self._logits(inputs[va])).numpy()
        return self

    def _logits(self, inputs: torch.Tensor) -> torch.Tensor:
        """Head logits ``[n]`` from latent means (frozen) or standardised profiles (unfrozen)."""
        if self.freeze_encoder:
            return self.head_(inputs)
        return self.head_(self.encoder_(inputs)[0])

    def _train(self, inputs: torch.Tensor, y: torch.Tensor, tr: np.ndarray,
               va: np.ndarray | None, weights: torch.Tensor) -> None:
        """Full-batch steps with early stopping on the validation split (when there is one)."""
        c = self.config
        groups = [{"params": list(self.head_.parameters()), "lr": c.head_lr}]
        if not self.freeze_encoder:
            groups.append({"params": list(self.encoder_.parameters()),
                           "lr": c.head_lr * c.encoder_lr_factor})
        opt = torch.optim.AdamW(groups, weight_decay=c.weight_decay)
        x_tr, y_tr = inputs[tr], y[tr]
        if va is not None:
            # validation lines carry the training classes' weights: the criterion is the
            # training objective evaluated on held-out lines
            tr_labels, val_labels = (y[i].numpy().astype(np.int64) for i in (tr, va))
            per_class = np.array([float(weights[tr_labels == k][0]) for k in (0, 1)])
            val_w = torch.from_numpy(per_class[val_labels].astype(np.float32))  # [n_va]
        best, best_state, stale = math.inf, None, 0
        self.history_: list[dict[str, float]] = []
        modules = [self.head_] if self.freeze_encoder else [self.head_, self.encoder_]
        for step in range(1, c.head_max_epochs + 1):
            for m in modules:
                m.train()
            loss = (F.binary_cross_entropy_with_logits(self._logits(x_tr), y_tr,
                                                       reduction="none") * weights).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            record = {"train": float(loss.detach())}
            self.n_epochs_ = step
            if va is None:
                self.history_.append(record)
                continue
            for m in modules:
                m.eval()
            with torch.no_grad():
                val = float((F.binary_cross_entropy_with_logits(
                    self._logits(inputs[va]), y[va], reduction="none") * val_w).mean())
            record["val"] = val
            self.history_.append(record)
            if val < best - 1e-6:
                best, stale, self.best_epoch_ = val, 0, step
                best_state = [copy.deepcopy(m.state_dict()) for m in modules]
            else:
                stale += 1
                if stale >= c.head_patience:
                    break
        if best_state is not None:
            for m, state in zip(modules, best_state, strict=True):
                m.load_state_dict(state)
        else:
            self.best_epoch_ = self.n_epochs_
        self.best_val_loss_ = best if va is not None else None

    def logit_model(self) -> nn.Module:
        """The fitted pipeline raw features ``[n, F]`` → resistance logit ``[n]`` (eval mode)."""
        model = _LogitModel(self.encoder_, self.head_, self.mean_, self.scale_)
        return model.eval()

    def decision_function(self, x: Any) -> np.ndarray:
        """Resistance logits ``[n]`` of raw profiles ``x [n, F]``."""
        arr = _check_x(x, int(self.mean_.shape[0]))
        with torch.no_grad():
            return self.logit_model()(torch.from_numpy(arr)).numpy().astype(np.float64)

    def predict_proba(self, x: Any) -> np.ndarray:
        """Probability of resistance ``[n]`` in [0, 1] for raw profiles ``x [n, F]``."""
        return 1.0 / (1.0 + np.exp(-self.decision_function(x)))
