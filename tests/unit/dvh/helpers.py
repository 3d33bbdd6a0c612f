"""Phantom plan files for the plan-import tests, built once per process with pydicom."""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from functools import cache

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from engine.dvh import phantom as ph

Named = tuple[str, bytes]


@cache
def sphere_files(radius_mm: float = 20.0, dose_gy: float = 60.0, grid_mm: float = 2.5,
                 shell_mm: float | None = None) -> dict[str, bytes]:
    """The uniform-sphere phantom (GTV in a Lungs box), 30 fractions."""
    return ph.phantom_bytes(ph.sphere_phantom(radius_mm=radius_mm, dose_gy=dose_gy,
                                              grid_mm=grid_mm, shell_mm=shell_mm))


@cache
def box_files(grid_mm: float = 2.5) -> dict[str, bytes]:
    """The linear-gradient phantom (box GTV, sphere Lungs)."""
    return ph.phantom_bytes(ph.box_gradient_phantom(grid_mm=grid_mm))


@cache
def cylinder_phantom(radius_mm: float, grid_mm: float = 2.5) -> ph.Phantom:
    """A ``SpinalCord`` cylinder along z (7 contour planes 2.5 mm apart, 64-vertex contours)
    centred on a pixel centre of the dose grid, as the thorax phantom's cord is, in 20 Gy."""
    cord = ph.Solid("cylinder", (0.0, 0.0, 0.0), (radius_mm, radius_mm, 10.0))
    half = grid_mm * (math.ceil(radius_mm / grid_mm) + 2)
    n = round(2 * half / grid_mm) + 1
    return ph.Phantom(
        name=f"cylinder-{radius_mm:g}-{grid_mm:g}",
        structures=(ph.PhantomStructure("SpinalCord", (cord,)),),
        dose=lambda x, y, z: np.full(np.shape(x), 20.0),
        grid_origin_mm=(-half, -half, -12.5), grid_shape=(11, n, n), grid_mm=grid_mm,
        slice_mm=2.5, slice_origin_mm=0.0, n_fractions=30, prescription_gy=60.0)


@cache
def thorax_files(grid_mm: float = 5.0) -> dict[str, bytes]:
    """The NSCLC thorax phantom on a coarse grid (fast), without a Lungs structure."""
    return ph.phantom_bytes(ph.thorax_phantom(grid_mm=grid_mm, slice_mm=grid_mm,
                                              with_lungs=False, n_vertices=32))


@cache
def liver_files(grid_mm: float = 5.0) -> dict[str, bytes]:
    """The HCC liver phantom on a coarse grid."""
    return ph.phantom_bytes(ph.liver_phantom(grid_mm=grid_mm, slice_mm=grid_mm, n_vertices=32))


def named(files: dict[str, bytes]) -> dict[str, Named]:
    """``import_plan`` keyword arguments with display names RD.dcm, RS.dcm, RP.dcm."""
    return {"rtdose": ("RD.dcm", files["RTDOSE"]), "rtstruct": ("RS.dcm", files["RTSTRUCT"]),
            "rtplan": ("RP.dcm", files["RTPLAN"])}


def edit(data: bytes, change: Callable[[Dataset], None]) -> bytes:
    """``data`` read, changed in place by ``change``, written back."""
    ds = pydicom.dcmread(io.BytesIO(data))
    change(ds)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()
