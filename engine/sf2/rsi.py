"""Radiosensitivity Index (RSI) and genomic-adjusted radiation dose (GARD), as published.

RSI (Eschrich et al. 2009, Int J Radiat Oncol Biol Phys 75:497; Torres-Roca's 10-gene
signature) is a linear model on *within-sample ranks* of 10 genes: in each sample the 10 genes
are ranked 1 … 10 by expression (highest = 10), and

    RSI = −0.0098009·AR + 0.0128283·JUN + 0.0254552·STAT1 − 0.0017589·PRKCB − 0.0038171·RELA
          + 0.1070213·ABL1 − 0.0002509·SUMO1 − 0.0092431·PAK2 − 0.0204469·HDAC1
          − 0.0441683·IRF1

(no intercept; PAK2 is the gene behind the probe often labelled CDK1). RSI was trained to
predict SF2, so it is read as a surviving fraction at 2 Gy. Ties (equal expression) get the mean
of the ranks they span (``scipy.stats.rankdata(method="average")``); the published model does not
say, and with microarray values ties practically never occur.

Because only the order of the 10 values matters, any absolute expression scale works (log2 RMA,
TPM, log2 TPM): a monotone transform leaves RSI unchanged. Per-gene standardised values
(z-scores across samples, like the shipped DepMap panel) do **not** work: they compare each gene
with its own population, not the genes with each other.

GARD (Scott et al. 2017, Lancet Oncol 18:202): with β = 0.05 Gy⁻² and α from RSI read as SF2,
SF2 = exp(−2α − 4β) ⇒ α = −ln(RSI)/2 − 2β (:func:`engine.core.radiobiology.alpha_from_sf2`), and
for n fractions of d Gy

    GARD = n·d·(α + β·d).

RSI ≤ 0 (possible for unusual rank orders) has no logarithm: α and GARD are NaN there.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from engine.core.radiobiology import alpha_from_sf2
from engine.sf2.data import RSI_GENES

__all__ = [
    "GARD_BETA_PER_GY2",
    "RSI_COEFFICIENTS",
    "gard",
    "rsi",
    "rsi_alpha_per_gy",
]

RSI_COEFFICIENTS: dict[str, float] = {
    "AR": -0.0098009,
    "JUN": 0.0128283,
    "STAT1": 0.0254552,
    "PRKCB": -0.0017589,
    "RELA": -0.0038171,
    "ABL1": 0.1070213,
    "SUMO1": -0.0002509,
    "PAK2": -0.0092431,
    "HDAC1": -0.0204469,
    "IRF1": -0.0441683,
}
"""Published RSI coefficients per gene (applied to within-sample ranks 1–10)."""
GARD_BETA_PER_GY2 = 0.05
"""β of the GARD model, Gy⁻² (Scott et al. 2017)."""

assert tuple(RSI_COEFFICIENTS) == RSI_GENES


def rsi(expression: pd.DataFrame | np.ndarray) -> np.ndarray:
    """RSI of each sample.

    Args:
        expression: samples × genes on an absolute scale. A DataFrame must hold the 10
            :data:`RSI_GENES` as columns (others are ignored); an array must be ``[n, 10]`` in
            :data:`RSI_GENES` order.

    Returns:
        ``[n]`` RSI values (unitless, read as SF2; typically 0.1–0.8).

    Raises:
        ValueError: a gene is missing, the array has the wrong shape, or a value is not finite.
    """
    if isinstance(expression, pd.DataFrame):
        missing = [g for g in RSI_GENES if g not in expression.columns]
        if missing:
            raise ValueError(f"RSI needs all 10 genes; missing {', '.join(missing)}")
        values = expression[list(RSI_GENES)].to_numpy(dtype=float)
    else:
        values = np.asarray(expression, dtype=float)
        if values.ndim == 1:
            values = values[None, :]
        if values.ndim != 2 or values.shape[1] != len(RSI_GENES):
            raise ValueError(f"expression must be [n, 10] in RSI gene order, got {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError("RSI needs finite expression values for all 10 genes")
    ranks = rankdata(values, method="average", axis=1)  # [n, 10], highest expression = 10
    coef = np.array([RSI_COEFFICIENTS[g] for g in RSI_GENES])
    return ranks @ coef


def rsi_alpha_per_gy(rsi_value: float | np.ndarray,
                     beta_per_gy2: float = GARD_BETA_PER_GY2) -> np.ndarray:
    """α (Gy⁻¹) implied by RSI read as SF2 with GARD's fixed β: α = −ln(RSI)/2 − 2β; NaN where
    RSI ≤ 0 (:func:`engine.core.radiobiology.alpha_from_sf2` with ``beta_per_gy2``)."""
    return alpha_from_sf2(rsi_value, beta_per_gy2=beta_per_gy2)


def gard(
    rsi_value: float | np.ndarray,
    n_fractions: int = 30,
    dose_per_fraction_gy: float = 2.0,
    beta_per_gy2: float = GARD_BETA_PER_GY2,
) -> np.ndarray:
    """GARD = n·d·(α + β·d) with α from RSI (Gy, unitless effect); NaN where RSI ≤ 0.

    Args:
        rsi_value: RSI (scalar or array).
        n_fractions: number of fractions n (≥ 1).
        dose_per_fraction_gy: dose per fraction d, Gy (> 0).
        beta_per_gy2: β, Gy⁻² (default 0.05 as published).
    """
    if n_fractions < 1:
        raise ValueError(f"n_fractions must be at least 1, got {n_fractions}")
    if not dose_per_fraction_gy > 0:
        raise ValueError(f"dose_per_fraction_gy must be positive, got {dose_per_fraction_gy}")
    alpha = rsi_alpha_per_gy(rsi_value, beta_per_gy2)
    d = float(dose_per_fraction_gy)
    return n_fractions * d * (alpha + beta_per_gy2 * d)
