"""A structure's dose-volume histogram and everything computed from it: D/V metrics, mean, gEUD,
EQD2, the cumulative curve.

One representation for every source: a **differential DVH of point masses** — ascending doses
``dose_gy[i]``, each holding the fraction ``fraction[i]`` of the structure's volume.

* From voxels (a DICOM plan, :func:`from_samples`): doses are binned in ``bin_gy`` steps (0.01 Gy)
  and each bin sits at the *volume-weighted mean dose of its voxels*, so the mean dose is exact
  and a uniform dose gives one bin at exactly that dose (gEUD = dose for every a).
* From a cumulative table (a DVH file, :func:`from_cumulative`): the curve is interpolated
  linearly onto a 0.01-Gy grid and each step becomes a mass at its midpoint, so the mean dose is
  the trapezoid integral of the given curve.

Metric definitions (the usual ones, e.g. ICRU 83 for D98 %/D2 %; volumes are of the structure):

* ``D_x`` (x % or x cm³): the minimum dose of the hottest x of the volume, i.e. the dose of the
  mass at which the volume receiving at least that dose first reaches x (no interpolation
  between masses: their spacing is the 0.01-Gy bin);
* ``V_x``: the volume receiving at least x Gy;
* ``max``: D0.03cc, the near-maximum (the point maximum when the volume is unknown or below
  0.03 cm³);
* gEUD = (Σ f_i D_i^a)^(1/a) (:func:`engine.core.radiobiology.geud`); with a < 0 a cold mass at
  0 Gy makes it 0.

EQD2 (:meth:`DVH.eqd2`) converts each mass's dose with the pure-LQ
:func:`engine.core.radiobiology.eqd2`, its dose per fraction being its dose / the plan's fractions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.core.protocols.plan import DVHMetric
from engine.core.radiobiology import eqd2, geud

__all__ = [
    "BIN_GY",
    "DVH",
    "NEAR_MAX_CC",
    "from_cumulative",
    "from_differential",
    "from_samples",
]

BIN_GY = 0.01
"""Dose bin of a DVH built from voxels or resampled from a table, Gy."""
NEAR_MAX_CC = 0.03
"""Volume of the near-maximum dose D0.03cc, cm³."""


@dataclass(frozen=True)
class DVH:
    """A differential DVH of point masses (see the module docstring)."""

    dose_gy: np.ndarray
    """Dose of each mass, Gy, ascending, ≥ 0; shape [B]."""
    fraction: np.ndarray
    """Fraction of the structure's volume at each dose, > 0, summing to 1; shape [B]."""
    total_volume_cc: float | None
    """The structure's volume, cm³; None when the source gave only relative volumes."""

    def __post_init__(self) -> None:
        if self.dose_gy.shape != self.fraction.shape or self.dose_gy.ndim != 1:
            raise ValueError("dose_gy and fraction must be 1-D arrays of the same length")
        if len(self.dose_gy) == 0:
            raise ValueError("a DVH needs at least one dose bin")

    # ---- volumes and doses ------------------------------------------------------------------

    @property
    def volume_cc(self) -> np.ndarray | None:
        """Volume of each mass, cm³ (None when the volume is unknown)."""
        return None if self.total_volume_cc is None else self.fraction * self.total_volume_cc

    @property
    def mean_gy(self) -> float:
        return float(np.sum(self.fraction * self.dose_gy))

    @property
    def min_gy(self) -> float:
        return float(self.dose_gy[0])

    @property
    def point_max_gy(self) -> float:
        """The highest dose of any mass, Gy."""
        return float(self.dose_gy[-1])

    @property
    def near_max_gy(self) -> float:
        """D0.03cc; the point maximum when the volume is unknown or smaller than 0.03 cm³."""
        if self.total_volume_cc is None or self.total_volume_cc <= NEAR_MAX_CC:
            return self.point_max_gy
        return self.dose_at_fraction(NEAR_MAX_CC / self.total_volume_cc)

    def _received(self) -> np.ndarray:
        """Fraction of the volume receiving at least ``dose_gy[i]``, shape [B] (1 at i = 0)."""
        return np.cumsum(self.fraction[::-1])[::-1]

    def dose_at_fraction(self, volume_fraction: float) -> float:
        """D_x for x = ``volume_fraction`` of the volume (0 < x ≤ 1), Gy."""
        if not 0.0 < volume_fraction <= 1.0:
            raise ValueError(f"volume fraction {volume_fraction!r} must be in (0, 1]")
        received = self._received()
        # The last mass whose "receiving at least" volume still reaches x (tolerance for sums).
        k = int(np.nonzero(received >= volume_fraction - 1e-12)[0][-1])
        return float(self.dose_gy[k])

    def dose_at_volume_cc(self, volume_cc: float) -> float | None:
        """D_x for x in cm³ (None when the volume is unknown); the minimum dose when x is at least
        the structure's volume."""
        if self.total_volume_cc is None:
            return None
        return self.dose_at_fraction(min(1.0, volume_cc / self.total_volume_cc))

    def fraction_at_dose(self, dose_gy: float) -> float:
        """Fraction of the volume receiving at least ``dose_gy``."""
        return float(np.sum(self.fraction[self.dose_gy >= dose_gy - 1e-9]))

    def geud_gy(self, a: float) -> float:
        """gEUD with exponent ``a`` (≠ 0), Gy."""
        with np.errstate(divide="ignore", over="ignore"):
            return float(geud(self.dose_gy, self.fraction, a))

    # ---- transformations --------------------------------------------------------------------

    def scaled(self, factor: float) -> DVH:
        """Every dose × ``factor`` (> 0): the same plan delivered in other fraction numbers."""
        return DVH(self.dose_gy * factor, self.fraction, self.total_volume_cc)

    def eqd2(self, n_fractions: int, alpha_beta_gy: float) -> DVH:
        """The DVH in EQD2 (pure LQ): each mass's dose D in ``n_fractions`` of D / n each."""
        dose = eqd2(n_fractions, self.dose_gy / n_fractions, alpha_beta_gy)
        return DVH(np.asarray(dose, dtype=np.float64), self.fraction, self.total_volume_cc)

    # ---- metrics ----------------------------------------------------------------------------

    def metric(self, metric: DVHMetric) -> float | None:
        """The value of ``metric`` in its unit (Gy, % or cm³); None when it needs absolute volumes
        this DVH does not have."""
        kind, x = metric.kind, metric.x
        if kind == "mean":
            return self.mean_gy
        if kind == "max":
            return self.near_max_gy
        if kind == "min":
            return self.min_gy
        if kind == "dose_at_percent":
            return self.dose_at_fraction(x / 100.0)
        if kind == "volume_percent":
            return 100.0 * self.fraction_at_dose(x)
        if self.total_volume_cc is None:
            return None
        if kind == "dose_at_cc":
            return self.dose_at_volume_cc(x)
        if kind == "volume_cc":
            return self.total_volume_cc * self.fraction_at_dose(x)
        if kind == "spared_cc":
            return self.total_volume_cc * (1.0 - self.fraction_at_dose(x))
        raise ValueError(f"unknown metric kind {kind!r}")

    def cumulative(self, n_points: int = 200) -> tuple[np.ndarray, np.ndarray]:
        """The cumulative DVH for plotting: doses from 0 to just past the maximum, Gy, and the %
        of the volume receiving at least each dose; each shape [n_points + 1] (the last point
        is 0 % just above the maximum)."""
        top = self.point_max_gy
        dose = np.linspace(0.0, top, n_points)
        received = self._received()
        idx = np.searchsorted(self.dose_gy, dose - 1e-9, side="left")
        volume = np.where(idx < len(received), received[np.minimum(idx, len(received) - 1)], 0.0)
        dose = np.append(dose, top * (1 + 1e-3) + 1e-3)
        return dose, np.append(100.0 * volume, 0.0)


def from_samples(dose_gy: np.ndarray, volume_cc: np.ndarray, bin_gy: float = BIN_GY) -> DVH:
    """DVH of voxel samples: doses binned in ``bin_gy`` steps, each bin at the volume-weighted mean
    dose of its samples.

    Args:
        dose_gy: dose of each sample, Gy, ≥ 0; shape [N].
        volume_cc: volume each sample stands for, cm³, ≥ 0; shape [N], positive sum.
        bin_gy: bin width, Gy (> 0).
    """
    dose = np.asarray(dose_gy, dtype=np.float64)
    vol = np.asarray(volume_cc, dtype=np.float64)
    total = float(vol.sum())
    if not total > 0:
        raise ValueError("the samples hold no volume")
    idx = np.floor(dose / bin_gy).astype(np.int64)
    v = np.bincount(idx, weights=vol)
    vd = np.bincount(idx, weights=vol * dose)
    keep = v > 0
    return DVH(vd[keep] / v[keep], v[keep] / total, total)


def from_cumulative(dose_gy: np.ndarray, volume: np.ndarray, *, percent: bool,
                    total_volume_cc: float | None = None, bin_gy: float = BIN_GY) -> DVH:
    """DVH of a cumulative table: ``volume[i]`` receives at least ``dose_gy[i]``.

    The curve is interpolated linearly onto a ``bin_gy`` grid; each step's volume becomes a mass
    at the step's midpoint. Volume below the first dose (a table not starting at 0 Gy) is placed
    at half the first dose.

    Args:
        dose_gy: ascending doses, Gy, ≥ 0; shape [N].
        volume: non-increasing volumes, % of the structure (``percent``) or cm³; shape [N].
        percent: whether ``volume`` is in %.
        total_volume_cc: the structure's volume, cm³, when known (with ``percent``); without it
            the first volume of a table in cm³ is the total.
    """
    dose = np.asarray(dose_gy, dtype=np.float64)
    vol = np.asarray(volume, dtype=np.float64)
    total = 100.0 if percent else float(vol[0])
    if not total > 0:
        raise ValueError("the DVH holds no volume")
    rel = np.clip(vol / total, 0.0, 1.0)
    grid = np.arange(0.0, dose[-1] + bin_gy, bin_gy)
    grid = grid[grid < dose[-1]]
    grid = np.append(grid[grid > dose[0]], dose[-1])
    points = np.concatenate([[dose[0]], grid])
    received = np.interp(points, dose, rel)
    masses = -np.diff(received)
    centres = 0.5 * (points[:-1] + points[1:])
    doses = [0.5 * dose[0]] if rel[0] < 1.0 else []
    fracs = [1.0 - rel[0]] if rel[0] < 1.0 else []
    doses = np.concatenate([doses, centres, [dose[-1]]])
    fracs = np.concatenate([fracs, masses, [received[-1]]])
    keep = fracs > 1e-12
    fracs = fracs[keep] / fracs[keep].sum()
    volume_cc = total_volume_cc if percent else total
    return DVH(doses[keep], fracs, volume_cc)


def from_differential(dose_gy: np.ndarray, volume: np.ndarray, *, percent: bool,
                      total_volume_cc: float | None = None) -> DVH:
    """DVH of a differential table: ``volume[i]`` (% or cm³) lies at dose ``dose_gy[i]`` (bin
    centres, ascending)."""
    dose = np.asarray(dose_gy, dtype=np.float64)
    vol = np.asarray(volume, dtype=np.float64)
    total = float(vol.sum())
    if not total > 0:
        raise ValueError("the DVH holds no volume")
    keep = vol > 0
    volume_cc = total_volume_cc if percent else total
    return DVH(dose[keep], vol[keep] / total, volume_cc)
