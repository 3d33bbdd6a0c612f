"""Radiobiology shared by every model: LQL effect, BED, EQD2, gEUD transition, outcome curves,
LQ cell survival and SF2 ↔ α.

Every function is vectorised and broadcasts its arguments. Each accepts numpy arrays (or Python
floats) and returns numpy arrays, or (all but the SF2 ↔ α conversions, which are numpy only)
accepts ``torch.Tensor`` arguments and returns tensors that carry gradients, so learned models can
differentiate through the same formulas the virtual trials use. Doses are in Gy, α/β and the LQL
transition dose D_T in Gy, α in Gy⁻¹, β in Gy⁻²; ``threshold_gy=inf`` gives plain LQ.

Sources: ARCliDS (Niraula et al. 2022, supplement Eq. S1 and Table S1) for the LQL effect and the
gEUD transition; the equations there are images, the forms below are the standard ones
reconstructed in DESIGN.md §3. LQ survival S = exp(−α d − β d²) per fraction (Fowler 1989); SF2
is S at one 2 Gy fraction, the surviving fraction assays report (the planner's tumour and OAR
models, the SF2 model's α, RSI read as SF2 for GARD, Scott et al. 2017).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from scipy.special import expit, ndtr

__all__ = [
    "alpha_from_sf2",
    "bed",
    "eqd2",
    "geud",
    "geud_transition",
    "geud_transition_general",
    "lkb_ntcp",
    "logistic_outcome",
    "logistic_tcp",
    "lq_survival",
    "lql_effect",
    "normalise_geud",
    "sf2_from_alpha",
]

Array = Any  # numpy array, float or torch.Tensor; see the module docstring


def _is_torch(*values: Any) -> bool:
    return any(isinstance(v, torch.Tensor) for v in values)


def _as(values: tuple[Any, ...]) -> tuple[Any, ...]:
    """Bring every argument to one array type (torch when any is a tensor), float64 for numpy."""
    if _is_torch(*values):
        ref = next(v for v in values if isinstance(v, torch.Tensor))
        return tuple(
            v if isinstance(v, torch.Tensor) else torch.as_tensor(v, dtype=ref.dtype)
            for v in values
        )
    return tuple(np.asarray(v, dtype=np.float64) for v in values)


def _minimum(a: Any, b: Any) -> Any:
    return torch.minimum(a, b) if isinstance(a, torch.Tensor) else np.minimum(a, b)


def _maximum(a: Any, b: Any) -> Any:
    return torch.maximum(a, b) if isinstance(a, torch.Tensor) else np.maximum(a, b)


def _where(cond: Any, a: Any, b: Any) -> Any:
    return torch.where(cond, a, b) if isinstance(cond, torch.Tensor) else np.where(cond, a, b)


def _ones_like(x: Any) -> Any:
    return torch.ones_like(x) if isinstance(x, torch.Tensor) else np.ones_like(x)


def _sigmoid(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return torch.sigmoid(x)
    return expit(x)  # overflow-free and accurate in both tails


def lql_effect(dose_gy: Array, alpha_beta_gy: Array, threshold_gy: Array = math.inf) -> Array:
    """LQL biological effect of one fraction, in Gy (the BED of a single fraction).

    f(d) = d (1 + d/(α/β))                                   for d < D_T
    f(d) = D_T + D_T²/(α/β) + (1 + 2 D_T/(α/β)) (d − D_T)     for d ≥ D_T

    Above D_T the effect grows linearly with the slope the LQ curve has at D_T, so f is continuous
    and continuously differentiable (C¹) at D_T. Written with d_q = min(d, D_T) so that
    ``threshold_gy=inf`` (plain LQ) produces no inf·0 and gradients stay finite.

    Args:
        dose_gy: dose per fraction, Gy, ≥ 0.
        alpha_beta_gy: α/β of the tissue, Gy, > 0.
        threshold_gy: LQL transition dose D_T, Gy, > 0; ``inf`` for pure LQ.
    """
    dose_gy, alpha_beta_gy, threshold_gy = _as((dose_gy, alpha_beta_gy, threshold_gy))
    quad_dose = _minimum(dose_gy, threshold_gy)
    excess = _maximum(dose_gy - threshold_gy, 0.0 * dose_gy)
    return (
        quad_dose * (1.0 + quad_dose / alpha_beta_gy)
        + (1.0 + 2.0 * quad_dose / alpha_beta_gy) * excess
    )


def bed(
    n_fractions: Array, dose_gy: Array, alpha_beta_gy: Array, threshold_gy: Array = math.inf
) -> Array:
    """Biologically effective dose, Gy: BED = N · f(d) for N equal fractions of ``dose_gy``."""
    return n_fractions * lql_effect(dose_gy, alpha_beta_gy, threshold_gy)


def eqd2(
    n_fractions: Array, dose_gy: Array, alpha_beta_gy: Array, threshold_gy: Array = math.inf
) -> Array:
    """Equivalent dose in 2-Gy fractions, Gy: EQD2 = BED / (1 + 2/(α/β))."""
    return bed(n_fractions, dose_gy, alpha_beta_gy, threshold_gy) / (1.0 + 2.0 / alpha_beta_gy)


def geud_transition_general(
    g_eval: Array,
    n_eval: Array,
    n_adapt: Array,
    d_eval_gy: Array,
    d_adapt_gy: Array,
    alpha_beta_gy: Array,
    threshold_gy: Array = math.inf,
) -> Array:
    """gEUD after the adaptive phase in the general form g_eval [1 + n_a f(d_a) / (n_e f(d_e))].

    The per-fraction gEUD increment is proportional to the LQL effect f(d) (ARCliDS Eq. 1–2), so
    the adaptive increment over the evaluation one is n_adapt f(d_adapt) / (n_eval f(d_eval)).

    Args:
        g_eval: gEUD at the end of the evaluation phase (mid-treatment), Gy, > 0.
        n_eval: number of evaluation fractions N_eval, ≥ 1.
        n_adapt: number of adaptive fractions N_adapt − N_eval, ≥ 0.
        d_eval_gy: dose per fraction in the evaluation phase, Gy, > 0.
        d_adapt_gy: dose per fraction in the adaptive phase, Gy, ≥ 0.
        alpha_beta_gy: α/β of the structure, Gy, > 0.
        threshold_gy: LQL transition dose D_T of the structure, Gy; ``inf`` for LQ.

    Returns:
        g_adapt, the gEUD at the end of treatment, in the units of ``g_eval``.
    """
    f_eval = lql_effect(d_eval_gy, alpha_beta_gy, threshold_gy)
    f_adapt = lql_effect(d_adapt_gy, alpha_beta_gy, threshold_gy)
    return g_eval * (1.0 + (n_adapt / n_eval) * f_adapt / f_eval)


def geud_transition(
    g_eval: Array,
    n_eval: Array,
    n_adapt: Array,
    d_eval_gy: Array,
    d_adapt_gy: Array,
    alpha_beta_gy: Array,
    threshold_gy: Array = math.inf,
) -> Array:
    """gEUD after the adaptive phase by the four branches of ARCliDS Table S1.

    With γ = α/β + 2 D_T and r = n_adapt / n_eval:

    - d_eval < D_T, d_adapt < D_T:  g_eval (1 + r (d_adapt/d_eval)(d_adapt + α/β)/(d_eval + α/β))
    - d_eval < D_T ≤ d_adapt:       g_eval (1 + r (γ d_adapt − D_T²) / (d_eval (d_eval + α/β)))
    - d_adapt < D_T ≤ d_eval:       g_eval (1 + r d_adapt (d_adapt + α/β) / (γ d_eval − D_T²))
    - both ≥ D_T:                   g_eval (1 + r (γ d_adapt − D_T²) / (γ d_eval − D_T²))

    Each branch equals :func:`geud_transition_general` (the α/β factor cancels in the ratio);
    the result is strictly increasing in ``d_adapt_gy``. Arguments as there.
    """
    g_eval, n_eval, n_adapt, d_eval, d_adapt, ab, d_t = _as(
        (g_eval, n_eval, n_adapt, d_eval_gy, d_adapt_gy, alpha_beta_gy, threshold_gy)
    )
    ratio = n_adapt / n_eval
    # With D_T = inf the linear branches are never selected; a finite stand-in keeps their
    # (discarded) values finite so torch.where does not propagate nan gradients.
    finite_dt = _where(d_t < math.inf, d_t, _ones_like(d_t))
    gamma = ab + 2.0 * finite_dt
    quad_eval = d_eval * (d_eval + ab)
    quad_adapt = d_adapt * (d_adapt + ab)
    lin_eval = gamma * d_eval - finite_dt**2
    lin_adapt = gamma * d_adapt - finite_dt**2
    eval_linear = d_eval >= d_t
    adapt_linear = d_adapt >= d_t
    numerator = _where(adapt_linear, lin_adapt, quad_adapt)
    denominator = _where(eval_linear, lin_eval, quad_eval)
    return g_eval * (1.0 + ratio * numerator / denominator)


def normalise_geud(geud_gy: Array, min_gy: float, max_gy: float) -> Array:
    """Min–max normalised gEUD, ĝ = (g − g_min)/(g_max − g_min), with the protocol's fixed range.

    The range is protocol data (not fitted to a data set) so that every model, trial and
    clinic normalises identically. Values outside the range map outside [0, 1]; nothing is clipped.
    """
    return (geud_gy - min_gy) / (max_gy - min_gy)


def logistic_outcome(g_norm: Array, mu: Array, t: Array) -> Array:
    """Generalised-logistic outcome probability p = 1 / (1 + exp(−(ĝ − μ)/T)) (ARCliDS Eq. 3).

    The printed paper drops the minus sign in the exponent, which would make the probability
    fall with dose and contradict its own monotonicity claim; we use the sign that makes p
    increase with ĝ for T > 0 (DESIGN.md §3).

    Args:
        g_norm: min–max normalised gEUD ĝ (dimensionless; about 0–1 across the protocol range).
        mu: dose (in ĝ units) at which p = 0.5.
        t: width of the sigmoid in ĝ units, > 0.
    """
    g_norm, mu, t = _as((g_norm, mu, t))
    return _sigmoid((g_norm - mu) / t)


def geud(dose_bins_gy: Array, volume_fractions: Array, a: float) -> Array:
    """Generalised equivalent uniform dose, Gy: (Σ v_i D_i^a)^(1/a) over a differential DVH.

    Args:
        dose_bins_gy: dose of each DVH bin, Gy, > 0; shape [..., n_bins].
        volume_fractions: fractional volume of each bin; shape [..., n_bins], summing to 1.
        a: gEUD exponent (negative for targets, ≈ 1 for parallel organs, large for serial ones).
    """
    dose, vol = _as((dose_bins_gy, volume_fractions))
    if a == 0:
        raise ValueError("gEUD exponent a=0 is undefined; use a geometric mean instead")
    if isinstance(dose, torch.Tensor):
        return (vol * dose**a).sum(-1) ** (1.0 / a)
    return np.sum(vol * dose**a, axis=-1) ** (1.0 / a)


def lkb_ntcp(geud_gy: Array, td50_gy: Array, m: Array) -> Array:
    """Lyman–Kutcher–Burman NTCP: Φ((gEUD − TD50) / (m · TD50)).

    The volume parameter n enters through the gEUD (a = 1/n). Reference values used by the
    virtual trials: radiation pneumonitis on mean lung dose TD50 = 30.8 Gy, m = 0.37, n = 0.99
    (Seppenwoolde et al. 2003); radiation-induced liver disease TD50 = 39.8 Gy, m = 0.12,
    n = 0.97 (Dawson et al. 2002, QUANTEC).
    """
    geud_gy, td50_gy, m = _as((geud_gy, td50_gy, m))
    z = (geud_gy - td50_gy) / (m * td50_gy)
    if isinstance(z, torch.Tensor):
        return torch.special.ndtr(z)
    return ndtr(z)


def logistic_tcp(dose_gy: Array, d50_gy: Array, gamma50: Array) -> Array:
    """Population logistic TCP, 1 / (1 + (D50/D)^(4 γ50)), D in Gy (> 0).

    γ50 is the normalised slope at D50. NSCLC local control: D50 = 84.5 Gy, γ50 = 1.5
    (Martel et al. 1999).
    """
    dose_gy, d50_gy, gamma50 = _as((dose_gy, d50_gy, gamma50))
    log = torch.log if isinstance(dose_gy, torch.Tensor) else np.log
    return _sigmoid(4.0 * gamma50 * log(dose_gy / d50_gy))


# --------------------------------------------------------------------------------------------
# LQ cell survival and SF2 ↔ α


def lq_survival(
    dose_gy: Array, alpha_per_gy: Array, beta_per_gy2: Array, n_fractions: Array = 1
) -> Array:
    """LQ surviving fraction after ``n_fractions`` equal fractions: S = exp(−n (α d + β d²)).

    Plain LQ: complete repair between fractions, no repopulation. Models with time factors (the
    planner's cell compartments) apply it one fraction at a time.

    Args:
        dose_gy: dose per fraction d, Gy, ≥ 0.
        alpha_per_gy: α, Gy⁻¹, ≥ 0.
        beta_per_gy2: β, Gy⁻², ≥ 0 (β = α / (α/β)).
        n_fractions: number of fractions n, ≥ 0 (1: the survival of one fraction).

    Returns:
        Surviving fraction in (0, 1], non-increasing in dose, α, β and n.
    """
    d, alpha, beta, n = _as((dose_gy, alpha_per_gy, beta_per_gy2, n_fractions))
    exp = torch.exp if isinstance(d, torch.Tensor) else np.exp
    return exp(-(n * (alpha * d + beta * d * d)))


def _beta(alpha_per_gy: Any, alpha_beta_gy: float | None, beta_per_gy2: float | None) -> Any:
    """β from exactly one of α/β (β = α/(α/β)) and β, Gy⁻²."""
    if (alpha_beta_gy is None) == (beta_per_gy2 is None):
        raise ValueError("give exactly one of alpha_beta_gy and beta_per_gy2")
    if alpha_beta_gy is not None:
        if not alpha_beta_gy > 0:
            raise ValueError(f"alpha_beta_gy must be positive, got {alpha_beta_gy}")
        return np.asarray(alpha_per_gy, dtype=float) / alpha_beta_gy
    if not beta_per_gy2 >= 0:
        raise ValueError(f"beta_per_gy2 must be non-negative, got {beta_per_gy2}")
    return beta_per_gy2


def sf2_from_alpha(
    alpha_per_gy: float | np.ndarray,
    alpha_beta_gy: float | None = None,
    *,
    beta_per_gy2: float | None = None,
) -> np.ndarray:
    """SF2, the LQ surviving fraction of one 2 Gy fraction: exp(−2α − 4β).

    Give β either through the tissue's α/β (β = α/(α/β), the SF2 model's convention) or fixed
    (``beta_per_gy2``, GARD's convention). Inverse of :func:`alpha_from_sf2`.

    Args:
        alpha_per_gy: α, Gy⁻¹ (SF2 < 1 for α > 0 with β ≥ 0).
        alpha_beta_gy: α/β, Gy, > 0.
        beta_per_gy2: β, Gy⁻², ≥ 0.

    Returns:
        SF2 (float array), in (0, 1) for α > 0.
    """
    alpha = np.asarray(alpha_per_gy, dtype=float)
    return lq_survival(2.0, alpha, _beta(alpha, alpha_beta_gy, beta_per_gy2))


def alpha_from_sf2(
    sf2: float | np.ndarray,
    alpha_beta_gy: float | None = None,
    *,
    beta_per_gy2: float | None = None,
) -> np.ndarray:
    """α (Gy⁻¹) from the surviving fraction at 2 Gy, SF2 = exp(−2α − 4β); NaN where undefined.

    With a fixed α/β (β = α/(α/β), the SF2 model's convention): α = −ln SF2 / (2 + 4/(α/β)),
    defined for SF2 in (0, 1) (α > 0); SF2 ≤ 0 or ≥ 1 gives NaN. With a fixed β (GARD's
    convention, RSI read as SF2): α = −ln SF2 / 2 − 2β, defined for every SF2 > 0 (α ≤ 0 for
    SF2 ≥ exp(−4β)); SF2 ≤ 0 gives NaN. Inverse of :func:`sf2_from_alpha`.

    Args:
        sf2: surviving fraction at 2 Gy (scalar or array).
        alpha_beta_gy: α/β, Gy, > 0 (exactly one of ``alpha_beta_gy`` and ``beta_per_gy2``).
        beta_per_gy2: β, Gy⁻², ≥ 0.

    Returns:
        α, Gy⁻¹, float array shaped like ``sf2``.

    Raises:
        ValueError: neither or both of α/β and β given, α/β ≤ 0 or β < 0.
    """
    _beta(0.0, alpha_beta_gy, beta_per_gy2)
    value = np.asarray(sf2, dtype=float)
    if alpha_beta_gy is not None:
        ok = (value > 0) & (value < 1)
        safe = np.where(ok, value, 0.5)
        return np.where(ok, -np.log(safe) / (2.0 + 4.0 / alpha_beta_gy), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(value > 0, -np.log(np.where(value > 0, value, 1.0)) / 2.0
                        - 2.0 * beta_per_gy2, np.nan)
