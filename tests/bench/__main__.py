"""Benchmarks: `make bench` prints one JSON object per line. Measures, never asserts.

``python -m tests.bench --retrain`` also times the full default retrain of the synthetic-patient
GANs and the ODM ensembles of both protocols (into a temporary copy of models/; minutes).
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from functools import partial

from engine.cohort import ReferenceModel, generate_cohort, write_cases_csv
from engine.protocols import PROTOCOL_NAMES, load_protocol
from engine.recommend import recommend
from engine.schema import read_cases


def _timed(fn: Callable[[], object], repeats: int) -> list[float]:
    fn()  # warm caches (calibration, imports)
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000.0)
    return out


def _emit(name: str, samples_ms: list[float], **extra: object) -> None:
    ordered = sorted(samples_ms)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    print(
        json.dumps(
            {
                "bench": name,
                "n": len(samples_ms),
                "median_ms": round(statistics.median(samples_ms), 3),
                "p95_ms": round(p95, 3),
                **extra,
            }
        )
    )


def _bench_learned(name, protocol, one, many) -> None:
    """Learned ensembles from models/ (skipped with a note when none are trained)."""
    from engine.registry import ArtifactError
    from engine.rtoe_train import load_served_model

    for arch in ("glogd", "single"):
        try:
            model = load_served_model(name, arch)
        except ArtifactError as err:
            print(json.dumps({"bench": f"{name}.{arch}", "skipped": str(err)}))
            continue
        _emit(
            f"{name}.{arch}.curves_one_case_all_members",
            _timed(partial(model.predict_curves, one, protocol), 200),
            members=len(model.tcp_members) + len(model.ntcp_members),
            doses=len(protocol.dose_grid_gy),
        )
        _emit(
            f"{name}.{arch}.curves_10k_patients",
            _timed(partial(model.predict_curves, many.iloc[:10_000], protocol), 3),
            cases=min(len(many), 10_000),
        )


def _bench_recommender(name, protocol, one) -> None:
    """One full recommendation: every outcome member's curves plus the 5 ODM members."""
    from engine.odm_train import OdmUnavailable, odm_for_model
    from engine.registry import ArtifactError
    from engine.rtoe_train import load_served_model

    for arch in ("glogd", "single"):
        try:
            model = load_served_model(name, arch)
            odm = odm_for_model(name, model)
        except (ArtifactError, OdmUnavailable) as err:
            print(json.dumps({"bench": f"{name}.{arch}.odm", "skipped": str(err)}))
            continue
        _emit(
            f"{name}.{arch}.recommend_one_case_rtoe_and_odm",
            _timed(partial(recommend, one, protocol, model, odm), 200),
            outcome_members=len(model.tcp_members) + len(model.ntcp_members),
            odm_members=len(odm.members),
        )


def _bench_retrain() -> None:
    """Full default retrain of GAN + ODM (both architectures) per protocol, in a temp folder."""
    import shutil
    import tempfile
    from pathlib import Path

    import torch

    from engine.executor import make_executor
    from engine.odm_train import train_odm
    from engine.registry import models_dir

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "models"
        shutil.copytree(models_dir(), target)
        for name in PROTOCOL_NAMES:
            start = time.perf_counter()
            with make_executor("local") as executor:
                payload = train_odm(name, executor, budget="default", models_dir=target)
            print(json.dumps({
                "bench": f"{name}.retrain_gan_and_odm_default",
                "seconds": round(time.perf_counter() - start, 1),
                "phases_seconds": payload["wall_seconds"],
            }))


def main() -> None:
    import sys
    import tempfile
    from pathlib import Path

    for name in PROTOCOL_NAMES:
        protocol, model = load_protocol(name), ReferenceModel(name)
        one = generate_cohort(name, seed=1, n_patients=1).table.iloc[:1]
        _emit(
            f"{name}.recommend_one_case",
            _timed(partial(recommend, one, protocol, model), 200),
            doses=len(protocol.dose_grid_gy),
        )
        many = generate_cohort(name, seed=2, n_patients=10_000).table
        _emit(
            f"{name}.curves_10k_patients",
            _timed(partial(model.predict_curves, many, protocol), 5),
            cases=len(many),
        )
        _emit(f"{name}.generate_default_trial", _timed(partial(generate_cohort, name), 10))
        _bench_learned(name, protocol, one, many)
        _bench_recommender(name, protocol, one)
        with tempfile.TemporaryDirectory() as tmp:
            path = write_cases_csv(
                many.iloc[:10_000].drop(columns=["complete"]), protocol, Path(tmp) / "cases.csv"
            )
            _emit(
                f"{name}.validate_10k_rows_csv",
                _timed(partial(read_cases, path, name), 3),
                bytes=path.stat().st_size,
            )
    if "--retrain" in sys.argv[1:]:
        _bench_retrain()
    else:
        print(json.dumps({"bench": "retrain_gan_and_odm_default",
                          "skipped": "pass --retrain to time it (minutes)"}))


if __name__ == "__main__":
    main()
