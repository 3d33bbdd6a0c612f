"""How exact the contour rasterisation is: volumes, mean doses and gEUDs of analytic phantoms
against their closed forms, at several dose-grid spacings, with and without supersampling.

``python -m engine.dvh.accuracy`` measures every case (a few seconds), writes
``docs/data/dvh_accuracy.json`` and rewrites the generated blocks of ``docs/plan-import.md`` (the
table from it, and the protocols' plan sections from their TOML); a unit test checks that the
page's blocks are these and that a case recomputed gives the saved numbers.

Two references for each volume: the **exact** solid, and the **contoured** volume (each contour's
area × the slice thickness, summed over the contour planes) — the volume the contours define under
the slab convention planning systems use. The first difference mixes in the slab convention (a
sphere cut into 2.5-mm slabs is not a sphere); the second is the rasterisation alone.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np

from engine.dvh.dicom import read_rtdose, read_rtstruct
from engine.dvh.phantom import Phantom, box_gradient_phantom, phantom_bytes, sphere_phantom
from engine.dvh.rasterise import RasterConfig, structure_dvh

__all__ = ["ACCURACY_JSON", "CASES", "block", "generated_blocks", "measure", "measure_case",
           "render_table", "write"]

ROOT = Path(__file__).resolve().parents[2]
ACCURACY_JSON = ROOT / "docs" / "data" / "dvh_accuracy.json"
"""The saved measurement."""
DOC = ROOT / "docs" / "plan-import.md"
"""The page whose generated block shows it."""
_END = "<!-- end generated -->"
GEUD_EXPONENTS = (-20.0, -10.0, 1.0, 10.0)
"""gEUD exponents checked on the uniform sphere."""

CASES: tuple[tuple[str, float, float, int], ...] = tuple(
    (phantom, grid, 2.5, k)
    for phantom in ("sphere_r20", "sphere_r7", "box_gradient", "sphere_gradient")
    for grid in (1.0, 2.5, 4.0)
    for k in (1, 4, 8)
)
"""(phantom, dose-grid spacing mm, slice spacing mm, supersampling) of every case measured: no
supersampling, the former default 4 and the default 8."""


def _phantom(name: str, grid_mm: float, slice_mm: float) -> tuple[Phantom, str, dict]:
    """The phantom, the structure measured, and its closed-form volume and mean dose."""
    if name in ("sphere_r20", "sphere_r7"):
        radius = 20.0 if name == "sphere_r20" else 7.0
        p = sphere_phantom(radius_mm=radius, dose_gy=60.0, grid_mm=grid_mm, slice_mm=slice_mm)
        return p, "GTV", {"volume_cc": 4.0 / 3.0 * math.pi * radius**3 / 1000.0,
                          "mean_gy": 60.0, "label": f"sphere r {radius:g} mm, uniform 60 Gy"}
    p = box_gradient_phantom(grid_mm=grid_mm, slice_mm=slice_mm)
    structure = "GTV" if name == "box_gradient" else "Lungs"
    solid = p.structures[0 if structure == "GTV" else 1].solids[0]
    label = ("box 62.6 × 37.4 × 42.2 mm, gradient 0.4 Gy/mm" if structure == "GTV" else
             "sphere r 18.7 mm, gradient 0.4 Gy/mm")
    return p, structure, {"volume_cc": solid.volume_cc(), "mean_gy": 40.0, "label": label}


def _contoured_cc(p: Phantom, structure: str) -> float:
    """Σ contour area × slice thickness over the structure's planes, cm³ (shoelace areas)."""
    s = next(x for x in p.structures if x.name == structure)
    total = 0.0
    for _, polys in p.contours(s):
        for poly in polys:
            x, y = poly[:, 0], poly[:, 1]
            total += 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
    return total * p.slice_mm / 1000.0


def measure_case(phantom: str, grid_mm: float, slice_mm: float, supersample: int) -> dict:
    """One case: the rasterised volume and mean dose against the exact and contoured values."""
    p, structure, exact = _phantom(phantom, grid_mm, slice_mm)
    files = phantom_bytes(replace(p, n_vertices=128))
    grid, _ = read_rtdose(("RD", files["RTDOSE"]))
    rois = read_rtstruct(("RS", files["RTSTRUCT"]))
    dvh = structure_dvh(grid, [rois.roi(structure)], label=structure,
                        default_thickness_mm=None,
                        config=RasterConfig(supersample=supersample))
    contoured = _contoured_cc(replace(p, n_vertices=128), structure)
    volume = float(dvh.total_volume_cc)
    row = {
        "phantom": phantom, "label": exact["label"], "grid_mm": grid_mm, "slice_mm": slice_mm,
        "supersample": supersample, "volume_cc": volume, "volume_exact_cc": exact["volume_cc"],
        "volume_contoured_cc": contoured,
        "volume_error_percent": 100.0 * (volume / exact["volume_cc"] - 1.0),
        "volume_vs_contoured_percent": 100.0 * (volume / contoured - 1.0),
        "mean_gy": dvh.mean_gy, "mean_exact_gy": exact["mean_gy"],
        "mean_error_gy": dvh.mean_gy - exact["mean_gy"],
    }
    if phantom.startswith("sphere_r"):
        row["geud_max_error_gy"] = max(abs(dvh.geud_gy(a) - 60.0) for a in GEUD_EXPONENTS)
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in row.items()}


def measure() -> dict:
    """Every case of :data:`CASES`."""
    return {"method": "matplotlib Path.contains_points, even-odd per plane, contour-plane slabs, "
                      "boundary pixels supersampled k × k, DVH bins 0.01 Gy at their mean dose",
            "cases": [measure_case(*case) for case in CASES]}


def render_table(saved: dict) -> str:
    """The markdown table of the saved measurement."""
    lines = ["| phantom | dose grid | k | volume vs exact | volume vs contoured | "
             "mean dose error |",
             "|---|---|---|---|---|---|"]
    for c in saved["cases"]:
        lines.append(
            f"| {c['label']} | {c['grid_mm']:g} mm | {c['supersample']} | "
            f"{c['volume_error_percent']:+.2f} % | {c['volume_vs_contoured_percent']:+.2f} % | "
            f"{c['mean_error_gy']:+.3f} Gy |")
    return "\n".join(lines) + "\n"


def block(text: str, key: str) -> str | None:
    """The generated block ``key`` of a page's text (None when its markers are missing)."""
    start = f"<!-- generated: {key} -->\n"
    if start not in text or _END not in text.split(start, 1)[1]:
        return None
    return text.split(start, 1)[1].split(_END, 1)[0]


def write() -> None:
    """Measure, save the JSON and rewrite the page's generated blocks (the accuracy table and the
    protocols' plan sections)."""
    saved = measure()
    ACCURACY_JSON.parent.mkdir(parents=True, exist_ok=True)
    ACCURACY_JSON.write_text(json.dumps(saved, indent=1) + "\n", encoding="utf-8")
    text = DOC.read_text(encoding="utf-8")
    for key, body in generated_blocks(saved).items():
        start = f"<!-- generated: {key} -->\n"
        old = block(text, key)
        if old is not None:
            text = text.replace(start + old + _END, start + body + _END)
    DOC.write_text(text, encoding="utf-8")


def generated_blocks(saved: dict) -> dict[str, str]:
    """Every generated block of docs/plan-import.md by its key."""
    from engine.core.protocols import PROTOCOL_NAMES, load_protocol
    from engine.core.protocols.plan import plan_markdown

    blocks = {"dvh-accuracy": render_table(saved)}
    for name in PROTOCOL_NAMES:
        blocks[f"plan-protocol {name}"] = plan_markdown(load_protocol(name))
    return blocks


if __name__ == "__main__":
    write()
