"""Benchmarks: `make bench` prints one JSON object per line. Measures, never asserts.

``python -m tests.bench --retrain`` also times the full default retrain of the synthetic-patient
GANs and the ODM ensembles of both protocols (into a temporary copy of models/; minutes);
``--drug-eval`` the full default drug-resistance evaluation (tests/bench/drug.py; minutes).
"""

from __future__ import annotations

import json
import time
from functools import partial

from engine.arclids.cohort import ReferenceModel, generate_cohort, write_cases_csv
from engine.arclids.recommend import recommend
from engine.core.protocols import PROTOCOL_NAMES, load_protocol
from engine.core.schema import read_cases
from tests.bench.timing import emit, timed


def _bench_learned(name, protocol, one, many) -> None:
    """Learned ensembles from models/ (skipped with a note when none are trained)."""
    from engine.arclids.serving import load_served_model
    from engine.platform.registry import ArtifactError

    for arch in ("glogd", "single"):
        try:
            model = load_served_model(name, arch)
        except ArtifactError as err:
            print(json.dumps({"bench": f"{name}.{arch}", "skipped": str(err)}))
            continue
        emit(
            f"{name}.{arch}.curves_one_case_all_members",
            timed(partial(model.predict_curves, one, protocol), 200),
            members=len(model.tcp_members) + len(model.ntcp_members),
            doses=len(protocol.dose_grid_gy),
        )
        emit(
            f"{name}.{arch}.curves_10k_patients",
            timed(partial(model.predict_curves, many.iloc[:10_000], protocol), 3),
            cases=min(len(many), 10_000),
        )


def _bench_planner() -> None:
    """RL fractionation planner: one default run (training, evaluation, oracle, beamlet LP as
    timed by the pipeline itself) and repeated timings of the exact oracle alone."""
    import numpy as np
    import torch

    from engine.planner import PlanConfig, run_plan
    from engine.planner.env import prepare_scenarios, sample_biology
    from engine.planner.oracle import solve_oracle

    torch.set_num_threads(1)
    cfg = PlanConfig()
    p = run_plan(cfg).payload
    print(json.dumps({
        "bench": "planner.default_run", "train_s": round(p["train_seconds"], 2),
        "evaluate_s": round(p["evaluate_seconds"], 3),
        "oracle_s": round(p["oracle_seconds"], 3),
        "beamlet_s": round(p["beamlet"]["seconds"], 3),
        "episodes": cfg.dqn.n_episodes, "oracle_ratio": round(p["oracle_ratio"], 5),
        "oracle_gain_captured": (None if p["oracle_gain_captured"] is None
                                 else round(p["oracle_gain_captured"], 4)),
    }))
    scen = prepare_scenarios(
        sample_biology(cfg.biology, cfg.n_eval_scenarios, np.random.default_rng(1)), cfg)
    emit("planner.oracle_2187_plans_500_scenarios",
         timed(partial(solve_oracle, scen, cfg), 3), plans=3**7,
         scenarios=cfg.n_eval_scenarios)
def _bench_sf2() -> None:
    """SF2: prediction latency of the served ensemble, upload validation, one evaluation fold."""
    from pathlib import Path

    import numpy as np
    import torch

    from engine.platform.registry import ArtifactError
    from engine.sf2 import evaluate as ev
    from engine.sf2.data import load_panel, read_expression_upload, subgroups
    from engine.sf2.model import load_served_sf2
    from engine.sf2.tasks import support_indices

    torch.set_num_threads(1)
    example = Path(__file__).resolve().parents[2] / "assets/examples/sf2_full_profiles.csv"
    panel = load_panel()
    try:
        model = load_served_sf2()
    except ArtifactError as err:
        print(json.dumps({"bench": "sf2", "skipped": str(err)}))
        return
    kwargs = {"required_genes": model.genes, "panel_genes": panel.genes}
    upload = read_expression_upload(example, **kwargs)
    one = read_expression_upload(example.read_bytes().split(b"\n", 2)[0] + b"\n" +
                                 example.read_bytes().split(b"\n", 2)[1] + b"\n", **kwargs)
    emit("sf2.validate_upload_5_full_profiles", timed(
        partial(read_expression_upload, example, **kwargs), 20), genes=706)
    emit("sf2.predict_one_sample", timed(partial(model.predict_upload, one), 20),
         members=len(model.members), support_draws=model.config.n_support_draws)
    emit("sf2.predict_5_samples_with_rsi", timed(partial(model.predict_upload, upload), 10))
    lung = list(model.reference.index[model.reference["tissue"] == "lung"])
    emit("sf2.predict_57_lung_lines", timed(partial(model.predict_lines, lung), 3))
    for setting in ("lung", "pan_cancer"):
        lines = panel.setting(setting).lines
        sg = subgroups(lines, setting).to_numpy()
        rng = np.random.default_rng(0)
        folds = ev.stratified_folds(sg, 5, rng)
        test, train = np.nonzero(folds == 0)[0], np.nonzero(folds != 0)[0]
        for iterations in (ev.DEFAULT_ITERATIONS, 3000):
            config = ev.EvaluationConfig(n_iterations=iterations)
            job = ev._FoldJob(setting, 0, 0, train, test,
                              support_indices(test, train, sg, 5, rng), tuple(panel.genes[:20]),
                              config, seed=0)
            start = time.perf_counter()  # one cold run: a fold is long, no warm-up repeat
            ev._run_fold(job)
            emit(f"sf2.evaluate_one_fold.{setting}.{iterations}_iterations",
                 [(time.perf_counter() - start) * 1000.0],
                 folds_per_run_3_repeats=15, note="a run is 2 settings x repeats x 5 folds, "
                 "spread over the local pool's workers")


def _bench_recommender(name, protocol, one) -> None:
    """One full recommendation: every outcome member's curves plus the 5 ODM members."""
    from engine.arclids.serving import OdmUnavailable, load_served_model, odm_for_model
    from engine.platform.registry import ArtifactError

    for arch in ("glogd", "single"):
        try:
            model = load_served_model(name, arch)
            odm = odm_for_model(name, model)
        except (ArtifactError, OdmUnavailable) as err:
            print(json.dumps({"bench": f"{name}.{arch}.odm", "skipped": str(err)}))
            continue
        emit(
            f"{name}.{arch}.recommend_one_case_rtoe_and_odm",
            timed(partial(recommend, one, protocol, model, odm), 200),
            outcome_members=len(model.tcp_members) + len(model.ntcp_members),
            odm_members=len(odm.members),
        )


def _bench_retrain() -> None:
    """Full default retrain of GAN + ODM (both architectures) per protocol, in a temp folder."""
    import shutil
    import tempfile
    from pathlib import Path

    import torch

    from engine.arclids.odm_train import train_odm
    from engine.platform.executor import make_executor
    from engine.settings import models_dir

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

    _bench_sf2()
    from tests.bench.drug import bench_drug_evaluation, bench_drug_fits
    from tests.bench.dvh import bench_dvh

    bench_dvh()
    bench_drug_fits()

    for name in PROTOCOL_NAMES:
        protocol, model = load_protocol(name), ReferenceModel(name)
        one = generate_cohort(name, seed=1, n_patients=1).table.iloc[:1]
        emit(
            f"{name}.recommend_one_case",
            timed(partial(recommend, one, protocol, model), 200),
            doses=len(protocol.dose_grid_gy),
        )
        many = generate_cohort(name, seed=2, n_patients=10_000).table
        emit(
            f"{name}.curves_10k_patients",
            timed(partial(model.predict_curves, many, protocol), 5),
            cases=len(many),
        )
        emit(f"{name}.generate_default_trial", timed(partial(generate_cohort, name), 10))
        _bench_learned(name, protocol, one, many)
        _bench_recommender(name, protocol, one)
        with tempfile.TemporaryDirectory() as tmp:
            path = write_cases_csv(
                many.iloc[:10_000].drop(columns=["complete"]), protocol, Path(tmp) / "cases.csv"
            )
            emit(
                f"{name}.validate_10k_rows_csv",
                timed(partial(read_cases, path, name), 3),
                bytes=path.stat().st_size,
            )
    from tests.bench.ensemble import bench_ensembles
    from tests.bench.event_loop import bench_event_loop

    bench_ensembles()
    bench_event_loop()  # a served app with 10,000 stored patients (about two minutes)
    if "--retrain" in sys.argv[1:]:
        _bench_retrain()
    else:
        print(json.dumps({"bench": "retrain_gan_and_odm_default",
                          "skipped": "pass --retrain to time it (minutes)"}))
    if "--drug-eval" in sys.argv[1:]:
        bench_drug_evaluation()
    else:
        print(json.dumps({"bench": "drug.evaluate_full_default",
                          "skipped": "pass --drug-eval to time it (minutes)"}))


if __name__ == "__main__":
    main()
    _bench_planner()
