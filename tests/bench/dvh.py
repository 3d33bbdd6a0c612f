"""Plan import benchmark: a realistic DICOM plan (2.5-mm dose grid over a thorax, 10 structures,
2.5-mm CT slices) from files on disk to the protocol's features, DVH metrics and constraints.

``python -m tests.bench.dvh`` (also part of ``make bench``) prints one JSON line per measurement:
wall and CPU milliseconds (median of 3 after a warm-up), the grid and structure counts. The target
of issue #15 is the features in under 5 s on 2 cores. Measures, never asserts.
"""

from __future__ import annotations

import json
import statistics
import tempfile
from functools import partial
from pathlib import Path

from tests.bench.timing import timed_cpu


def _emit(name: str, wall: list[float], cpu: list[float], **extra: object) -> None:
    print(json.dumps({"bench": name, "n": len(wall),
                      "median_wall_ms": round(statistics.median(wall), 1),
                      "median_cpu_ms": round(statistics.median(cpu), 1), **extra}))


def bench_dvh() -> None:
    from engine.dvh import ImportConfig, import_plan, read_plan
    from engine.dvh.phantom import liver_phantom, thorax_phantom, write_phantom

    cases = (("nsclc", thorax_phantom(grid_mm=2.5, slice_mm=2.5)),
             ("hcc", liver_phantom(grid_mm=2.5, slice_mm=2.5)))
    with tempfile.TemporaryDirectory() as tmp:
        for protocol, phantom in cases:
            paths = write_phantom(phantom, Path(tmp) / protocol)
            files = {"rtdose": paths["RTDOSE"], "rtstruct": paths["RTSTRUCT"],
                     "rtplan": paths["RTPLAN"]}
            k, r, c = phantom.grid_shape
            extra = {"dose_grid_mm": phantom.grid_mm, "voxels": k * r * c,
                     "structures": len(phantom.structures),
                     "mb": round(sum(p.stat().st_size for p in paths.values()) / 2**20, 2)}
            wall, cpu = timed_cpu(partial(read_plan, **files), 3)
            _emit(f"dvh.{protocol}.read_files", wall, cpu, **extra)
            wall, cpu = timed_cpu(partial(import_plan, protocol, **files), 3)
            result = import_plan(protocol, **files)
            _emit(f"dvh.{protocol}.files_to_features_all_structures", wall, cpu, **extra,
                  features={k: round(v, 2) for k, v in result.features.items()})
            roles_only = ImportConfig(all_structures=False)
            wall, cpu = timed_cpu(partial(import_plan, protocol, **files, config=roles_only), 3)
            _emit(f"dvh.{protocol}.files_to_features_role_structures_only", wall, cpu,
                  **extra, structures_with_dvh=len(import_plan(
                      protocol, **files, config=roles_only).structures))


if __name__ == "__main__":
    bench_dvh()
