"""The GAN + ODM pipeline on a tiny budget: artifacts, manifest, serving guards, evaluation, and
the serving catalogue's one failure policy as the CLI and the app see it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.arclids.calibration import OutcomeCalibration
from engine.arclids.cohort import ReferenceModel, generate_cohort
from engine.arclids.odm_eval import REGRET_POLICIES, summarise_odm_evaluation
from engine.arclids.odm_train import OdmJob, _odm_job, _planning_memory, train_odm
from engine.arclids.recommend import EXACT_ARGMAX, ODM, recommend
from engine.arclids.rtoe import OutcomeEstimator, RTOEConfig
from engine.arclids.serving import (
    NO_DECISION_MAKER,
    ODM_FAMILY,
    RTOE_FAMILY,
    ModelUnavailable,
    OdmUnavailable,
    calibration_name,
    decision_maker,
    load_catalogue,
    load_odm_evaluation,
    load_outcome_model,
    load_served_model,
    load_served_odm,
    member_name,
    odm_for_model,
)
from engine.cli import main
from engine.core.protocols import load_protocol
from engine.platform import registry
from engine.platform.executor import SerialExecutor

NSCLC = load_protocol("nsclc")
ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "assets" / "examples" / "nsclc_patients.csv"
pytestmark = pytest.mark.xdist_group("odm_train")


def _save_tiny_rtoe(models_dir, seed_offset: int = 0) -> None:
    """Five tiny GLoGD members per outcome, saved like `artds train rtoe` saves them."""
    cases = generate_cohort("nsclc").complete_table
    for outcome in NSCLC.outcome_names:
        for k in range(5):
            config = RTOEConfig(arch="glogd", hidden=8, n_layers=1, epochs=1, seed=k + seed_offset)
            est = OutcomeEstimator(NSCLC, outcome, config).fit(cases, cases[outcome].to_numpy())
            registry.save_artifact(models_dir, RTOE_FAMILY,
                                   member_name("nsclc", "glogd", outcome, k),
                                   est.state_dict(), seed=config.seed, config=config.to_dict(),
                                   data_hash="test", cohort_version="test", metrics={})
    # A fixed recalibration with an 80 % interval, saved as `artds train rtoe` saves its fit.
    calibration = OutcomeCalibration(intercept=-0.5, slope=0.8, interval_level=0.8,
                                     conformal_quantile=2.0).to_dict()
    registry.save_json_artifact(models_dir, RTOE_FAMILY, calibration_name("nsclc", "glogd"),
                                {"tcp": calibration, "ntcp": calibration}, seed=0, config={},
                                data_hash="test", cohort_version="test", metrics={})


def _copy_models(models_dir: Path, other: Path) -> Path:
    """A copy of a models folder (artifacts and manifest)."""
    other.mkdir()
    for meta in registry.list_artifacts(models_dir):
        src = models_dir / meta.file
        (other / meta.file).parent.mkdir(parents=True, exist_ok=True)
        (other / meta.file).write_bytes(src.read_bytes())
    (other / "manifest.json").write_bytes((models_dir / "manifest.json").read_bytes())
    return other


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    models_dir = tmp_path_factory.mktemp("models")
    _save_tiny_rtoe(models_dir)
    with SerialExecutor() as executor:
        payload = train_odm("nsclc", executor, budget="tiny", archs=("glogd",),
                            models_dir=models_dir)
    return models_dir, payload


def test_artifacts_record_the_outcome_models_they_were_trained_on(trained):
    models_dir, payload = trained
    model = load_served_model("nsclc", "glogd", models_dir)
    rtoe = {m.name: m.sha256 for m in registry.list_artifacts(models_dir, RTOE_FAMILY)}
    odm_metas = [m for m in registry.list_artifacts(models_dir, ODM_FAMILY)
                 if m.file.endswith(".pt")]
    assert len(odm_metas) == 5
    gan_sha = next(m.sha256 for m in registry.list_artifacts(models_dir, "gan")
                   if m.file.endswith(".pt"))
    for meta in odm_metas:
        k = meta.config["member"]
        assert meta.config["rtoe_version"] == model.version
        # the tiny budget plans like the default: every member on the ensemble-mean ARTE
        assert meta.config["odm"]["planning_arte"] == "ensemble"
        assert meta.config["rtoe_sha256"] == {
            "tcp": [rtoe[member_name("nsclc", "glogd", "local_control", j)] for j in range(5)],
            "ntcp": [rtoe[member_name("nsclc", "glogd", "rp2", j)] for j in range(5)],
        }
        assert meta.config["gan_sha256"] == gan_sha
        assert meta.config["weight_dtype"] == "float16"
        assert meta.seed == k
        state, _ = registry.load_artifact(models_dir, ODM_FAMILY, meta.name)
        assert state["q_net.net.0.weight"].dtype == torch.float16
    assert payload["architectures"]["glogd"]["odm_version"] == load_served_odm(
        "nsclc", "glogd", models_dir).version


@pytest.mark.parametrize("paper", [False, True])
def test_member_training_is_deterministic(trained, paper):
    models_dir, payload = trained
    config = {**payload["odm_config"], "seed": 1}
    if paper:  # the paper's planning: one fixed draw, member k's own ARTE
        config |= {"planning_resample": False, "planning_arte": "member"}
    job = OdmJob("nsclc", "glogd", 1, config, str(models_dir), n_synthetic=1_000)
    a = _odm_job(job)
    _planning_memory.cache_clear()  # recompute the memory, not just reuse it
    b = _odm_job(job)
    assert a["planning_hash"] == b["planning_hash"]
    for key in a["state"]:
        torch.testing.assert_close(a["state"][key], b["state"][key], rtol=0, atol=0)
    if paper:
        other = _odm_job(OdmJob("nsclc", "glogd", 2, {**config, "seed": 2}, str(models_dir),
                                n_synthetic=1_000))
        assert other["planning_hash"] != a["planning_hash"]  # each member its own draw
        # and its own ARTE member: the same draw under member 2's environment differs
        assert other["planning_reward_mean"] != a["planning_reward_mean"]


def test_evaluation_payload_and_summary(trained):
    models_dir, _ = trained
    payload, meta = load_odm_evaluation("nsclc", models_dir)
    served = {"glogd": load_served_model("nsclc", "glogd", models_dir).version}
    summary = summarise_odm_evaluation(payload, meta, served)
    g = summary["architectures"]["glogd"]
    assert g["stale"] is False
    assert summary["planning"] == {"n_synthetic": 1_000, "n_planning_patients": 200,
                                   "planning_resample": True, "planning_arte": "ensemble",
                                   "serving_rule": "mean-dose", "epochs": 3}
    for group in ("overall", "positive", "negative"):
        assert g["rmsd_gy"][group]["mean"] >= g["mad_gy"][group]["mean"] - 1e-12
        shares = g["self_evaluation"][group]
        assert sum(shares[k] for k in ("good", "bad", "not_sure")) == pytest.approx(1.0)
    assert g["n_by_outcome"]["positive"] + g["n_by_outcome"]["negative"] == g["n_cases"] == 67
    for reg in (g["regret"], g["fresh_cohort"]["regret"]):
        for policy in REGRET_POLICIES:
            assert reg[policy]["dose_abs_error_gy"] >= 0
    assert 0 < g["argmax_reward_ratio"] <= 1.0 + 1e-9
    assert g["serving_rule"] == "mean-dose"
    assert g["by_serving_rule"]["mean-dose"]["argmax_reward_ratio"] == g["argmax_reward_ratio"]
    assert 0 < g["by_serving_rule"]["mean-q"]["argmax_reward_ratio"] <= 1.0 + 1e-9
    assert set(g["fresh_cohort"]) >= {"argmax_reward_ratio", "gain_captured", "regret"}
    json.dumps(summary, allow_nan=False)  # strict JSON
    rows = payload["architectures"]["glogd"]["trial"]["patients"]
    assert len(rows["label"]) == len(rows["q_value"]) == 67
    stale = summarise_odm_evaluation(payload, meta, {"glogd": "rtoe-nsclc-glogd-other"})
    assert stale["architectures"]["glogd"]["stale"] and "artds train odm" in stale[
        "architectures"]["glogd"]["note"]


def test_serving_recommends_with_sem_q_and_exact_argmax(trained):
    models_dir, _ = trained
    model = load_served_model("nsclc", "glogd", models_dir)
    odm = odm_for_model("nsclc", model, models_dir)
    cases = generate_cohort("nsclc", seed=8, n_patients=5).complete_table
    recs = recommend(cases, NSCLC, model, odm)
    pred = odm.predict(cases)
    for i, rec in enumerate(recs):
        assert rec.recommender == ODM and rec.odm_version == odm.version
        assert rec.recommended_dose_gy == pytest.approx(pred.dose_gy[i])
        assert rec.recommended_dose_sem_gy == pytest.approx(pred.dose_sem_gy[i])
        assert rec.q_value == pytest.approx(pred.q_value[i])
        assert rec.member_mean_dose_gy == pytest.approx(pred.member_mean_dose_gy[i])
        assert rec.odm_serving_rule == odm.serving_rule
        assert rec.exact_argmax_dose_gy == NSCLC.dose_grid()[int(np.argmax(rec.reward))]
        assert rec.recommender_note is None


def test_serving_refuses_a_decision_maker_trained_on_other_outcome_models(trained, tmp_path):
    models_dir, _ = trained
    model = load_served_model("nsclc", "glogd", models_dir)
    odm = load_served_odm("nsclc", "glogd", models_dir)
    # the lead retrains the outcome models: the served version changes, the ODM does not
    other = _copy_models(models_dir, tmp_path / "models")
    _save_tiny_rtoe(other, seed_offset=10)
    retrained = load_served_model("nsclc", "glogd", other)
    assert retrained.version != model.version
    with pytest.raises(OdmUnavailable, match="retrain with `artds train odm --protocol nsclc`"):
        odm_for_model("nsclc", retrained, other)
    cases = generate_cohort("nsclc", seed=8, n_patients=3).complete_table
    recs = recommend(cases, NSCLC, retrained, odm)  # handed the stale ODM anyway: not used
    assert all(r.recommender == EXACT_ARGMAX and r.recommended_dose_sem_gy is None for r in recs)
    assert all(r.recommended_dose_gy == r.exact_argmax_dose_gy for r in recs)
    assert odm.version in recs[0].recommender_note and retrained.version in recs[0].recommender_note


def test_serving_refuses_tampered_and_missing_decision_makers(trained, tmp_path):
    models_dir, _ = trained
    with pytest.raises(OdmUnavailable, match="no decision maker is trained"):
        odm_for_model("nsclc", ReferenceModel("nsclc"), models_dir)
    model = load_served_model("nsclc", "glogd", models_dir)
    with pytest.raises(OdmUnavailable, match="not loaded"):
        odm_for_model("nsclc", model, tmp_path)  # empty folder
    path = models_dir / ODM_FAMILY / "nsclc_glogd_2.pt"
    original = path.read_bytes()
    try:
        path.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
        with pytest.raises(OdmUnavailable, match="sha256 mismatch"):
            odm_for_model("nsclc", model, models_dir)
    finally:
        path.write_bytes(original)


# ------------------------------------------------------------------------------------------------
# The serving catalogue: one failure policy for the engine, the CLI and the app


def _app_state(models_dir: Path) -> dict:
    """What the app loaded for NSCLC at start-up (``app.shared`` in a fresh process, as the app
    starts, on ``$ARTDS_MODELS_DIR``): its model choices, load errors and decision makers."""
    script = (
        "import json\n"
        "from app import shared\n"
        "print(json.dumps({'choices': list(shared.MODEL_CHOICES['nsclc']),\n"
        "                  'errors': dict(shared.MODEL_ERRORS['nsclc']),\n"
        "                  'notes': {k: note for k, (_, note)\n"
        "                            in shared.DECISION_MAKERS['nsclc'].items()}}))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=ROOT, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT),
                               "ARTDS_MODELS_DIR": str(models_dir)})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_catalogue_of_a_models_folder(trained):
    models_dir, _ = trained
    catalogue = load_catalogue("nsclc", models_dir)
    assert list(catalogue.choices) == ["glogd", "reference"]  # learned first, reference last
    assert set(catalogue.errors) == {"single", "logistic"}
    assert all(line and "\n" not in line for line in catalogue.errors.values())
    assert catalogue.default_key == "glogd"
    glogd = catalogue.choices["glogd"].model
    odm, note = catalogue.decision_makers["glogd"]
    assert note is None and odm.version == load_served_odm("nsclc", "glogd", models_dir).version
    assert catalogue.decision_maker_for(glogd) == (odm, None)
    assert catalogue.decision_maker_for(load_served_model("nsclc", "glogd", models_dir)) == (
        None, NO_DECISION_MAKER)  # not the catalogue's model: looked up, never loaded
    odm, note = catalogue.decision_makers["reference"]
    assert odm is None and note.startswith("no decision maker is trained for reference model")
    with pytest.raises(ModelUnavailable, match="unknown outcome model"):
        load_outcome_model("nsclc", "svm", models_dir)


def test_a_decision_maker_that_does_not_fit_the_code_is_one_line_everywhere(
    trained, tmp_path, capsys
):
    """An ODM artifact whose sha256 matches but whose manifest config lacks a key: the same
    one-line reason from the catalogue, `artds recommend` (exact argmax, exit 0) and the app."""
    models_dir, _ = trained
    tampered = _copy_models(models_dir, tmp_path / "models")
    manifest = json.loads((tampered / "manifest.json").read_text(encoding="utf-8"))
    del manifest["artifacts"]["odm/nsclc_glogd_0.pt"]["config"]["rtoe_version"]
    (tampered / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    registry.load_artifact(tampered, ODM_FAMILY, "nsclc_glogd_0")  # passes its hash check
    reason = ("decision maker not loaded (odm/nsclc_glogd_0.pt: does not fit this code "
              "(KeyError: 'rtoe_version'); retrain with `artds train odm --protocol nsclc` or "
              "restore the file); the exact argmax of the reward is shown")
    catalogue = load_catalogue("nsclc", tampered)
    assert catalogue.decision_makers["glogd"] == (None, reason)
    assert decision_maker("nsclc", catalogue.choices["glogd"].model, tampered) == (None, reason)

    code = main(["recommend", "--protocol", "nsclc", "--input", str(EXAMPLE), "--json",
                 "--models-dir", str(tampered)])
    out, err = capsys.readouterr()
    assert code == 0
    # stderr holds only the stale-trial caution of the test's outcome models: no traceback
    assert all(line.startswith("artds: warning: ") for line in err.splitlines())
    for patient in json.loads(out)["patients"]:
        assert patient["recommender"] == EXACT_ARGMAX and patient["recommender_note"] == reason
        assert patient["recommended_dose_gy"] == patient["exact_argmax_dose_gy"]

    assert _app_state(tampered)["notes"]["glogd"] == reason


def test_a_missing_outcome_model_file_is_one_line_everywhere(trained, tmp_path, capsys):
    """A member file listed in the manifest but gone: the catalogue leaves the model out with one
    line, `artds recommend --model glogd` exits 2 with it, the app shows it."""
    models_dir, _ = trained
    broken = _copy_models(models_dir, tmp_path / "models")
    (broken / RTOE_FAMILY / f"{member_name('nsclc', 'glogd', 'rp2', 3)}.pt").unlink()
    catalogue = load_catalogue("nsclc", broken)
    reason = catalogue.errors["glogd"]
    assert "glogd" not in catalogue.choices and list(catalogue.choices) == ["reference"]
    assert "missing file" in reason and "artds train rtoe --protocol nsclc" in reason
    assert "\n" not in reason
    with pytest.raises(ModelUnavailable) as raised:
        load_outcome_model("nsclc", "glogd", broken)
    assert str(raised.value) == reason

    code = main(["recommend", "--protocol", "nsclc", "--input", str(EXAMPLE), "--json",
                 "--model", "glogd", "--models-dir", str(broken)])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.splitlines() == [
        f"artds recommend: error: {reason} (--model reference uses the virtual trial's truth)"]

    app = _app_state(broken)
    assert app["errors"]["glogd"] == reason and app["choices"] == ["reference"]
