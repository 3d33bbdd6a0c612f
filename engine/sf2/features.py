"""Gene selection as in the SF2 paper: variance filter, correlation pruning, repeated LASSO.

1. **Variance filter.** Genes whose standard deviation across the training lines is below
   ``min_sd`` are dropped. The shipped expression is z-scored over 580 DepMap lines, so every
   gene has sd ≈ 1 over that panel; a gene with sd < 0.5 within the training lines (e.g. a
   lineage marker that is flat in lung) carries little information about them.
2. **Correlation pruning.** Genes are visited in decreasing order of variance; a gene is kept
   only when its |Pearson r| with every gene kept so far is at most ``max_abs_correlation``
   (the paper checked pairwise correlation and VIF; this removes near-duplicates before the
   LASSO, whose choice among correlated genes is otherwise arbitrary).
3. **Repeated LASSO at a fixed size.** ``n_repeats`` × ``n_folds``-fold: in each repeat the
   lines are shuffled and split into folds; the LASSO is fitted on the training part of each
   fold (features standardised on it, target centred) with the regularisation α set so that
   exactly ``n_nonzero`` coefficients are non-zero (found on the exact LARS-LASSO path, see
   :func:`lasso_fixed_size`). Genes are ranked by their
   mean |coefficient| over all fits (0 when not selected); the selection frequency over the
   fits measures stability.

:class:`GeneSelector` follows the scikit-learn shape: ``fit(X, y)`` returns self and sets
``ranking_`` (a table), ``genes_`` (the top ``n_top``) and ``kept_`` (genes passing 1–2).
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import lars_path

from engine.core.config import check_range

__all__ = ["FeatureConfig", "GeneSelector", "correlation_prune", "lasso_fixed_size",
           "variance_filter"]


@dataclass(frozen=True)
class FeatureConfig:
    """Gene-selection settings (defaults: the paper's procedure)."""

    min_sd: float = 0.5
    """Variance filter: smallest accepted sd of a gene over the training lines (z units)."""
    max_abs_correlation: float = 0.8
    """Correlation pruning: largest accepted |Pearson r| between two kept genes."""
    n_nonzero: int = 30
    """Non-zero LASSO coefficients per fit (the paper's 30)."""
    n_repeats: int = 10
    """Repeats of the k-fold split (the paper's 10)."""
    n_folds: int = 5
    """Folds per repeat (the paper's 5); each fit uses the other folds' lines."""
    n_top: int = 20
    """Genes passed on to the models (the paper's top 20)."""
    seed: int = 0
    """Seed of the fold shuffles."""

    def __post_init__(self) -> None:
        check_range("FeatureConfig.min_sd", self.min_sd, 0.0)
        check_range("FeatureConfig.max_abs_correlation", self.max_abs_correlation, 0.0, 1.0,
                    lo_open=True)
        for name in ("n_nonzero", "n_repeats", "n_top"):
            check_range(f"FeatureConfig.{name}", getattr(self, name), 1, integer=True)
        check_range("FeatureConfig.n_folds", self.n_folds, 2, integer=True)
        check_range("FeatureConfig.seed", self.seed, 0, integer=True)

    def to_dict(self) -> dict:
        return asdict(self)


def variance_filter(x: pd.DataFrame, min_sd: float) -> list[str]:
    """Genes (columns of ``x``, lines × genes) whose sd over the lines is at least ``min_sd``."""
    sd = x.std(axis=0, ddof=1)
    return list(sd.index[sd >= min_sd])


def correlation_prune(x: pd.DataFrame, max_abs_correlation: float) -> list[str]:
    """Greedy pruning in decreasing variance order: keep a gene when |r| ≤ threshold with all
    kept ones. Returns the kept genes in that order."""
    order = x.var(axis=0, ddof=1).sort_values(ascending=False, kind="stable").index
    values = x[order].to_numpy(dtype=float)
    values = values - values.mean(0)
    norms = np.linalg.norm(values, axis=0)
    norms[norms == 0] = 1.0
    unit = values / norms  # [n, p]
    kept: list[int] = []
    for j in range(unit.shape[1]):
        if not kept or np.abs(unit[:, kept].T @ unit[:, j]).max() <= max_abs_correlation:
            kept.append(j)
    return [order[j] for j in kept]


def lasso_fixed_size(x: np.ndarray, y: np.ndarray, n_nonzero: int) -> tuple[np.ndarray, float]:
    """LASSO coefficients with exactly ``n_nonzero`` non-zeros (see the module docstring).

    Uses the exact LARS-LASSO regularisation path (``sklearn.linear_model.lars_path``): the
    coefficients are piecewise linear in α between the path's knots and the active set is
    constant on each segment, so the midpoint of the first segment (largest α) whose active set
    has ``n_nonzero`` genes is an exact LASSO solution of that size (the "bisection on α" done
    analytically). When the path skips that size (a gene leaves as another enters), the next
    larger model is trimmed to its ``n_nonzero`` largest |coef|.

    Args:
        x: ``[n, p]`` standardised features; y: ``[n]`` centred target.
        n_nonzero: wanted number of non-zero coefficients (≤ p).

    Returns:
        (coefficients ``[p]`` with at most ``n_nonzero`` non-zeros — fewer only when the full
        path has fewer, e.g. n ≤ n_nonzero — and the α (scikit-learn's scaling) used).
    """
    n_nonzero = min(n_nonzero, x.shape[1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        alphas, _, coefs = lars_path(x, y, method="lasso", max_iter=4 * n_nonzero + 20)
    # coefs [p, n_knots]; alphas decrease. Segment s spans knots s and s+1.
    mids = 0.5 * (coefs[:, :-1] + coefs[:, 1:])
    sizes = (np.abs(mids) > 1e-12).sum(0)
    exact = np.nonzero(sizes == n_nonzero)[0]
    if exact.size:
        s = exact[0]
        return np.where(np.abs(mids[:, s]) > 1e-12, mids[:, s], 0.0), float(
            0.5 * (alphas[s] + alphas[s + 1]))
    larger = np.nonzero(sizes > n_nonzero)[0]
    s = larger[0] if larger.size else len(sizes) - 1
    coef = np.where(np.abs(mids[:, s]) > 1e-12, mids[:, s], 0.0)
    keep = np.argsort(-np.abs(coef), kind="stable")[:n_nonzero]
    trimmed = np.zeros_like(coef)
    trimmed[keep] = coef[keep]
    return trimmed, float(0.5 * (alphas[s] + alphas[s + 1]))


class GeneSelector:
    """Variance filter → correlation pruning → repeated fixed-size LASSO → ranking."""

    def __init__(self, config: FeatureConfig | None = None) -> None:
        self.config = config or FeatureConfig()

    def fit(self, x: pd.DataFrame, y: pd.Series | np.ndarray) -> GeneSelector:
        """Select genes from ``x`` (lines × genes, z-scores) for target ``y`` (SF2 per line).

        Sets ``kept_`` (genes after filter and pruning), ``ranking_`` (DataFrame indexed by gene,
        sorted by rank: ``mean_abs_coef``, ``mean_coef``, ``selection_frequency`` (0–1 over the
        ``n_repeats × n_folds`` fits), ``rank`` (1 = best)), ``genes_`` (top ``n_top``) and
        ``alphas_`` (the α of each fit).
        """
        c = self.config
        target = np.asarray(y, dtype=float)
        if len(target) != len(x):
            raise ValueError(f"x has {len(x)} lines but y has {len(target)} values")
        if len(target) < 2 * c.n_folds:
            raise ValueError(f"need at least {2 * c.n_folds} lines for {c.n_folds}-fold LASSO")
        kept = variance_filter(x, c.min_sd)
        kept = correlation_prune(x[kept], c.max_abs_correlation)
        values = x[kept].to_numpy(dtype=float)
        rng = np.random.default_rng(c.seed)
        coefs = np.zeros((c.n_repeats * c.n_folds, len(kept)))
        alphas = np.zeros(c.n_repeats * c.n_folds)
        k = 0
        for _ in range(c.n_repeats):
            folds = np.array_split(rng.permutation(len(target)), c.n_folds)
            for fold in folds:
                train = np.setdiff1d(np.arange(len(target)), fold)
                xt, yt = values[train], target[train]
                mu, sd = xt.mean(0), xt.std(0)
                sd[sd == 0] = 1.0
                coefs[k], alphas[k] = lasso_fixed_size((xt - mu) / sd, yt - yt.mean(),
                                                       c.n_nonzero)
                k += 1
        ranking = pd.DataFrame({
            "mean_abs_coef": np.abs(coefs).mean(0),
            "mean_coef": coefs.mean(0),
            "selection_frequency": (np.abs(coefs) > 0).mean(0),
        }, index=pd.Index(kept, name="gene"))
        ranking = ranking.sort_values(["mean_abs_coef", "selection_frequency"],
                                      ascending=False, kind="stable")
        ranking["rank"] = np.arange(1, len(ranking) + 1)
        self.kept_ = kept
        self.ranking_ = ranking
        self.genes_ = list(ranking.index[: c.n_top])
        self.alphas_ = alphas
        return self
