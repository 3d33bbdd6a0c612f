"""Contour-to-DVH rasterisers compared on the same DICOM files: the project's engine (pydicom 3 +
matplotlib ``Path``, :mod:`engine.dvh.rasterise`) against dicompyler-core 0.5.6's
``dvhcalc.get_dvh`` (which needs pydicom < 3), both against the closed-form truth.

Issue #15 asked to measure both before choosing. dicompyler-core cannot be installed next to
pydicom 3, so its side runs in a separate virtual environment that the project never depends on::

    python3.11 -m venv /tmp/dcvenv
    /tmp/dcvenv/bin/pip install "pydicom<3" "dicompyler-core[dvhinterpolation]==0.5.6" numpy
    python -m tests.bench.dvh_rasterisers --dicompyler-python /tmp/dcvenv/bin/python \\
        --save docs/bench/dvh_rasterisers.json --docs

The phantoms are the project's (:mod:`engine.dvh.phantom`), written once into a temporary folder
and read by both tools: a uniform 60-Gy sphere (r 20 mm and r 7 mm), a box and a sphere across a
0.4 Gy/mm gradient, on 2.5-mm and 4-mm dose grids with 2.5-mm slices, and the benchmark's thorax
(2.5-mm grid, 10 structures). Every metric is computed with one set of definitions
(:class:`engine.dvh.dvh.DVH`) from each tool's differential DVH, so the numbers differ only by
the rasterisation; dicompyler's own ``statistic()`` values are saved too. The truth is the closed
form for the analytic phantoms (the exact solid in the exact dose) and, for the thorax, the
analytic dose sampled on a fine midpoint grid inside the exact solids.

dicompyler variants (its documented ``get_dvh`` options): its defaults; in-plane interpolation
of structure and dose to a quarter of the dose grid spacing (``interpolation_resolution``, with
``use_structure_extents``); and that plus two segments between contour planes
(``interpolation_segments_between_planes=2``). The engine: its default (edge pixels split 8 × 8),
the former default 4 × 4, and without supersampling.

Times are per structure, from the files already read (each tool's datasets or grid kept), on the
shared 2-core machine: wall and CPU seconds. Measures, never asserts; not collected as a test.

This file is also the dicompyler worker (``--worker SPEC OUT``, run by the separate Python): that
mode imports only the standard library, numpy, pydicom and dicompylercore.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS_JSON = ROOT / "docs" / "bench" / "dvh_rasterisers.json"
"""The saved comparison that docs/plan-import.md shows."""
DOC = ROOT / "docs" / "plan-import.md"
BLOCK_KEY = "dvh-rasterisers"
"""Key of the generated block of docs/plan-import.md."""

GEUD_EXPONENTS = (-20.0, -10.0, 10.0)
"""gEUD exponents compared (a = 1 is the mean dose)."""
NEAR_MAX_CC = 0.03
"""Near-maximum volume of D0.03cc, cm³ (as engine.dvh.dvh.NEAR_MAX_CC)."""

ANALYTIC_CASES: tuple[tuple[str, float], ...] = (
    ("sphere_r20", 2.5), ("sphere_r20", 4.0), ("sphere_r7", 2.5), ("sphere_r7", 4.0),
    ("box_gradient", 2.5), ("box_gradient", 4.0), ("sphere_gradient", 2.5),
    ("sphere_gradient", 4.0))
"""(phantom, dose-grid spacing mm) of the analytic cases; slices are 2.5 mm apart."""
SLICE_MM = 2.5
THORAX_GRID_MM = 2.5

ENGINE_METHODS = {"engine k=8": 8, "engine k=4": 4, "engine k=1": 1}
"""Engine methods: name → supersampling of edge pixels (8, the default; 4, the former default;
1, none)."""
DICOMPYLER_VARIANTS: dict[str, dict] = {
    "dicompyler default": {},
    "dicompyler interp 1/4": {"use_structure_extents": True, "interpolation_resolution": 0.25},
    "dicompyler interp 1/4 + 2 segments": {
        "use_structure_extents": True, "interpolation_resolution": 0.25,
        "interpolation_segments_between_planes": 2},
}
"""dicompyler variants: name → get_dvh keyword arguments (``interpolation_resolution`` as a
fraction of the dose grid's pixel spacing)."""

METRIC_KEYS = ("volume_cc", "mean_gy", "d98_gy", "d2_gy", "d003cc_gy", "v_percent",
               *(f"geud_a{a:g}_gy" for a in GEUD_EXPONENTS))
"""Metrics of every row (``v_percent`` is V at the case's ``v_dose_gy``)."""


# --------------------------------------------------------------------------------------------
# dicompyler worker (separate interpreter: stdlib, numpy, pydicom < 3, dicompylercore only)


def _dicompyler_worker(spec_path: Path, out_path: Path) -> None:
    """Run ``dvhcalc.get_dvh`` for every case, structure and variant of the spec; write JSON."""
    # This file's folder is first on sys.path when run as a script: keep its modules from
    # shadowing anything the separate environment imports.
    here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    import numpy as np
    import pydicom
    from dicompylercore import __version__ as dc_version
    from dicompylercore import dvhcalc

    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    results = []
    for case in spec["cases"]:
        rtstruct = pydicom.dcmread(case["rtstruct"])
        rtdose = pydicom.dcmread(case["rtdose"])
        spacing = float(rtdose.PixelSpacing[0])
        for variant, kwargs in spec["variants"].items():
            kw = dict(kwargs)
            if "interpolation_resolution" in kw:
                kw["interpolation_resolution"] = spacing * kw["interpolation_resolution"]
            for name, roi_number in case["rois"].items():
                start, start_cpu = time.perf_counter(), time.process_time()
                dvh = dvhcalc.get_dvh(rtstruct, rtdose, roi_number, **kw)
                cpu = time.process_time() - start_cpu
                wall = time.perf_counter() - start
                diff = dvh.differential
                keep = diff.counts > 0
                stats: dict[str, float] = {"volume_cc": float(dvh.volume),
                                           "mean_gy": float(dvh.mean)}
                for stat in ("D98", "D2", "D0.03cc", f"V{case['v_dose_gy']:g}Gy"):
                    value = (dvh.relative_volume.statistic(stat) if stat.startswith("V")
                             else dvh.statistic(stat))
                    stats[stat] = float(value.value)
                results.append({
                    "case": case["case"], "structure": name, "method": variant,
                    "wall_s": wall, "cpu_s": cpu, "notes": dvh.notes,
                    "dose_gy": [float(x) for x in diff.bincenters[keep]],
                    "volume_cc": [float(x) for x in np.asarray(diff.counts)[keep]],
                    "own_statistics": stats})
    versions = {"dicompyler-core": dc_version, "pydicom": pydicom.__version__,
                "numpy": np.__version__, "python": sys.version.split()[0]}
    out_path.write_text(json.dumps({"versions": versions, "results": results}),
                        encoding="utf-8")


# --------------------------------------------------------------------------------------------
# Truth


def _weighted_metrics(dose, weight, volume_cc: float, v_dose_gy: float) -> dict[str, float]:
    """Metrics of a dose distribution given as samples ``dose`` with weights (continuous: the
    quantiles are interpolated between sorted samples)."""
    import numpy as np

    order = np.argsort(dose)
    d = np.asarray(dose, dtype=np.float64)[order]
    w = np.asarray(weight, dtype=np.float64)[order]
    w = w / w.sum()
    # received[i]: fraction receiving at least d[i] (centred on each sample's own weight).
    received = 1.0 - (np.cumsum(w) - 0.5 * w)

    def dose_at(fraction: float) -> float:
        return float(np.interp(fraction, received[::-1], d[::-1]))

    out = {"volume_cc": volume_cc, "mean_gy": float(np.sum(w * d)),
           "d98_gy": dose_at(0.98), "d2_gy": dose_at(0.02),
           "d003cc_gy": dose_at(NEAR_MAX_CC / volume_cc),
           "v_percent": 100.0 * float(np.sum(w[d >= v_dose_gy]))}
    for a in GEUD_EXPONENTS:
        out[f"geud_a{a:g}_gy"] = float(np.sum(w * d**a) ** (1.0 / a))
    return out


def _analytic(name: str, grid_mm: float):
    """The phantom, the structure compared, the label, V's dose, and the truth."""
    import numpy as np

    from engine.dvh.phantom import box_gradient_phantom, sphere_phantom

    if name.startswith("sphere_r"):
        radius = float(name.removeprefix("sphere_r"))
        p = sphere_phantom(radius_mm=radius, dose_gy=60.0, grid_mm=grid_mm, slice_mm=SLICE_MM,
                           n_vertices=128)
        volume = 4.0 / 3.0 * math.pi * radius**3 / 1000.0
        truth = _weighted_metrics(np.array([60.0]), np.array([1.0]), volume, 57.0)
        return p, "GTV", f"sphere r {radius:g} mm, uniform 60 Gy", 57.0, truth
    p = box_gradient_phantom(grid_mm=grid_mm, slice_mm=SLICE_MM)
    from dataclasses import replace

    p = replace(p, n_vertices=128)
    # D = 40 Gy + 0.4 Gy/mm · (x − x_c): the distribution of x across the solid is the dose's.
    u = (np.arange(400_000) + 0.5) / 400_000 * 2.0 - 1.0  # x / half-size, midpoints in (−1, 1)
    if name == "box_gradient":
        solid = p.structures[0].solids[0]
        half = solid.radii_mm[0]
        weight = np.ones_like(u)  # uniform in x
        structure, label = "GTV", "box 62.6 × 37.4 × 42.2 mm, 0.4 Gy/mm"
    else:
        solid = p.structures[1].solids[0]
        half = solid.radii_mm[0]
        weight = 1.0 - u * u  # a sphere's section area at x ∝ r² − x²
        structure, label = "Lungs", "sphere r 18.7 mm, 0.4 Gy/mm"
    dose = 40.0 + 0.4 * half * u
    truth = _weighted_metrics(dose, weight, solid.volume_cc(), 45.0)
    return p, structure, label, 45.0, truth


def _thorax_truth(phantom, structure, spacing_mm: float = 1.0) -> dict[str, float]:
    """The analytic dose on a midpoint grid of ``spacing_mm`` inside the exact solids (volume:
    the solids' exact volumes)."""
    import numpy as np

    doses = []
    for solid in structure.solids:
        lo = [c - r for c, r in zip(solid.centre_mm, solid.radii_mm, strict=True)]
        n = [max(8, math.ceil(2 * r / spacing_mm)) for r in solid.radii_mm]
        axes = [lo[i] + (np.arange(n[i]) + 0.5) * (2 * solid.radii_mm[i] / n[i])
                for i in range(3)]
        yy, xx = np.meshgrid(axes[1], axes[0], indexing="ij")
        for z in axes[2]:  # one plane at a time keeps the memory small
            zz = np.full_like(xx, z)
            inside = solid.contains(xx, yy, zz)
            if inside.any():
                doses.append(phantom.dose(xx[inside], yy[inside], zz[inside]))
    dose = np.concatenate(doses)
    volume = sum(s.volume_cc() for s in structure.solids)
    return _weighted_metrics(dose, np.ones_like(dose), volume, 20.0)


def _contoured_cc(phantom, name: str) -> float:
    """Σ contour area × slice thickness over the structure's planes, cm³."""
    from engine.dvh.accuracy import _contoured_cc as contoured

    return contoured(phantom, name)


# --------------------------------------------------------------------------------------------
# The engine's side and the common metrics


def _metrics(dvh, v_dose_gy: float) -> dict[str, float]:
    """The compared metrics of an engine DVH."""
    out = {"volume_cc": float(dvh.total_volume_cc), "mean_gy": dvh.mean_gy,
           "d98_gy": dvh.dose_at_fraction(0.98), "d2_gy": dvh.dose_at_fraction(0.02),
           "d003cc_gy": dvh.near_max_gy, "v_percent": 100.0 * dvh.fraction_at_dose(v_dose_gy)}
    for a in GEUD_EXPONENTS:
        out[f"geud_a{a:g}_gy"] = dvh.geud_gy(a)
    return out


def _engine_rows(case: str, paths: dict[str, Path], structures: dict[str, float]) -> list[dict]:
    """Engine rows for each structure (name → V's dose) and method."""
    from engine.dvh.dicom import read_rtdose, read_rtstruct
    from engine.dvh.rasterise import RasterConfig, structure_dvh

    grid, _ = read_rtdose(paths["RTDOSE"])
    rois = read_rtstruct(paths["RTSTRUCT"])
    rows = []
    for method, k in ENGINE_METHODS.items():
        for name, v_dose in structures.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            dvh = structure_dvh(grid, [rois.roi(name)], label=name,
                                default_thickness_mm=rois.default_thickness_mm,
                                config=RasterConfig(supersample=k))
            cpu = time.process_time() - start_cpu
            wall = time.perf_counter() - start
            rows.append({"case": case, "structure": name, "method": method, "wall_s": wall,
                         "cpu_s": cpu, "metrics": _metrics(dvh, v_dose)})
    return rows


def _dicompyler_rows(python: str, cases: list[dict], tmp: Path) -> tuple[dict, list[dict]]:
    """Run the worker in the separate interpreter; its rows with the common metrics."""
    import numpy as np

    from engine.dvh.dvh import DVH

    spec = tmp / "spec.json"
    out = tmp / "dicompyler.json"
    spec.write_text(json.dumps({"cases": cases, "variants": DICOMPYLER_VARIANTS}),
                    encoding="utf-8")
    subprocess.run([python, str(Path(__file__).resolve()), "--worker", str(spec), str(out)],
                   check=True, cwd=tmp)
    raw = json.loads(out.read_text(encoding="utf-8"))
    v_doses = {c["case"]: c["v_dose_gy"] for c in cases}
    rows = []
    for r in raw["results"]:
        dose = np.asarray(r.pop("dose_gy"))
        vol = np.asarray(r.pop("volume_cc"))
        # Its differential DVH: 0.01-Gy bins at their centres, volumes in cm³.
        dvh = DVH(dose, vol / vol.sum(), float(vol.sum()))
        rows.append({**r, "metrics": _metrics(dvh, v_doses[r["case"]])})
    return raw["versions"], rows


# --------------------------------------------------------------------------------------------
# Measure, save, render


def measure(dicompyler_python: str | None) -> dict:
    """Write the phantoms, run both tools on them, and compare with the truth."""
    from engine.dvh.phantom import thorax_phantom, write_phantom

    cases: list[dict] = []
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        worker_cases = []
        for name, grid_mm in ANALYTIC_CASES:
            phantom, structure, label, v_dose, truth = _analytic(name, grid_mm)
            case = f"{name}@{grid_mm:g}mm"
            paths = write_phantom(phantom, tmp / case)
            cases.append({"case": case, "phantom": name, "label": label, "grid_mm": grid_mm,
                          "slice_mm": SLICE_MM, "structure": structure, "v_dose_gy": v_dose,
                          "truth": {structure: truth},
                          "contoured_cc": {structure: _contoured_cc(phantom, structure)}})
            rows += _engine_rows(case, paths, {structure: v_dose})
            worker_cases.append({"case": case, "rtdose": str(paths["RTDOSE"]),
                                 "rtstruct": str(paths["RTSTRUCT"]), "v_dose_gy": v_dose,
                                 "rois": {structure: 1 + [s.name for s in
                                                          phantom.structures].index(structure)}})
        thorax = thorax_phantom(grid_mm=THORAX_GRID_MM, slice_mm=SLICE_MM)
        case = f"thorax@{THORAX_GRID_MM:g}mm"
        paths = write_phantom(thorax, tmp / case)
        names = [s.name for s in thorax.structures]
        cases.append({"case": case, "phantom": "thorax",
                      "label": "thorax, 60 Gy to the PTV", "grid_mm": THORAX_GRID_MM,
                      "slice_mm": SLICE_MM, "structure": None, "v_dose_gy": 20.0,
                      "truth": {s.name: _thorax_truth(thorax, s) for s in thorax.structures},
                      "contoured_cc": {n: _contoured_cc(thorax, n) for n in names}})
        rows += _engine_rows(case, paths, dict.fromkeys(names, 20.0))
        worker_cases.append({"case": case, "rtdose": str(paths["RTDOSE"]),
                             "rtstruct": str(paths["RTSTRUCT"]), "v_dose_gy": 20.0,
                             "rois": {n: i + 1 for i, n in enumerate(names)}})
        versions: dict = {}
        if dicompyler_python:
            versions, dc_rows = _dicompyler_rows(dicompyler_python, worker_cases, tmp)
            rows += dc_rows
    import matplotlib
    import pydicom

    for row in rows:
        row["metrics"] = {k: round(v, 6) for k, v in row["metrics"].items()}
        row["wall_s"] = round(row["wall_s"], 4)
        row["cpu_s"] = round(row["cpu_s"], 4)
        if "own_statistics" in row:
            row["own_statistics"] = {k: round(v, 6) for k, v in row["own_statistics"].items()}
    for case in cases:
        for side in ("truth", "contoured_cc"):
            case[side] = {s: (round(v, 6) if isinstance(v, float) else
                              {k: round(x, 6) for k, x in v.items()})
                          for s, v in case[side].items()}
    return {
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "engine": {"pydicom": pydicom.__version__, "matplotlib": matplotlib.__version__},
        "dicompyler": versions,
        "dicompyler_variants": DICOMPYLER_VARIANTS,
        "engine_methods": ENGINE_METHODS,
        "cases": cases,
        "rows": rows,
    }


def _row(saved: dict, case: str, structure: str, method: str) -> dict | None:
    return next((r for r in saved["rows"] if (r["case"], r["structure"], r["method"])
                 == (case, structure, method)), None)


def methods(saved: dict) -> list[str]:
    """Methods measured, in order: the engine's, then dicompyler's."""
    out = list(saved["engine_methods"])
    if saved["dicompyler"]:
        out += list(saved["dicompyler_variants"])
    return out


def summary(saved: dict) -> dict[str, dict[str, float]]:
    """Per method, over the analytic cases: the largest |volume error| vs the exact solid and vs
    the contoured volume (%), the largest |error| of the mean, D98, D2, D0.03cc and of any gEUD
    (Gy); over the thorax's structures the largest |volume error| vs the contoured volume (%) and
    |error| of the mean dose vs the sampled reference (Gy); and the summed wall and CPU time over
    all structures of all cases (s)."""
    out: dict[str, dict[str, float]] = {}
    for method in methods(saved):
        s = {"volume_vs_exact_percent": 0.0, "volume_vs_contoured_percent": 0.0,
             "mean_gy": 0.0, "d98_gy": 0.0, "d2_gy": 0.0, "d003cc_gy": 0.0, "geud_gy": 0.0,
             "thorax_volume_vs_contoured_percent": 0.0, "thorax_mean_gy": 0.0,
             "wall_s": 0.0, "cpu_s": 0.0}
        for case in saved["cases"]:
            for structure, truth in case["truth"].items():
                row = _row(saved, case["case"], structure, method)
                if row is None:
                    continue
                s["wall_s"] += row["wall_s"]
                s["cpu_s"] += row["cpu_s"]
                m = row["metrics"]
                if case["phantom"] == "thorax":
                    s["thorax_volume_vs_contoured_percent"] = max(
                        s["thorax_volume_vs_contoured_percent"],
                        abs(100.0 * (m["volume_cc"] / case["contoured_cc"][structure] - 1.0)))
                    s["thorax_mean_gy"] = max(s["thorax_mean_gy"],
                                              abs(m["mean_gy"] - truth["mean_gy"]))
                    continue
                s["volume_vs_exact_percent"] = max(s["volume_vs_exact_percent"], abs(
                    100.0 * (m["volume_cc"] / truth["volume_cc"] - 1.0)))
                s["volume_vs_contoured_percent"] = max(s["volume_vs_contoured_percent"], abs(
                    100.0 * (m["volume_cc"] / case["contoured_cc"][structure] - 1.0)))
                for key in ("mean_gy", "d98_gy", "d2_gy", "d003cc_gy"):
                    s[key] = max(s[key], abs(m[key] - truth[key]))
                s["geud_gy"] = max(s["geud_gy"], *(
                    abs(m[f"geud_a{a:g}_gy"] - truth[f"geud_a{a:g}_gy"]) for a in GEUD_EXPONENTS))
        out[method] = {k: round(v, 4) for k, v in s.items()}
    return out


OWN_STATISTICS = {"mean_gy": "mean_gy", "d98_gy": "D98", "d2_gy": "D2", "d003cc_gy": "D0.03cc"}
"""Metric → the name of dicompyler's own ``DVH`` attribute or ``statistic()`` saved for it."""


def own_summary(saved: dict) -> dict[str, dict[str, float]]:
    """Per dicompyler variant, over the analytic cases: the largest |error| (Gy) of its own
    statistics (``DVH.mean`` and ``statistic("D98")`` …: the bin nearest the volume on its
    cumulative curve, each bin at its centre) against the truth."""
    out: dict[str, dict[str, float]] = {}
    for method in methods(saved):
        if method in saved["engine_methods"]:
            continue
        s = dict.fromkeys(OWN_STATISTICS, 0.0)
        for case in saved["cases"]:
            if case["phantom"] == "thorax":
                continue
            for structure, truth in case["truth"].items():
                row = _row(saved, case["case"], structure, method)
                if row is None:
                    continue
                for key, name in OWN_STATISTICS.items():
                    s[key] = max(s[key], abs(row["own_statistics"][name] - truth[key]))
        out[method] = {k: round(v, 4) for k, v in s.items()}
    return out


def _pct(value: float, reference: float) -> float:
    return 100.0 * (value / reference - 1.0)


def findings(saved: dict) -> list[str]:
    """What the measurement shows, as bullet points whose numbers all come from ``saved`` (the
    page's text around them has no numbers of its own). Needs the dicompyler rows."""
    sm = summary(saved)
    k8, k4, k1 = sm["engine k=8"], sm["engine k=4"], sm["engine k=1"]
    dc, di = sm["dicompyler default"], sm["dicompyler interp 1/4"]
    dis = sm["dicompyler interp 1/4 + 2 segments"]
    pairs = [(r, _row(saved, r["case"], r["structure"], "dicompyler default"))
             for r in saved["rows"] if r["method"] == "engine k=1"]
    vol_diff = max(abs(_pct(d["metrics"]["volume_cc"], e["metrics"]["volume_cc"]))
                   for e, d in pairs)
    mean_diff = max(abs(d["metrics"]["mean_gy"] - e["metrics"]["mean_gy"]) for e, d in pairs)
    thorax = next(c for c in saved["cases"] if c["phantom"] == "thorax")

    def t(structure: str, method: str, key: str) -> float:
        row = _row(saved, thorax["case"], structure, method)
        return row["metrics"][key]

    ptv = thorax["truth"]["PTV"]["d98_gy"]
    cord_cc = thorax["contoured_cc"]["SpinalCord"]
    ext = thorax["truth"]["External"]["geud_a-10_gy"]
    sphere = _row(saved, "sphere_r20@2.5mm", "GTV", "dicompyler default")["own_statistics"]
    ptv_dc = t("PTV", "dicompyler interp 1/4", "d98_gy")
    cord = [_pct(t("SpinalCord", f"engine k={k}", "volume_cc"), cord_cc) for k in (4, 8)]
    shift = [abs(_row(saved, f"box_gradient@{g:g}mm", "GTV", "dicompyler interp 1/4")["metrics"][
        "mean_gy"] - 40.0) / (0.4 * g) for g in (2.5, 4.0)]  # the box's 40 Gy, 0.4 Gy/mm
    # The analytic case where the default's D2 is furthest from the truth.
    d2_case, d2_structure = max(
        ((c, s) for c in saved["cases"] if c["phantom"] != "thorax" for s in c["truth"]),
        key=lambda cs: abs(_row(saved, cs[0]["case"], cs[1], "engine k=8")["metrics"]["d2_gy"]
                           - cs[0]["truth"][cs[1]]["d2_gy"]))

    def d2_error(method: str) -> float:
        row = _row(saved, d2_case["case"], d2_structure, method)
        return abs(row["metrics"]["d2_gy"] - d2_case["truth"][d2_structure]["d2_gy"])

    return [
        f"- **dicompyler's default is the engine without supersampling** (k = 1): the same "
        f"voxel-centre test with matplotlib's `Path` and the same linear dose interpolation "
        f"between frames. On every structure the volumes agree to {vol_diff:.3f} % and the mean "
        f"doses to {mean_diff:.3f} Gy (its 0.01-Gy bins sit at their centres). Like k = 1 it "
        f"loses partial voxels: volume off by up to {dc['volume_vs_contoured_percent']:.2f} % "
        f"of the contoured volume, the mean dose in the "
        f"gradient by up to {dc['mean_gy']:.3f} Gy, a gEUD by up to {dc['geud_gy']:.3f} Gy; "
        f"the engine's default (k = 8): {k8['volume_vs_contoured_percent']:.2f} %, "
        f"{k8['mean_gy']:.3f} Gy and {k8['geud_gy']:.3f} Gy.",
        f"- **Its in-plane interpolation** (`interpolation_resolution` a quarter of the pixel) "
        f"recovers the partial voxels (volume within {di['volume_vs_contoured_percent']:.2f} % "
        f"of the contoured volume; thorax {di['thorax_volume_vs_contoured_percent']:.2f} %) but "
        f"moves the dose against the contours, by {shift[0]:.2f} and {shift[1]:.2f} of a dose "
        f"pixel on the 2.5- and 4-mm grids (the box's mean dose error ÷ its gradient): in the "
        f"0.4 Gy/mm gradient the mean dose is off by up to {di['mean_gy']:.3f} Gy and D2 by up "
        f"to {di['d2_gy']:.3f} Gy; the thorax PTV's D98 is {ptv_dc:.2f} Gy against "
        f"{ptv:.2f} Gy (engine {t('PTV', 'engine k=8', 'd98_gy'):.2f} Gy). A uniform dose "
        f"hides it.",
        f"- **Interpolating between planes** (`interpolation_segments_between_planes=2`) "
        f"copies the nearest plane and thins the slabs, which drops part of the end slabs: "
        f"volume off by up to {dis['volume_vs_contoured_percent']:.2f} % (thorax "
        f"{dis['thorax_volume_vs_contoured_percent']:.2f} %).",
        f"- **Its own statistics** (`statistic(\"D98\")` …) take the bin whose cumulative "
        f"volume is nearest the asked one; on a step-shaped curve that is the first bin: the "
        f"uniform 60-Gy sphere's D98, D2 and D0.03cc come out as {sphere['D98']:.2f}, "
        f"{sphere['D2']:.2f} and {sphere['D0.03cc']:.2f} Gy (the table above). The common "
        f"definitions avoid this, so that the first table compares the rasterisation only.",
        f"- **Time**, every structure of every case: engine k = 8 {k8['wall_s']:.2f} s wall "
        f"({k8['cpu_s']:.2f} s CPU), k = 4 {k4['wall_s']:.2f} s ({k4['cpu_s']:.2f} s), "
        f"dicompyler default {dc['wall_s']:.2f} s ({dc['cpu_s']:.2f} s), with interpolation "
        f"{di['wall_s']:.2f} s ({di['cpu_s']:.2f} s), with plane segments too "
        f"{dis['wall_s']:.2f} s ({dis['cpu_s']:.2f} s).",
        f"- **Why k = 8 and not 4**: a thin structure whose section is the same on every plane "
        f"keeps the same sub-pixel lattice error on every plane: the 12-mm SpinalCord cylinder "
        f"is {cord[0]:+.2f} % of its contoured volume with k = 4 and {cord[1]:+.2f} % with "
        f"k = 8 (the thorax's largest volume error "
        f"{k4['thorax_volume_vs_contoured_percent']:.2f} % → "
        f"{k8['thorax_volume_vs_contoured_percent']:.2f} %); over the analytic cases the "
        f"largest error of the mean dose falls from {k4['mean_gy']:.3f} to {k8['mean_gy']:.3f} "
        f"Gy and of a gEUD from {k4['geud_gy']:.3f} to {k8['geud_gy']:.3f} Gy, for "
        f"{k8['cpu_s'] / k4['cpu_s']:.1f} × the CPU time. The engine without supersampling is "
        f"{k1['thorax_volume_vs_contoured_percent']:.2f} % off on the thorax.",
        f"- **D2 is bounded by the dose grid, not by k**: its largest error, "
        f"{d2_error('engine k=8'):.3f} Gy with k = 8 ({d2_case['label']}, "
        f"{d2_case['grid_mm']:g}-mm grid), is {d2_error('engine k=1'):.3f} Gy without "
        f"supersampling too: a pixel wholly inside the structure takes the dose at its centre, "
        f"so in the gradient the hottest 2 % ends on a step one pixel wide; k = 4's "
        f"{d2_error('engine k=4'):.3f} Gy is where its edge volume happens to fall on that "
        f"step.",
        f"- **Every method** gives the External a gEUD for a = −10 far below the truth "
        f"({t('External', 'engine k=8', 'geud_a-10_gy'):.3f} Gy engine, "
        f"{t('External', 'dicompyler default', 'geud_a-10_gy'):.3f} Gy dicompyler) against "
        f"{ext:.3f} Gy: the dose grid is 0 Gy outside the body, and a negative exponent is "
        f"ruled by the body-surface voxels that interpolation pulls towards 0.",
    ]


def docs_table(saved: dict) -> str:
    """The markdown of docs/plan-import.md's generated block: the summary per method, then (folded)
    per case the value of every method next to the truth."""
    versions = saved["dicompyler"]
    lines = [
        f"Measured {saved['date']}: engine with pydicom {saved['engine']['pydicom']} and "
        f"matplotlib {saved['engine']['matplotlib']}"
        + (f"; dicompyler-core {versions['dicompyler-core']} with pydicom {versions['pydicom']} "
           f"and numpy {versions['numpy']} (Python {versions['python']}) in its own environment"
           if versions else "; dicompyler not measured") + ". Largest error per method:",
        "",
        "| method | volume vs exact | volume vs contoured | mean | D98 | D2 | D0.03cc | gEUD "
        "(a = −20, −10, 10) | thorax: volume vs contoured | thorax: mean | wall | CPU |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for method, s in summary(saved).items():
        lines.append(
            f"| {method} | {s['volume_vs_exact_percent']:.2f} % | "
            f"{s['volume_vs_contoured_percent']:.2f} % | {s['mean_gy']:.3f} Gy | "
            f"{s['d98_gy']:.3f} Gy | {s['d2_gy']:.3f} Gy | {s['d003cc_gy']:.3f} Gy | "
            f"{s['geud_gy']:.3f} Gy | {s['thorax_volume_vs_contoured_percent']:.2f} % | "
            f"{s['thorax_mean_gy']:.3f} Gy | {s['wall_s']:.2f} s | {s['cpu_s']:.2f} s |")
    if saved["dicompyler"]:
        lines += ["", "dicompyler's own statistics (`DVH.mean`, `statistic(\"D98\")` …) instead "
                  "of the common definitions, largest error over the analytic cases:", "",
                  "| method | mean | D98 | D2 | D0.03cc |", "|---|---|---|---|---|"]
        for method, s in own_summary(saved).items():
            lines.append(f"| {method} | {s['mean_gy']:.3f} Gy | {s['d98_gy']:.3f} Gy | "
                         f"{s['d2_gy']:.3f} Gy | {s['d003cc_gy']:.3f} Gy |")
    if saved["dicompyler"]:
        lines += ["", *findings(saved)]
    lines += ["", "<details><summary>Every case: each method's values next to the truth "
              "(V at the dose given; time per structure)</summary>", "",
              "| case | structure | method | volume cm³ | mean Gy | D98 Gy | D2 Gy | "
              "D0.03cc Gy | V % | gEUD −20 | gEUD −10 | gEUD 10 | time s |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for case in saved["cases"]:
        for structure, truth in case["truth"].items():
            where = f"{case['label']}, {case['grid_mm']:g}-mm grid"
            cells = [(f"truth (contoured {case['contoured_cc'][structure]:.2f} cm³)", truth,
                      None)]
            for method in methods(saved):
                row = _row(saved, case["case"], structure, method)
                if row is not None:
                    cells.append((method, row["metrics"], row["wall_s"]))
            for method, m, wall in cells:
                lines.append(
                    f"| {where} | {structure} | {method} | {m['volume_cc']:.2f} | "
                    f"{m['mean_gy']:.3f} | {m['d98_gy']:.2f} | {m['d2_gy']:.2f} | "
                    f"{m['d003cc_gy']:.2f} | V{case['v_dose_gy']:g} {m['v_percent']:.2f} | "
                    + " | ".join(f"{m[f'geud_a{a:g}_gy']:.3f}" for a in GEUD_EXPONENTS)
                    + f" | {'' if wall is None else f'{wall:.3f}'} |")
    lines += ["", "</details>"]
    return "\n".join(lines) + "\n"


def write_docs(saved: dict) -> None:
    """Rewrite the generated block of docs/plan-import.md from ``saved``."""
    from engine.dvh.accuracy import block

    text = DOC.read_text(encoding="utf-8")
    start, end = f"<!-- generated: {BLOCK_KEY} -->\n", "<!-- end generated -->"
    old = block(text, BLOCK_KEY)
    if old is None:
        raise SystemExit(f"{DOC} lacks the block {start.strip()}")
    DOC.write_text(text.replace(start + old + end, start + docs_table(saved) + end),
                   encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dicompyler-python", default=None,
                        help="Python of a separate environment with pydicom < 3 and "
                             "dicompyler-core 0.5.6 (without it only the engine is measured)")
    parser.add_argument("--save", type=Path, default=None,
                        help=f"keep the results in this JSON file (e.g. {DOCS_JSON})")
    parser.add_argument("--docs", action="store_true",
                        help="rewrite docs/plan-import.md's block from the saved JSON "
                             "(--save's file, else the docs' JSON), without measuring unless "
                             "--dicompyler-python is given")
    parser.add_argument("--worker", nargs=2, type=Path, metavar=("SPEC", "OUT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _dicompyler_worker(*args.worker)
        return
    if args.docs and not args.dicompyler_python:
        saved = json.loads((args.save or DOCS_JSON).read_text(encoding="utf-8"))
    else:
        saved = measure(args.dicompyler_python)
        if args.save:
            args.save.parent.mkdir(parents=True, exist_ok=True)
            args.save.write_text(json.dumps(saved, indent=1, ensure_ascii=False) + "\n",
                                 encoding="utf-8")
        print(json.dumps({"bench": "dvh.rasterisers", "summary": summary(saved)}))
    if args.docs:
        write_docs(saved)
    print(docs_table(saved))


if __name__ == "__main__":
    main()
