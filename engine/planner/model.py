"""Tumour and OAR response to a fractionated course (Ebrahimi & Lim, eqs. (4)–(7), (16)–(18)).

Everything is vectorised with numpy and broadcasts: biology parameters are arrays over
*scenarios* (one sampled biology each, shape ``[S]``), dose plans are arrays whose last axis is
the fraction (shape ``[..., N]``), and results take the broadcast shape of both (e.g.
``[P, S]`` for ``P`` plans scored on ``S`` scenarios, the exact oracle's case).

Unit conventions (the paper's printed units are inconsistent; these are the ones used here)
--------------------------------------------------------------------------------------------
* Doses ``d`` in Gy per fraction; α in Gy⁻¹; α/β in Gy, so β = α / (α/β) in Gy⁻².
* τ_g (repopulation), τ_d (dead-cell decay), τ_g^φ and τ_r^φ (OAR repopulation and repair) are
  **time constants in days**: the paper prints "days⁻¹" but uses them as ``exp(t/τ)`` with ``t``
  in days, and states τ_g = T_d / ln 2 for a doubling time T_d in days. ``inf`` switches the
  process off.
* The OER is dimensionless; hypoxic (doomed) cells have α_h = α/OER and β_h = β/OER² (paper).
* ρ (dimensionless, in [0, 1]) is the share of lethally hit viable cells that die at once; the
  rest become doomed (hypoxic, not cycling). ρ = 1 switches the doomed compartment off.
* Cell counts are relative to the initial clonogen number: the course starts at u = 1, w = m = 0,
  so v = u + w + m is the tumour volume as a fraction of the pre-treatment volume (volume ∝
  cell count, as in the paper's eq. (4)).
* Time: fraction k (1-based) is given on treatment day ``day_k`` (Mon–Fri, weekends skipped;
  :func:`treatment_days`). ``gap_k = day_{k+1} − day_k`` days (1 on weekdays, 3 over a weekend)
  is the time *after* fraction k during which its survivors repopulate and its dead cells decay;
  the last gap is 0 (the course is scored right after the last fraction). With this convention
  the repopulation terms of (16) and (18) sum to the overall treatment time T = day_N − day_1, as
  in the classic BED time factor T / (α τ_g).

Corrections and readings of the printed formulas (documented in ``docs/planner.md``)
----------------------------------------------------------------------------------
* (18) prints ``d + d/(α/β)``; the BED is ``d + d²/(α/β)`` (the quadratic term), used here.
* (16) is the *per-fraction* tumour BED, weighted by the compartment shares before the fraction;
  its dead-cell term ``+ (w/v) Δt/(α τ_d)`` is positive as printed (Theorem 2 relies on that
  sign) and is kept. The course BED is the sum over fractions.
* The surviving fraction is the clonogenic share ``(u + m) / u_0``: doomed cells can reoxygenate
  and return to the viable compartment (eq. (5)), so they count as survivors. With ρ = 1,
  τ_g = τ_d = ∞ this is exactly the LQ survival ``exp(−Σ (α d_k + β d_k²))``
  (:func:`engine.core.radiobiology.lq_survival`, which every fraction's kill here uses).
* The OAR receives ``d^φ = γ d`` per fraction (γ the sparing factor, mean OAR dose / mean tumour
  dose); its BED (18) depends on the plan only through Σ γ d_k (1 + γ d_k / (α/β)^φ).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from engine.core.radiobiology import lq_survival

__all__ = [
    "OarBiology",
    "Trajectory",
    "TumourBiology",
    "TumourState",
    "action_set",
    "bed_lower_bound_gy",
    "oar_bed_increment_gy",
    "oar_volume_step",
    "reference_continuation",
    "simulate",
    "treatment_days",
    "treatment_gaps_days",
    "tumour_bed_increment_gy",
    "tumour_step",
]

_TOL = 1e-9
"""Tolerance for comparisons of doses in Algorithm 2 (2.2 − 2.0 is 0.2000000000000002)."""


@dataclass(frozen=True)
class TumourBiology:
    """Tumour parameters of one or many scenarios (arrays broadcast against each other).

    Use :meth:`take` to select scenarios and :attr:`n_scenarios` for their number.
    """

    alpha_per_gy: Any
    """α of proliferating (oxic) cells, Gy⁻¹ (lung range 0.20–0.365)."""
    alpha_beta_gy: Any
    """α/β of the tumour, Gy (lung range 4–10); β = α / (α/β)."""
    tau_g_days: Any
    """Repopulation time constant of viable cells, days (lung 10–60; ``inf`` = none)."""
    tau_d_days: Any
    """Decay time constant of dead cells, days (lung 2–6; ``inf`` = dead cells stay)."""
    oer: Any = 1.7
    """Oxygen enhancement ratio of doomed (hypoxic) cells, ≥ 1 (lung 1.7)."""
    rho: Any = 0.8
    """Share of lethally hit viable cells that die at once, in [0, 1]; the rest become doomed.
    1 switches hypoxia (the doomed compartment) off."""

    def arrays(self) -> dict[str, np.ndarray]:
        """Every parameter as a float64 array, broadcast to a common shape."""
        values = np.broadcast_arrays(
            *(np.asarray(getattr(self, f.name), dtype=np.float64) for f in fields(self))
        )
        return {f.name: v for f, v in zip(fields(self), values, strict=True)}

    @property
    def n_scenarios(self) -> int:
        """Number of scenarios (the size of the broadcast parameters; 1 for scalars)."""
        return int(self.arrays()["alpha_per_gy"].size)

    def take(self, index: Any) -> TumourBiology:
        """The scenarios at ``index`` (array index into the broadcast 1-D parameters)."""
        return TumourBiology(**{k: v[index] for k, v in self.arrays().items()})

    @property
    def beta_per_gy2(self) -> np.ndarray:
        """β = α / (α/β), Gy⁻²."""
        return np.asarray(self.alpha_per_gy, float) / np.asarray(self.alpha_beta_gy, float)


@dataclass(frozen=True)
class OarBiology:
    """Organ-at-risk parameters (lung defaults of the paper: Seppenwoolde 2003, Bortfeld 2015)."""

    alpha_per_gy: float = 0.3
    """α of the OAR, Gy⁻¹."""
    alpha_beta_gy: float = 3.0
    """α/β of the OAR, Gy."""
    tau_g_days: float = 15.0
    """OAR repopulation time constant, days (``inf`` = none)."""
    tau_r_days: float = 3.5
    """OAR repair time constant, days, as in (17)–(18) (``inf`` = none)."""
    sparing_gamma: float = 0.7
    """Sparing factor γ: mean OAR dose per fraction / tumour dose per fraction, in (0, 1]."""


@dataclass(frozen=True)
class TumourState:
    """Cell compartments relative to the initial clonogen number (arrays, same shape)."""

    viable: Any
    """u: viable, cycling cells."""
    dead: Any
    """w: dead cells being cleared."""
    doomed: Any
    """m: doomed (hypoxic, non-cycling) cells, which can reoxygenate and return to u."""

    @property
    def volume(self) -> Any:
        """v = u + w + m, eq. (4): tumour volume as a fraction of the initial volume."""
        return self.viable + self.dead + self.doomed

    @property
    def surviving_fraction(self) -> Any:
        """Clonogenic surviving fraction (u + m) / u_0."""
        return self.viable + self.doomed

    @classmethod
    def initial(cls, shape: tuple[int, ...] = ()) -> TumourState:
        """u = 1, w = m = 0 everywhere."""
        return cls(np.ones(shape), np.zeros(shape), np.zeros(shape))


def treatment_days(n_fractions: int, fractions_per_week: int = 5) -> np.ndarray:
    """Day (0-based, day 0 = Monday of week 1) of each fraction, weekends skipped, shape [N]."""
    if n_fractions < 1 or not 1 <= fractions_per_week <= 7:
        raise ValueError(
            f"n_fractions must be ≥ 1 and fractions_per_week in 1..7, got {n_fractions}, "
            f"{fractions_per_week}"
        )
    k = np.arange(n_fractions)
    return (k // fractions_per_week) * 7 + k % fractions_per_week


def treatment_gaps_days(n_fractions: int, fractions_per_week: int = 5) -> np.ndarray:
    """Days from each fraction to the next, shape [N]; the last entry is 0 (end of course)."""
    days = treatment_days(n_fractions, fractions_per_week).astype(np.float64)
    return np.append(np.diff(days), 0.0)


def _growth(gap_days: Any, tau_days: Any) -> Any:
    """exp(t / τ); 1 for τ = inf."""
    with np.errstate(divide="ignore"):
        return np.exp(np.asarray(gap_days, float) / np.asarray(tau_days, float))


def tumour_step(state: TumourState, dose_gy: Any, gap_days: Any, bio: TumourBiology
                ) -> TumourState:
    """One fraction of ``dose_gy`` then ``gap_days`` of regrowth and clearance, eqs. (5)–(7).

    u' = u S_p e^{t/τ_g} + m S_h;  w' = [ρ u (1 − S_p) + m (1 − S_h) + w] e^{−t/τ_d};
    m' = (1 − ρ) u (1 − S_p), with S_p = exp(−α d − β d²), S_h = exp(−α d/OER − β d²/OER²).
    Every term is a product of non-negative factors, so counts stay ≥ 0.
    """
    p = bio.arrays()
    alpha, beta, oer, rho = p["alpha_per_gy"], p["alpha_beta_gy"], p["oer"], p["rho"]
    beta = alpha / beta
    s_p = lq_survival(dose_gy, alpha, beta)
    s_h = lq_survival(dose_gy, alpha / oer, beta / (oer * oer))
    decay = 1.0 / _growth(gap_days, p["tau_d_days"])
    u, w, m = state.viable, state.dead, state.doomed
    killed = u * (1.0 - s_p)
    return TumourState(
        viable=u * s_p * _growth(gap_days, p["tau_g_days"]) + m * s_h,
        dead=(rho * killed + m * (1.0 - s_h) + w) * decay,
        doomed=(1.0 - rho) * killed,
    )


def _bed_coefficients(state: TumourState, gap_days: Any, bio: TumourBiology
                      ) -> tuple[Any, Any, Any]:
    """(a, b, c) of BED_k^T(d) = a d² + b d + c (Theorem 2), Gy⁻¹, 1 and Gy."""
    p = bio.arrays()
    alpha, ab, oer = p["alpha_per_gy"], p["alpha_beta_gy"], p["oer"]
    u, w, m = state.viable, state.dead, state.doomed
    v = state.volume
    a = (oer * oer * u + m) / (oer * oer * ab * v)
    b = (oer * u + m) / (oer * v)
    t = np.asarray(gap_days, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        regrow = np.where(np.isinf(p["tau_g_days"]), 0.0, t / (alpha * p["tau_g_days"]))
        clear = np.where(np.isinf(p["tau_d_days"]), 0.0, t / (alpha * p["tau_d_days"]))
    c = -(u / v) * regrow + (w / v) * clear
    return a, b, c


def tumour_bed_increment_gy(state: TumourState, dose_gy: Any, gap_days: Any,
                            bio: TumourBiology) -> Any:
    """Tumour BED of one fraction, eq. (16), Gy, from the compartment shares before it.

    BED_k = −(u/v) Δt/(α τ_g) + (w/v) Δt/(α τ_d) + (u/v)(d + d²/(α/β))
            + (m/v)(d/OER + d²/(OER² α/β)), with Δt = ``gap_days`` (the gap after fraction k).
    """
    a, b, c = _bed_coefficients(state, gap_days, bio)
    d = np.asarray(dose_gy, dtype=np.float64)
    return a * d * d + b * d + c


def bed_lower_bound_gy(state: TumourState, gap_days: Any, bio: TumourBiology) -> Any:
    """Theorem 2: the dose d_l ≥ 0 above which the fraction's tumour BED (16) is ≥ 0, Gy.

    0 when u/w ≤ τ_g/τ_d (c ≥ 0), else the positive root (−b + √(b² − 4ac)) / (2a). BED (16)
    is a convex quadratic with a, b > 0, so it increases for every d ≥ 0 and is ≥ 0 above d_l.
    """
    a, b, c = _bed_coefficients(state, gap_days, bio)
    root = (-b + np.sqrt(np.maximum(b * b - 4.0 * a * c, 0.0))) / (2.0 * a)
    return np.where(c >= 0.0, 0.0, np.maximum(root, 0.0))


def oar_bed_increment_gy(dose_gy: Any, gap_days: Any, oar: OarBiology) -> Any:
    """OAR BED of one fraction, eq. (18) with the quadratic term restored, Gy.

    BED^φ_k = d^φ + (d^φ)²/(α/β)^φ − Δt/(τ_g^φ α^φ) − Δt/(τ_r^φ α^φ), d^φ = γ d.
    """
    d = oar.sparing_gamma * np.asarray(dose_gy, dtype=np.float64)
    t = np.asarray(gap_days, dtype=np.float64)
    time_term = sum(0.0 if math.isinf(tau) else 1.0 / (tau * oar.alpha_per_gy)
                    for tau in (oar.tau_g_days, oar.tau_r_days))
    return d + d * d / oar.alpha_beta_gy - t * time_term


def oar_volume_step(volume: Any, dose_gy: Any, gap_days: Any, oar: OarBiology) -> Any:
    """OAR functional volume after one fraction and its gap, eq. (17) (relative units)."""
    d = oar.sparing_gamma * np.asarray(dose_gy, dtype=np.float64)
    beta = oar.alpha_per_gy / oar.alpha_beta_gy
    return (volume * lq_survival(d, oar.alpha_per_gy, beta)
            * _growth(gap_days, oar.tau_g_days) * _growth(gap_days, oar.tau_r_days))


@dataclass(frozen=True)
class Trajectory:
    """A simulated course. Arrays have the broadcast shape ``B`` of plans × scenarios, then a
    time axis of N + 1 entries: index 0 before fraction 1, index k after fraction k and its gap.
    """

    viable: np.ndarray
    """u, [*B, N + 1]."""
    dead: np.ndarray
    """w, [*B, N + 1]."""
    doomed: np.ndarray
    """m, [*B, N + 1]."""
    tumour_bed_gy: np.ndarray
    """Cumulative tumour BED (16) after k fractions, Gy, [*B, N + 1] (0 at index 0)."""
    oar_bed_gy: np.ndarray
    """Cumulative OAR BED (18) after k fractions, Gy, [*B, N + 1] (0 at index 0)."""

    @property
    def volume(self) -> np.ndarray:
        """v / v_0, [*B, N + 1]."""
        return self.viable + self.dead + self.doomed

    @property
    def surviving_fraction(self) -> np.ndarray:
        """(u + m) / u_0, [*B, N + 1]."""
        return self.viable + self.doomed


def simulate(doses_gy: Any, bio: TumourBiology, oar: OarBiology,
             gaps_days: np.ndarray) -> Trajectory:
    """Run a whole course.

    Args:
        doses_gy: dose per fraction, Gy, shape ``[..., N]`` (broadcast against the biology).
        bio: tumour biology; its arrays broadcast against ``doses_gy[..., 0]``.
        oar: OAR parameters (scalars).
        gaps_days: days after each fraction, shape [N] (:func:`treatment_gaps_days`).

    Returns:
        The :class:`Trajectory`, arrays ``[*B, N + 1]``.
    """
    doses = np.asarray(doses_gy, dtype=np.float64)
    n = doses.shape[-1]
    if gaps_days.shape != (n,):
        raise ValueError(f"gaps_days must have shape ({n},), got {gaps_days.shape}")
    shape = np.broadcast_shapes(doses.shape[:-1], bio.arrays()["alpha_per_gy"].shape)
    state = TumourState.initial(shape)
    cols = {k: [np.broadcast_to(getattr(state, k), shape)] for k in ("viable", "dead", "doomed")}
    bed_t, bed_o = [np.zeros(shape)], [np.zeros(shape)]
    for k in range(n):
        d, t = doses[..., k], gaps_days[k]
        bed_t.append(bed_t[-1] + tumour_bed_increment_gy(state, d, t, bio))
        bed_o.append(bed_o[-1] + np.broadcast_to(oar_bed_increment_gy(d, t, oar), shape))
        state = tumour_step(state, d, t, bio)
        for key in cols:
            cols[key].append(np.broadcast_to(getattr(state, key), shape))
    return Trajectory(
        viable=np.stack(cols["viable"], -1), dead=np.stack(cols["dead"], -1),
        doomed=np.stack(cols["doomed"], -1), tumour_bed_gy=np.stack(bed_t, -1),
        oar_bed_gy=np.stack(bed_o, -1),
    )


def reference_continuation(reference_doses_gy: np.ndarray, bio: TumourBiology,
                           gaps_days: np.ndarray) -> np.ndarray:
    """Coefficients turning a state after k fractions into the final surviving fraction if the
    rest of the course follows the reference plan: SF_k · SF^Ref_{N−k} of reward (15).

    The dynamics (5)–(7) are linear in (u, m) (w never feeds back), so the final (u + m) reached
    from (u_k, m_k) through reference fractions k+1..N is ``g_k · (u_k, m_k)``; ``g`` comes from
    a backward pass. Returns ``g`` with shape ``[S, N + 1, 2]`` (index k = after k fractions).
    """
    p = bio.arrays()
    alpha, oer, rho = p["alpha_per_gy"], p["oer"], p["rho"]
    beta = alpha / p["alpha_beta_gy"]
    n = reference_doses_gy.shape[-1]
    g = np.zeros((*alpha.shape, n + 1, 2))
    g[..., n, :] = 1.0
    for k in range(n - 1, -1, -1):
        d, t = reference_doses_gy[k], gaps_days[k]
        s_p = lq_survival(d, alpha, beta)
        s_h = lq_survival(d, alpha / oer, beta / (oer * oer))
        gu, gm = g[..., k + 1, 0], g[..., k + 1, 1]
        # (u', m') = A (u, m), A = [[S_p e^{t/τ_g}, S_h], [(1 − ρ)(1 − S_p), 0]]; g_k = Aᵀ g_{k+1}
        g[..., k, 0] = gu * s_p * _growth(t, p["tau_g_days"]) + gm * (1.0 - rho) * (1.0 - s_p)
        g[..., k, 1] = gu * s_h
    return g


def action_set(dose_gy: float, lower_gy: float, upper_gy: float, delta_gy: float
               ) -> tuple[float, ...]:
    """Algorithm 2 (appendix A): candidate doses per fraction around the conventional ``dose_gy``.

    Args:
        dose_gy: conventional dose per fraction d, Gy.
        lower_gy, upper_gy: per-fraction bounds d̲ ≤ d ≤ d̄, Gy.
        delta_gy: step Δ > 0, Gy.

    Returns:
        Sorted distinct doses, Gy (rounded to 1e-9 Gy). Comparisons use a 1e-9 Gy tolerance so
        that 2.2 − 2.0 counts as Δ = 0.2.
    """
    d, lo, hi, step = float(dose_gy), float(lower_gy), float(upper_gy), float(delta_gy)
    if not (step > 0 and lo <= d <= hi):
        raise ValueError(
            f"action_set needs delta_gy > 0 and lower_gy ≤ dose_gy ≤ upper_gy, got "
            f"dose_gy={d}, lower_gy={lo}, upper_gy={hi}, delta_gy={step}"
        )
    up, down = hi - d, d - lo

    def within(x: float) -> bool:  # 0 ≤ x ≤ Δ (with tolerance)
        return -_TOL <= x <= step + _TOL

    def ceil(x: float) -> int:
        return max(1, math.ceil(x / step - _TOL))

    if _TOL < up <= step + _TOL and _TOL < down <= step + _TOL:
        doses = [lo, d, hi]
    elif up > step + _TOL and within(down):
        p = ceil(up)
        doses = [lo, d, *(d + i * up / p for i in range(1, p + 1))]
    elif down > step + _TOL and within(up):
        p = ceil(down)
        doses = [*(d - i * down / p for i in range(1, p + 1)), d, hi]
    elif down > step + _TOL and up > step + _TOL:
        p_lo, p_hi = ceil(down), ceil(up)
        doses = [*(d - i * down / p_lo for i in range(1, p_lo + 1)), d,
                 *(d + j * up / p_hi for j in range(1, p_hi + 1))]
    else:  # a bound coincides with d: the printed fallback, clipped to [d̲, d̄]
        doses = [max(lo, d - step), d, min(hi, d + step)]
    return tuple(sorted({round(x, 9) for x in doses}))
