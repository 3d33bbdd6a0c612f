"""Grid search, validation, ensembles, artifacts and evaluation of the outcome estimators.

Tiny budgets only (the `tiny` grid); the full training is `artds train rtoe` and its numbers are
in docs/model-card-rtoe.md.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from engine.arclids.evaluation import auroc
from engine.arclids.rtoe_eval import evaluation_summary
from engine.arclids.rtoe_train import (
    GRIDS,
    _best_row,
    cross_validate,
    roc_points,
    train_rtoe,
)
from engine.arclids.serving import N_RTOE_MEMBERS, load_served_model
from engine.arclids.splits import stratified_splits
from engine.cli import main
from engine.core.protocols import load_protocol
from engine.platform.executor import LocalExecutor, RayExecutor, SerialExecutor
from engine.platform.registry import ArtifactError, list_artifacts


def test_stratified_splits_keep_class_ratios():
    y = np.array([1] * 48 + [0] * 19)
    splits = stratified_splits(y, n_splits=10, seed=3)
    assert len(splits) == 10
    for train, test in splits:
        assert len(np.intersect1d(train, test)) == 0 and len(train) + len(test) == 67
        assert y[test].sum() == round(0.2 * 48) and (1 - y[test]).sum() == round(0.2 * 19)
    assert not np.array_equal(splits[0][1], splits[1][1])
    np.testing.assert_array_equal(splits[0][1], stratified_splits(y, n_splits=10, seed=3)[0][1])
    # a class with a single member always stays in training
    rare = np.array([1] * 98 + [0])
    assert all(98 in train for train, _ in stratified_splits(rare, seed=0))


def test_roc_points_integrate_to_auroc():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    score = y + rng.normal(0, 1.2, 300)
    score[:40] = np.round(score[:40])  # ties
    roc = roc_points(score, y)
    area = np.trapezoid(roc["tpr"], roc["fpr"])
    assert area == pytest.approx(auroc(score, y), abs=1e-6)
    assert roc["fpr"][0] == roc["tpr"][0] == 0.0 and roc["fpr"][-1] == roc["tpr"][-1] == 1.0


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    models = tmp_path_factory.mktemp("models")
    with SerialExecutor() as executor:
        payload = train_rtoe(
            "nsclc", executor, grid_name="tiny", models_dir=models, learning_curve=False
        )
    return models, payload


def test_pipeline_saves_every_member_with_its_metadata(tiny_models):
    models, payload = tiny_models
    metas = list_artifacts(models, "rtoe")
    pt = [m for m in metas if m.file.endswith(".pt")]
    assert len(pt) == 3 * 2 * N_RTOE_MEMBERS  # architectures × outcomes × members
    for meta in pt:
        assert meta.seed in range(N_RTOE_MEMBERS) and meta.data_hash and meta.cohort_version
        assert meta.config["arch"] in ("single", "glogd", "logistic")
        assert "cv_auroc_mean" in meta.metrics
    assert payload["training_cases"] == 67


def test_evaluation_summary_has_every_metric(tiny_models):
    models, _ = tiny_models
    summary = evaluation_summary("nsclc", models)
    for arch in ("single", "glogd", "logistic"):
        for key in ("tcp", "ntcp"):
            res = summary["architectures"][arch][key]
            for metric in (
                "cv_auroc_mean",
                "cv_auroc_sd",
                "auroc_vs_truth",
                "auroc_bayes_ceiling",
                "brier",
                "monotonicity_violation_rate",
                "ensemble_sd_mean",
            ):
                assert metric in res
            assert res["auroc_vs_truth"] <= res["auroc_bayes_ceiling"] + 0.03  # truth is best
            assert 0.70 <= res["auroc_bayes_ceiling"] <= 0.90
    glogd = summary["architectures"]["glogd"]
    assert glogd["tcp"]["monotonicity_violation_rate"] == 0.0
    assert glogd["ntcp"]["monotonicity_violation_rate"] == 0.0


def test_served_ensemble_predicts_monotone_curves(tiny_models):
    models, _ = tiny_models
    protocol = load_protocol("nsclc")
    model = load_served_model("nsclc", "glogd", models)
    from engine.arclids.cohort import generate_cohort

    cases = generate_cohort("nsclc", seed=5, n_patients=30).complete_table
    curves = model.predict_curves(cases, protocol)
    assert curves.tcp.shape == (N_RTOE_MEMBERS, 30, len(protocol.dose_grid_gy))
    assert (np.diff(curves.tcp, axis=2) >= 0).all() and (np.diff(curves.ntcp, axis=2) >= 0).all()
    assert model.version.startswith("rtoe-nsclc-glogd-")


def test_tampered_model_is_refused(tiny_models, tmp_path, capsys):
    import shutil

    models = tmp_path / "models"
    shutil.copytree(tiny_models[0], models)
    target = models / "rtoe" / "nsclc_glogd_local_control_2.pt"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="sha256 mismatch"):
        load_served_model("nsclc", "glogd", models)
    example = "assets/examples/nsclc_patients.csv"
    code = main(
        ["recommend", "--protocol", "nsclc", "--input", example, "--models-dir", str(models)]
    )
    assert code == 2
    assert "sha256 mismatch" in capsys.readouterr().err


def test_recommend_and_evaluate_cli_with_learned_models(tiny_models, capsys):
    models, _ = tiny_models
    example = "assets/examples/nsclc_patients.csv"
    assert (
        main(
            [
                "recommend",
                "--protocol",
                "nsclc",
                "--input",
                example,
                "--json",
                "--models-dir",
                str(models),
            ]
        )
        == 0
    )
    payload = json.loads(capsys.readouterr().out)
    patient = payload["patients"][0]
    assert patient["model"].startswith("GLoGD-GNN ensemble")
    assert patient["model_version"].startswith("rtoe-nsclc-glogd-")
    assert patient["n_members"] == N_RTOE_MEMBERS and max(patient["tcp_sd"]) > 0
    assert (
        main(["evaluate", "rtoe", "--protocol", "nsclc", "--json", "--models-dir", str(models)])
        == 0
    )
    summary = json.loads(capsys.readouterr().out)
    assert set(summary["architectures"]) == {"single", "glogd", "logistic"}


def test_local_pool_and_ray_give_identical_results():
    grid = GRIDS["tiny"]["glogd"]
    with SerialExecutor() as serial:
        reference = cross_validate("nsclc", "rp2", "glogd", grid, serial, seed=4)
    with LocalExecutor(2) as pool:
        pooled = cross_validate("nsclc", "rp2", "glogd", grid, pool, seed=4)
    with RayExecutor(num_cpus=2) as ray_executor:
        on_ray = cross_validate("nsclc", "rp2", "glogd", grid, ray_executor, seed=4)
    assert pooled == reference
    assert on_ray == reference


def test_training_is_reproducible_across_executors(tiny_models, tmp_path):
    """`artds train rtoe` rewrites byte-identical artifacts, whichever executor runs the jobs."""
    models, _ = tiny_models
    again = tmp_path / "again"
    with LocalExecutor(2) as pool:
        train_rtoe("nsclc", pool, grid_name="tiny", models_dir=again, learning_curve=False)
    first = {m.file: m.sha256 for m in list_artifacts(models, "rtoe")}
    second = {m.file: m.sha256 for m in list_artifacts(again, "rtoe")}
    assert first == second
    assert sum(f.endswith(".pt") for f in first) == 3 * 2 * N_RTOE_MEMBERS
    calibrations = {f"rtoe/nsclc_{a}_calibration.json" for a in ("glogd", "single", "logistic")}
    assert calibrations <= set(first)


def _row(auroc_mean, log_loss_mean, epochs):
    return {"config": {"epochs": epochs}, "auroc_mean": auroc_mean, "log_loss_mean": log_loss_mean}


def test_best_row_by_auroc_by_log_loss_and_fallback():
    table = [_row(0.60, 0.80, 25), _row(0.70, 0.90, 50), _row(0.65, 0.60, 100)]
    assert _best_row(table, "auroc")["config"]["epochs"] == 50
    assert _best_row(table, "log_loss")["config"]["epochs"] == 100
    # no split scorable by AUROC (one-class test sets): the log-loss decides, not the first row
    unscorable = [_row(None, 0.30, 25), _row(None, 0.10, 50), _row(None, 0.20, 100)]
    assert _best_row(unscorable, "auroc")["config"]["epochs"] == 50
    with pytest.raises(ValueError, match="select_by"):
        _best_row(table, "brier")


def test_cross_validation_records_log_loss(tiny_models):
    _, payload = tiny_models
    for per_outcome in payload["architectures"].values():
        for res in per_outcome.values():
            assert res["select_by"] == "auroc"
            assert res["cv_log_loss_mean"] > 0 and res["cv_log_loss_sd"] >= 0
            assert all(row["log_loss_mean"] > 0 for row in res["grid"])


def test_models_of_another_trial_version_are_flagged(tiny_models):
    from types import SimpleNamespace

    from engine.arclids.cohort import load_trial_spec
    from engine.arclids.serving import stale_trial_warnings

    models, _ = tiny_models
    assert load_served_model("nsclc", "glogd", models).warnings == ()
    current = load_trial_spec("nsclc").version
    metas = [SimpleNamespace(cohort_version=current), SimpleNamespace(cohort_version="trial-old")]
    (warning,) = stale_trial_warnings("nsclc", metas)
    assert "trial-old" in warning and current in warning
    assert "artds train rtoe --protocol nsclc" in warning
    assert stale_trial_warnings("nsclc", metas[:1]) == []
