"""Contours → voxels of the dose grid → a DVH: the geometry of a DICOM plan import.

dicompyler-core 0.5.6, the field's usual contour-to-DVH library, imports a name pydicom 3 removed,
so it runs only with pydicom < 3. We keep pydicom 3 and rasterise with matplotlib's maintained
``Path.contains_points`` (docs/plan-import.md has the choice and its measured accuracy). The
method is the one planning systems and dicompyler use — a structure is its contour planes, each
a slab one slice thick:

* **Planes.** Each contour plane of the structure at patient z is a slab of the structure's slice
  thickness (the median distance between its contour planes; the structure set's median for a
  structure drawn on one plane). The dose on the plane is interpolated linearly between the two
  dose-grid frames around it (GridFrameOffsetVector), so contour and dose slices need not align.
* **Inside.** Contours are placed on the dose grid through ImagePositionPatient,
  ImageOrientationPatient and PixelSpacing. A point is inside a structure when it lies inside an
  odd number of the structure's contours on that plane (even–odd: a contour inside another is a
  hole; islands add up). A union of structures (``Lung_L`` + ``Lung_R``) is inside any of them; a
  difference (``Lungs`` − ``GTV``) is inside the first and in none of the subtracted ones, whose
  contour on the nearest plane within half their slice thickness is used.
* **Partial voxels.** Pixels away from every contour edge are wholly in or out (their centre
  decides, their dose is the pixel's). Pixels an edge passes through are split into
  ``supersample`` × ``supersample`` sub-pixels, each in or out by its centre, with its dose
  interpolated bilinearly in the plane — so the volume and the dose of partial voxels follow the
  contour instead of the pixel grid.

A structure the dose grid does not cover (a contour beyond the outer pixels' edges, or a plane
outside the frames) is refused with the structure's and the grid's extents.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.path import Path

from engine.core.config import check_range
from engine.dvh.dicom import DoseGrid, Roi
from engine.dvh.dvh import BIN_GY, DVH, from_samples
from engine.dvh.sources import PlanError

__all__ = ["RasterConfig", "structure_dvh"]

_EDGE_STEP_PX = 0.25
"""Spacing of the points sampled along contour edges to find the pixels they cross, pixels."""
_Z_TOL_MM = 0.01
"""A contour plane this close beyond the first or last dose frame is still covered, mm."""


@dataclass(frozen=True)
class RasterConfig:
    """How contours are rasterised and DVHs binned."""

    supersample: int = 8
    """Sub-pixels per side of a pixel crossed by a contour edge (8 → 64 sub-pixels). Accepted
    1–16. 8 rather than 4: a thin structure whose section repeats on every plane (a 12-mm
    spinal cord) keeps one sub-pixel lattice error on every plane, −1.9 % of its contoured
    volume with 4 and +0.2 % with 8, for about twice the time (docs/plan-import.md)."""
    bin_gy: float = BIN_GY
    """DVH dose bin, Gy (each bin sits at its voxels' mean dose). Accepted 0.001–1."""

    def __post_init__(self) -> None:
        check_range("supersample", self.supersample, 1, 16, integer=True)
        check_range("bin_gy", self.bin_gy, 0.001, 1.0)


@dataclass(frozen=True)
class _Plane:
    z_mm: float
    thickness_mm: float
    plus: tuple[tuple[np.ndarray, ...], ...]  # per structure: its contours, index coords [N, 2]
    minus: tuple[tuple[np.ndarray, ...], ...]


def structure_dvh(grid: DoseGrid, plus: Sequence[Roi], minus: Sequence[Roi] = (), *,
                  label: str, default_thickness_mm: float | None,
                  config: RasterConfig | None = None) -> DVH:
    """The DVH of the union of ``plus`` minus the union of ``minus`` on the dose grid.

    Args:
        grid: the dose grid (Gy).
        plus: structures whose union is taken (one for a plain structure).
        minus: structures subtracted.
        label: the structure's name in messages, e.g. ``"Lungs-GTV"``.
        default_thickness_mm: slice thickness of a structure drawn on a single plane, mm.
        config: supersampling and binning.

    Raises:
        PlanError: a structure has a problem (no contours, …), is not covered by the dose grid,
            or the result holds no volume.
    """
    config = config or RasterConfig()
    for roi in (*plus, *minus):
        if roi.problem:
            raise PlanError(roi.problem)
    planes = _planes(grid, plus, minus, label, default_thickness_mm)
    _check_coverage(grid, plus, planes, label)
    doses: list[np.ndarray] = []
    volumes: list[np.ndarray] = []
    pixel_mm2 = grid.row_spacing_mm * grid.col_spacing_mm
    for plane in planes:
        d, w = _plane_samples(grid, plane, config.supersample)
        doses.append(d)
        volumes.append(w * pixel_mm2 * plane.thickness_mm / 1000.0)
    dose = np.concatenate(doses) if doses else np.zeros(0)
    vol = np.concatenate(volumes) if volumes else np.zeros(0)
    if not vol.sum() > 0:
        raise PlanError(f"structure {label} holds no volume on the dose grid of {grid.file} "
                        "(its contours enclose no voxel centre)")
    return from_samples(dose, vol, config.bin_gy)


# --------------------------------------------------------------------------------------------
# Planes and coverage


def _planes(grid: DoseGrid, plus: Sequence[Roi], minus: Sequence[Roi], label: str,
            default_thickness_mm: float | None) -> list[_Plane]:
    by_z: dict[float, tuple[float, list[tuple[np.ndarray, ...]]]] = {}
    for roi in plus:
        thickness = roi.thickness_mm or default_thickness_mm
        if thickness is None:
            raise PlanError(f"structure {roi.name} is drawn on a single plane and no other "
                            "structure gives the slice thickness")
        for z, contours in roi.planes:
            key = next((k for k in by_z if abs(k - z) <= _Z_TOL_MM), z)
            entry = by_z.setdefault(key, (thickness, []))
            entry[1].append(tuple(grid.to_index(c) for c in contours))
    planes = []
    for z in sorted(by_z):
        thickness, plus_contours = by_z[z]
        minus_contours = []
        for roi in minus:
            half = 0.5 * (roi.thickness_mm or default_thickness_mm or thickness) + _Z_TOL_MM
            near = [(abs(zm - z), cs) for zm, cs in roi.planes if abs(zm - z) <= half]
            if near:
                minus_contours.append(tuple(grid.to_index(c) for c in min(
                    near, key=lambda t: t[0])[1]))
        planes.append(_Plane(z, thickness, tuple(plus_contours), tuple(minus_contours)))
    return planes


def _check_coverage(grid: DoseGrid, plus: Sequence[Roi], planes: list[_Plane],
                    label: str) -> None:
    _n_frames, n_rows, n_cols = grid.shape
    z_lo, z_hi = float(grid.z_mm[0]), float(grid.z_mm[-1])
    points = np.concatenate([c for p in planes for s in p.plus for c in s])
    zs = [p.z_mm for p in planes]
    col_ok = (points[:, 0].min() >= -0.5 - 1e-6) and (points[:, 0].max() <= n_cols - 0.5 + 1e-6)
    row_ok = (points[:, 1].min() >= -0.5 - 1e-6) and (points[:, 1].max() <= n_rows - 0.5 + 1e-6)
    z_ok = min(zs) >= z_lo - _Z_TOL_MM and max(zs) <= z_hi + _Z_TOL_MM
    if col_ok and row_ok and z_ok:
        return
    xy = np.concatenate([c for roi in plus for _, cs in roi.planes for c in cs])
    corners = np.array([[-0.5, -0.5], [n_cols - 0.5, -0.5], [-0.5, n_rows - 0.5],
                        [n_cols - 0.5, n_rows - 0.5]])
    corner_mm = (grid.origin_mm[:2] + corners[:, :1] * grid.col_spacing_mm * grid.row_dir[:2]
                 + corners[:, 1:] * grid.row_spacing_mm * grid.col_dir[:2])

    def span(lo: float, hi: float) -> str:
        return f"{lo:.1f} to {hi:.1f}"

    raise PlanError(
        f"the dose grid of {grid.file} does not cover structure {label}: the structure spans "
        f"x {span(xy[:, 0].min(), xy[:, 0].max())}, y {span(xy[:, 1].min(), xy[:, 1].max())}, "
        f"z {span(min(zs), max(zs))} mm; the dose grid x "
        f"{span(corner_mm[:, 0].min(), corner_mm[:, 0].max())}, y "
        f"{span(corner_mm[:, 1].min(), corner_mm[:, 1].max())}, z {span(z_lo, z_hi)} mm; "
        "export a dose grid that covers the whole structure")


# --------------------------------------------------------------------------------------------
# One plane


def _plane_samples(grid: DoseGrid, plane: _Plane, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Doses (Gy) and pixel fractions (0–1) of the structure's samples on one plane."""
    _n_frames, n_rows, n_cols = grid.shape
    polys = [c for s in plane.plus for c in s]
    allpts = np.concatenate(polys)
    c0 = max(0, int(np.floor(allpts[:, 0].min() + 0.5)))
    c1 = min(n_cols - 1, int(np.floor(allpts[:, 0].max() + 0.5)))
    r0 = max(0, int(np.floor(allpts[:, 1].min() + 0.5)))
    r1 = min(n_rows - 1, int(np.floor(allpts[:, 1].max() + 0.5)))
    # Dose on the plane, over the bounding box plus one pixel (for bilinear sub-samples).
    rr0, rr1, cc0, cc1 = max(0, r0 - 1), min(n_rows - 1, r1 + 1), max(0, c0 - 1), min(
        n_cols - 1, c1 + 1)
    dose = _dose_plane(grid, plane.z_mm, rr0, rr1 + 1, cc0, cc1 + 1)  # [rows, cols]
    cols = np.arange(c0, c1 + 1)
    rows = np.arange(r0, r1 + 1)
    cc, rr = np.meshgrid(cols, rows)  # [H, W]
    centres = np.stack([cc.ravel(), rr.ravel()], axis=1).astype(np.float64)
    inside = _inside(centres, plane).reshape(cc.shape)
    boundary = np.zeros(cc.shape, dtype=bool)
    for poly in polys + [c for s in plane.minus for c in s]:
        _mark_edges(boundary, poly, c0, r0)
    full = inside & ~boundary
    d_full = dose[rows[:, None] - rr0, cols[None, :] - cc0][full]
    w_full = np.ones(d_full.shape)
    br, bc = np.nonzero(boundary)
    if len(br) == 0:
        return d_full, w_full
    offs = (np.arange(k) + 0.5) / k - 0.5
    oc, orow = np.meshgrid(offs, offs)
    sub_c = (bc[:, None] + c0 + oc.ravel()[None, :]).ravel()
    sub_r = (br[:, None] + r0 + orow.ravel()[None, :]).ravel()
    sub = np.stack([sub_c, sub_r], axis=1)
    keep = _inside(sub, plane)
    d_sub = _bilinear(dose, sub[keep, 1] - rr0, sub[keep, 0] - cc0)
    w_sub = np.full(d_sub.shape, 1.0 / (k * k))
    return np.concatenate([d_full, d_sub]), np.concatenate([w_full, w_sub])


def _dose_plane(grid: DoseGrid, z: float, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
    """The dose on the axial plane at ``z`` over rows r0:r1, columns c0:c1 (linear in z)."""
    zs = grid.z_mm
    if len(zs) == 1:
        return grid.dose_gy[0, r0:r1, c0:c1]
    k = int(np.clip(np.searchsorted(zs, z) - 1, 0, len(zs) - 2))
    t = float(np.clip((z - zs[k]) / (zs[k + 1] - zs[k]), 0.0, 1.0))
    lower = grid.dose_gy[k, r0:r1, c0:c1]
    if t == 0.0:
        return lower
    return (1.0 - t) * lower + t * grid.dose_gy[k + 1, r0:r1, c0:c1]


def _bilinear(plane: np.ndarray, r: np.ndarray, c: np.ndarray) -> np.ndarray:
    """``plane`` interpolated at fractional (row, column) indices, clamped to its edges."""
    n_r, n_c = plane.shape
    r = np.clip(r, 0.0, n_r - 1.0)
    c = np.clip(c, 0.0, n_c - 1.0)
    r0 = np.minimum(np.floor(r).astype(np.int64), max(n_r - 2, 0))
    c0 = np.minimum(np.floor(c).astype(np.int64), max(n_c - 2, 0))
    r1 = np.minimum(r0 + 1, n_r - 1)
    c1 = np.minimum(c0 + 1, n_c - 1)
    tr = r - r0
    tc = c - c0
    top = plane[r0, c0] * (1 - tc) + plane[r0, c1] * tc
    bottom = plane[r1, c0] * (1 - tc) + plane[r1, c1] * tc
    return top * (1 - tr) + bottom * tr


def _contains(poly: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Which ``points`` [N, 2] lie inside the closed polygon ``poly`` [M, 2]."""
    lo = poly.min(axis=0)
    hi = poly.max(axis=0)
    near = np.all((points >= lo) & (points <= hi), axis=1)
    out = np.zeros(len(points), dtype=bool)
    if near.any():
        out[near] = Path(poly).contains_points(points[near])
    return out


def _parity(contours: tuple[np.ndarray, ...], points: np.ndarray) -> np.ndarray:
    """Even–odd rule over one structure's contours on a plane: inside an odd number of them."""
    inside = np.zeros(len(points), dtype=bool)
    for poly in contours:
        inside ^= _contains(poly, points)
    return inside


def _inside(points: np.ndarray, plane: _Plane) -> np.ndarray:
    """Inside any ``plus`` structure and none of the ``minus`` ones, [N] bool."""
    inside = np.zeros(len(points), dtype=bool)
    for contours in plane.plus:
        inside |= _parity(contours, points)
    for contours in plane.minus:
        if inside.any():
            inside[inside] &= ~_parity(contours, points[inside])
    return inside


def _mark_edges(boundary: np.ndarray, poly: np.ndarray, c0: int, r0: int) -> None:
    """Mark in ``boundary`` (pixels of the box starting at column c0, row r0) every pixel the
    closed polygon's edges pass through (points every 0.25 pixel along each edge)."""
    start = poly
    end = np.roll(poly, -1, axis=0)
    length = np.hypot(*(end - start).T)
    n = np.ceil(length / _EDGE_STEP_PX).astype(np.int64) + 1
    seg = np.repeat(np.arange(len(poly)), n)
    first = np.cumsum(n) - n
    t = (np.arange(n.sum()) - np.repeat(first, n)) / np.maximum(np.repeat(n, n) - 1, 1)
    pts = start[seg] + (end[seg] - start[seg]) * t[:, None]
    col = np.floor(pts[:, 0] + 0.5).astype(np.int64) - c0
    row = np.floor(pts[:, 1] + 0.5).astype(np.int64) - r0
    h, w = boundary.shape
    ok = (col >= 0) & (col < w) & (row >= 0) & (row < h)
    boundary[row[ok], col[ok]] = True
