"""Beamlet-weight LP (22)–(26) on a 2-D thorax phantom, reference vs adaptive plan.

At each adaptation point the target is re-contoured to the tumour volume the response model
predicts there and the beamlet weights w ≥ 0 are re-optimised::

    min  Σ_s C_s / |V_s| Σ_{v ∈ V_s} D_v          (22) weighted mean structure doses
    s.t. D_v ≤ U_v   for every voxel               (23) hot-spot cap
         D_v ≥ L_v   for every target voxel        (24) prescription per fraction
         D = Δ w,    w ≥ 0                         (25), (26)

solved with ``scipy.optimize.linprog(method="highs")``. Doses are per fraction, Gy; the LP is
homogeneous in the prescription, so one solve per anatomy is scaled by the dose of each fraction
of the segment it serves.

The phantom (a teaching model, not a patient): a 2-D axial slice, 5 mm voxels, an elliptical
body, two lungs, a heart and a round tumour in the left lung next to the heart. The
dose-influence matrix Δ is a simple pencil-beam model: for each of ``n_beams`` coplanar beams,
parallel beamlets 5 mm apart cover the initial tumour plus a margin; a beamlet gives a voxel
exp(−μ depth) · exp(−s² / 2σ²), depth measured from where the beam enters the body and s the
voxel's lateral distance from the beamlet axis (μ = 0.05 cm⁻¹, σ = 4 mm). Tissue density,
scatter and build-up are ignored.

Shrinking target: the initial tumour voxels are ranked by distance from its centre and the
innermost ``ratio × n`` are kept (at least ``min_target_volume_ratio`` of them: the microscopic
extent of the original tumour is still treated); freed voxels become lung. Dose–volume metrics
are computed on the total course dose over the *same* structures for both plans: the heart, and
the lung at the end of treatment (initial lung plus the voxels the ART target gave up).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linprog

from engine.core.config import check_range

__all__ = [
    "BeamletConfig",
    "BeamletPlan",
    "Phantom",
    "build_phantom",
    "dose_influence",
    "dvh_metrics",
    "plan_course_doses",
    "shrink_target",
    "solve_beamlet_lp",
]


@dataclass(frozen=True)
class BeamletConfig:
    """Phantom, beams and LP weights (checked when built; a bad field raises ValueError)."""

    grid: int = 56
    """Voxels per side of the square slice. Accepted 16–128."""
    voxel_mm: float = 5.0
    """Voxel edge, mm. Accepted > 0."""
    n_beams: int = 7
    """Equally spaced coplanar beams. Accepted 1–72."""
    beamlet_mm: float = 5.0
    """Beamlet spacing, mm. Accepted > 0."""
    sigma_mm: float = 4.0
    """Lateral sd of a beamlet's Gaussian profile, mm. Accepted > 0."""
    mu_per_cm: float = 0.05
    """Attenuation coefficient, cm⁻¹. Accepted ≥ 0."""
    tumour_radius_mm: float = 25.0
    """Radius of the initial (round) tumour, mm. Accepted > 0."""
    hot_spot: float = 1.10
    """U_v: no voxel may receive more than this times the prescription per fraction. Accepted
    ≥ 1."""
    weight_target: float = 0.1
    """C_T of (22) for the target (a small weight keeps target dose homogeneous). Accepted ≥ 0."""
    weight_lung: float = 1.0
    """C_s of (22) for the lung. Accepted ≥ 0."""
    weight_heart: float = 1.0
    """C_s of (22) for the heart. Accepted ≥ 0."""
    weight_body: float = 0.2
    """C_s of (22) for the rest of the body (unspecified normal tissue). Accepted ≥ 0."""
    min_target_volume_ratio: float = 0.25
    """The re-contoured target keeps at least this share of the initial tumour voxels. Accepted
    (0, 1]."""

    def __post_init__(self) -> None:
        check_range("grid", self.grid, 16, 128, integer=True)
        check_range("n_beams", self.n_beams, 1, 72, integer=True)
        for name in ("voxel_mm", "beamlet_mm", "sigma_mm", "tumour_radius_mm"):
            check_range(name, getattr(self, name), 0.0, lo_open=True)
        check_range("mu_per_cm", self.mu_per_cm, 0.0)
        check_range("hot_spot", self.hot_spot, 1.0)
        for name in ("weight_target", "weight_lung", "weight_heart", "weight_body"):
            check_range(name, getattr(self, name), 0.0)
        check_range("min_target_volume_ratio", self.min_target_volume_ratio, 0.0, 1.0,
                    lo_open=True)


@dataclass(frozen=True)
class Phantom:
    """Boolean structure masks ``[grid, grid]`` and voxel centres (mm)."""

    body: np.ndarray
    """Inside the body outline."""
    lung: np.ndarray
    """Both lungs (not tumour)."""
    heart: np.ndarray
    """Heart."""
    tumour: np.ndarray
    """Initial tumour (gross target)."""
    x_mm: np.ndarray
    """x of voxel centres, [grid, grid] (patient left to the right of the image)."""
    y_mm: np.ndarray
    """y of voxel centres, [grid, grid] (anterior up)."""
    tumour_centre_mm: tuple[float, float]
    """Centre of the tumour, mm."""


def _ellipse(x: np.ndarray, y: np.ndarray, cx: float, cy: float, ax: float, ay: float
             ) -> np.ndarray:
    return ((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2 <= 1.0


def build_phantom(cfg: BeamletConfig = BeamletConfig()) -> Phantom:
    """The 2-D thorax slice (sizes in mm, scaled to the grid's field of view)."""
    half = cfg.grid * cfg.voxel_mm / 2.0
    c = (np.arange(cfg.grid) + 0.5) * cfg.voxel_mm - half
    x, y = np.meshgrid(c, -c)  # row 0 at the top (anterior)
    s = half / 140.0  # the layout is drawn for a 280 mm field of view
    body = _ellipse(x, y, 0, 0, 135 * s, 100 * s)
    heart = _ellipse(x, y, 22 * s, 15 * s, 38 * s, 32 * s) & body
    lungs = (_ellipse(x, y, -55 * s, 0, 42 * s, 70 * s) | _ellipse(x, y, 60 * s, 0, 40 * s, 68 * s))
    centre = (62 * s, 22 * s)
    tumour = np.hypot(x - centre[0], y - centre[1]) <= cfg.tumour_radius_mm
    tumour &= body
    lung = lungs & body & ~heart & ~tumour
    heart &= ~tumour
    return Phantom(body=body, lung=lung, heart=heart, tumour=tumour, x_mm=x, y_mm=y,
                   tumour_centre_mm=centre)


def shrink_target(phantom: Phantom, volume_ratio: float, min_ratio: float) -> np.ndarray:
    """Target mask keeping the innermost ``max(volume_ratio, min_ratio)`` share of the initial
    tumour voxels (ties broken by voxel order), at least one voxel."""
    ratio = float(np.clip(max(volume_ratio, min_ratio), 0.0, 1.0))
    idx = np.flatnonzero(phantom.tumour.ravel())
    cx, cy = phantom.tumour_centre_mm
    dist = np.hypot(phantom.x_mm.ravel()[idx] - cx, phantom.y_mm.ravel()[idx] - cy)
    keep = max(1, round(ratio * idx.size))
    order = np.lexsort((idx, dist))[:keep]
    mask = np.zeros(phantom.tumour.size, dtype=bool)
    mask[idx[order]] = True
    return mask.reshape(phantom.tumour.shape)


def dose_influence(phantom: Phantom, cfg: BeamletConfig = BeamletConfig()) -> np.ndarray:
    """Δ: dose per unit beamlet weight to every body voxel, ``[n_body_voxels, n_beamlets]``
    (body voxels in row-major order)."""
    body = phantom.body.ravel()
    px, py = phantom.x_mm.ravel()[body], phantom.y_mm.ravel()[body]
    cx, cy = phantom.tumour_centre_mm
    tx = phantom.x_mm[phantom.tumour] - cx
    ty = phantom.y_mm[phantom.tumour] - cy
    reach = float(np.max(np.hypot(tx, ty))) + 2 * cfg.beamlet_mm
    offsets = np.arange(-reach, reach + 1e-9, cfg.beamlet_mm)
    columns = []
    for angle in np.arange(cfg.n_beams) * 2 * np.pi / cfg.n_beams:
        u = np.array([np.sin(angle), -np.cos(angle)])  # beam direction (travel)
        n = np.array([np.cos(angle), np.sin(angle)])  # lateral axis
        t = (px - cx) * u[0] + (py - cy) * u[1]
        lat = (px - cx) * n[0] + (py - cy) * n[1]
        # Entry point along each lateral strip: the smallest t of body voxels in that strip.
        strip = np.round(lat / cfg.voxel_mm).astype(int)
        entry = np.full(strip.max() - strip.min() + 1, np.inf)
        np.minimum.at(entry, strip - strip.min(), t)
        depth_cm = (t - entry[strip - strip.min()]) / 10.0
        atten = np.exp(-cfg.mu_per_cm * depth_cm)
        for off in offsets:
            columns.append(atten * np.exp(-((lat - off) ** 2) / (2 * cfg.sigma_mm ** 2)))
    return np.stack(columns, axis=1)


def solve_beamlet_lp(influence: np.ndarray, target: np.ndarray, structures: dict[str, np.ndarray],
                     weights: dict[str, float], prescription_gy: float, hot_spot: float
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Solve (22)–(26) for one anatomy.

    Args:
        influence: Δ, ``[V, B]`` dose per unit weight for the V voxels of the problem.
        target: bool [V], the target voxels (L_v = ``prescription_gy`` there).
        structures: name → bool [V] masks of the structures in the objective (the target is
            passed here too if it has a weight).
        weights: name → C_s ≥ 0.
        prescription_gy: L_v of target voxels, Gy per fraction.
        hot_spot: U_v = ``hot_spot × prescription_gy`` for every voxel.

    Returns:
        (beamlet weights w [B], voxel doses D = Δ w [V]).

    Raises:
        RuntimeError: the LP is infeasible or HiGHS fails (message from SciPy).
    """
    c = np.zeros(influence.shape[1])
    for name, mask in structures.items():
        if mask.any() and weights.get(name, 0.0) > 0:
            c += weights[name] / mask.sum() * influence[mask].sum(axis=0)
    a_ub = np.vstack([-influence[target], influence])
    b_ub = np.concatenate([np.full(target.sum(), -prescription_gy),
                           np.full(influence.shape[0], hot_spot * prescription_gy)])
    res = linprog(c, A_ub=a_ub, b_ub=b_ub, bounds=(0, None), method="highs")
    if res.status != 0:
        raise RuntimeError(f"beamlet LP failed: {res.message}")
    w = np.maximum(res.x, 0.0)
    return w, influence @ w


@dataclass(frozen=True)
class BeamletPlan:
    """A course delivered on the phantom: total dose map and dose–volume metrics."""

    dose_map_gy: np.ndarray
    """Total course dose, Gy, [grid, grid] (0 outside the body)."""
    targets: list[np.ndarray] = field(default_factory=list)
    """Target mask of each planned segment, bool [grid, grid]."""
    segment_weeks: list[int] = field(default_factory=list)
    """1-based week at which each segment starts."""
    metrics: dict[str, float] = field(default_factory=dict)
    """Dose–volume metrics (:func:`dvh_metrics`)."""


def dvh_metrics(dose_map_gy: np.ndarray, lung: np.ndarray, heart: np.ndarray) -> dict[str, float]:
    """Lung V20 (%) and mean dose (Gy); heart V45 (%) and D2 (Gy, dose to the hottest 2 %)."""
    lung_d, heart_d = dose_map_gy[lung], dose_map_gy[heart]
    return {
        "lung_v20_percent": float(100.0 * np.mean(lung_d >= 20.0)),
        "lung_mean_gy": float(lung_d.mean()),
        "heart_v45_percent": float(100.0 * np.mean(heart_d >= 45.0)),
        "heart_d2_gy": float(np.quantile(heart_d, 0.98)),
    }


def plan_course_doses(
    doses_gy: np.ndarray, segment_starts: list[int], volume_ratios: list[float],
    fractions_per_week: int, cfg: BeamletConfig = BeamletConfig(),
    phantom: Phantom | None = None, influence: np.ndarray | None = None,
    final_lung: np.ndarray | None = None,
) -> BeamletPlan:
    """Plan and accumulate a course: one LP per segment on its re-contoured anatomy.

    Args:
        doses_gy: dose per fraction of every fraction, Gy, [N].
        segment_starts: 1-based weeks at which the plan is (re)optimised (first must be 1).
        volume_ratios: predicted tumour volume / initial at the start of each segment.
        fractions_per_week: to map weeks to fractions.
        cfg: phantom and LP settings.
        phantom, influence: reuse a built phantom and Δ (built when None).
        final_lung: lung mask for the metrics (default: the phantom's lung).

    Returns:
        The :class:`BeamletPlan`.
    """
    phantom = phantom or build_phantom(cfg)
    influence = dose_influence(phantom, cfg) if influence is None else influence
    body = phantom.body
    total = np.zeros(body.sum())
    targets = []
    n = len(doses_gy)
    starts = [*((w - 1) * fractions_per_week for w in segment_starts), n]
    weights = {"target": cfg.weight_target, "lung": cfg.weight_lung,
               "heart": cfg.weight_heart, "body": cfg.weight_body}
    for seg, ratio in enumerate(volume_ratios):
        target = shrink_target(phantom, ratio, cfg.min_target_volume_ratio)
        freed = phantom.tumour & ~target
        lung = (phantom.lung | freed)[body]
        rest = body & ~target & ~phantom.heart & ~(phantom.lung | freed)
        structures = {"target": target[body], "lung": lung, "heart": phantom.heart[body],
                      "body": rest[body]}
        _, unit = solve_beamlet_lp(influence, target[body], structures, weights, 1.0,
                                   cfg.hot_spot)
        total += unit * float(np.sum(doses_gy[starts[seg]:starts[seg + 1]]))
        targets.append(target)
    dose_map = np.zeros(body.shape)
    dose_map[body] = total
    lung_eval = phantom.lung if final_lung is None else final_lung
    return BeamletPlan(dose_map_gy=dose_map, targets=targets, segment_weeks=list(segment_starts),
                       metrics=dvh_metrics(dose_map, lung_eval, phantom.heart))
