"""The ODM evaluation's regret rows, its summary and what `artds evaluate odm` prints, on the
virtual trial's truth as the outcome model and a hand-made decision maker (no training)."""

from __future__ import annotations

import json
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest

from engine.arclids.cohort import ReferenceModel, generate_cohort
from engine.arclids.odm import ODMConfig, ODMPrediction
from engine.arclids.odm_eval import (
    REGRET_LABELS,
    REGRET_POLICIES,
    _true_reward,
    best_constant_dose_gy,
    evaluate_odm,
    regret,
    summarise_odm_evaluation,
)
from engine.arclids.outcomes import OutcomeCurves
from engine.arclids.recommend import ADVICE_THRESHOLD
from engine.arclids.serving import ODM_FAMILY, odm_evaluation_name
from engine.cli import main
from engine.core.protocols import Protocol, load_protocol
from engine.platform import registry

NSCLC = load_protocol("nsclc")


class FixedODM:
    """A decision maker whose member k picks grid index ``offset[k]`` + (case number mod 5):
    doses that differ from the clinicians' and from the oracle, on and off the grid."""

    version = "odm-test"
    rtoe_version = "truth"
    planning_arte = "ensemble"

    def __init__(self, serving_rule: str = "mean-dose", offsets: tuple[int, ...] = (4, 8, 13)
                 ) -> None:
        self.serving_rule = serving_rule
        self.offsets = offsets

    def predict(self, cases: pd.DataFrame) -> ODMPrediction:
        doses = NSCLC.dose_grid()
        target = (np.asarray(self.offsets)[:, None] + np.arange(len(cases))[None] % 5)  # [M, P]
        j = np.arange(len(doses))[None, None, :]  # [1, 1, D]
        q = 2.0 - 0.1 * np.abs(j - target[..., None])  # [M, P, D], peak at the target index
        return ODMPrediction(doses_gy=doses, q_values=q, member_dose_gy=doses[target],
                             member_q_value=q.max(axis=2), serving_rule=self.serving_rule)


class IntervalModel:
    """The virtual trial's truth as the mean, with a stated interval of ``half_width`` around it
    (clipped to [0, 1]): 0 makes the models certain, 0.5 makes them know nothing."""

    name = "truth-with-interval"
    label = "truth with an interval"

    def __init__(self, half_width: float, level: float = 0.8) -> None:
        self.truth = ReferenceModel("nsclc")
        self.version = self.truth.version
        self.half_width = half_width
        self.level = level

    def predict_curves(self, cases: pd.DataFrame, protocol: Protocol) -> OutcomeCurves:
        c = self.truth.predict_curves(cases, protocol)
        tcp, ntcp = c.tcp[0], c.ntcp[0]  # [P, D]
        w = self.half_width
        return replace(c, interval_level=self.level,
                       tcp_lo=np.clip(tcp - w, 0, 1), tcp_hi=np.clip(tcp + w, 0, 1),
                       ntcp_lo=np.clip(ntcp - w, 0, 1), ntcp_hi=np.clip(ntcp + w, 0, 1))


@pytest.fixture(scope="module")
def trial() -> pd.DataFrame:
    return generate_cohort("nsclc").complete_table.reset_index(drop=True)


@pytest.fixture(scope="module")
def fresh() -> pd.DataFrame:
    return generate_cohort("nsclc", seed=8, n_patients=40).complete_table.reset_index(drop=True)


@pytest.fixture(scope="module")
def evaluation(trial, fresh) -> dict[str, Any]:
    """Scored with the truth itself as the outcome model: its exact argmax is the oracle."""
    return evaluate_odm(NSCLC, ReferenceModel("nsclc"), FixedODM(), trial, fresh)


def _true_rewards(cases: pd.DataFrame, dose_gy: np.ndarray) -> np.ndarray:
    truth = ReferenceModel("nsclc").predict_curves(cases, NSCLC)
    return _true_reward(NSCLC, truth.tcp[0], truth.ntcp[0], dose_gy)


@pytest.mark.parametrize("cohort", ["trial", "fresh"])
def test_regret_rows_judge_the_recommendation_against_the_clinician(
    evaluation, trial, fresh, cohort
):
    cases = {"trial": trial, "fresh": fresh}[cohort]
    reg = evaluation[cohort]["regret"]
    assert set(REGRET_POLICIES) <= set(reg) and set(REGRET_LABELS) == set(REGRET_POLICIES)
    assert {"odm_mean_dose", "odm_mean_q"} <= set(reg)
    pred = FixedODM().predict(cases)
    historic = cases["dose_adapt_gy"].to_numpy(np.float64)
    constant = best_constant_dose_gy(NSCLC, trial)  # chosen on the training trial, both cohorts
    assert reg["best_constant_dose_gy"] == constant
    direct = regret(NSCLC, cases, {"served": pred.dose_gy, "historic": historic,
                                   "best_constant_dose": np.full(len(cases), constant)})
    for policy in ("served", "historic", "best_constant_dose"):
        for key in ("dose_abs_error_gy", "true_reward_loss", "true_reward_mean"):
            assert reg[policy][key] == pytest.approx(direct[policy][key])
    assert reg["odm_mean_dose"] == reg["served"]  # the mean-dose rule is served
    # the model is the truth: its exact argmax is the oracle
    assert reg["exact_argmax"]["true_reward_loss"] == pytest.approx(0.0, abs=1e-12)
    assert reg["exact_argmax"]["dose_abs_error_gy"] == pytest.approx(0.0, abs=1e-12)
    # ... and has no uncertainty: the advice changes exactly where the served dose truly wins
    served_r, historic_r = _true_rewards(cases, pred.dose_gy), _true_rewards(cases, historic)
    wins = (served_r > historic_r) & ~np.isclose(pred.dose_gy, historic)
    assert 0 < wins.sum() < len(cases)  # the test case is not degenerate
    assert reg["advised"]["change_share"] == pytest.approx(wins.mean())
    assert reg["advised"]["threshold"] == ADVICE_THRESHOLD
    advised_r = np.where(wins, served_r, historic_r)
    assert reg["advised"]["true_reward_mean"] == pytest.approx(advised_r.mean())
    assert reg["advised"]["true_reward_loss"] <= min(reg["served"]["true_reward_loss"],
                                                     reg["historic"]["true_reward_loss"])


def test_advice_keeps_the_clinicians_dose_the_more_the_models_are_unsure(trial, fresh):
    """The wider the outcome models' interval, the fewer cases are advised to change, and the
    closer the advised policy's loss comes to the clinicians'."""
    runs = [evaluate_odm(NSCLC, IntervalModel(w), FixedODM(), trial, fresh)
            for w in (0.0, 0.1, 0.3)]
    for cohort in ("trial", "fresh"):
        regs = [m[cohort]["regret"] for m in runs]
        shares = [reg["advised"]["change_share"] for reg in regs]
        assert shares[0] > shares[1] > shares[2] > 0.0
        gaps = [abs(reg["advised"]["true_reward_loss"] - reg["historic"]["true_reward_loss"])
                for reg in regs]
        assert gaps[0] >= gaps[1] >= gaps[2]
        assert all(reg["historic"] == regs[0]["historic"] for reg in regs)


def test_served_row_follows_the_serving_rule(trial, fresh):
    m = evaluate_odm(NSCLC, ReferenceModel("nsclc"), FixedODM("mean-q"), trial, fresh)
    for cohort in ("trial", "fresh"):
        reg = m[cohort]["regret"]
        assert reg["served"] == reg["odm_mean_q"] and reg["served"] != reg["odm_mean_dose"]


# ------------------------------------------------------------------------------------------------
# The summary and the CLI


def _payload(evaluation: dict[str, Any]) -> dict[str, Any]:
    """A saved evaluation around one architecture's metrics, as `artds train odm` writes it."""
    return {"protocol": "nsclc", "budget": "tiny", "cohort_version": "test",
            "odm_config": ODMConfig().to_dict(), "n_synthetic": 1_000,
            "architectures": {"glogd": json.loads(json.dumps(evaluation))}}


def _ratio_without_gain(value: Any, path: str = "") -> list[str]:
    """Paths of the dicts in ``value`` with an argmax_reward_ratio but no gain_captured."""
    if isinstance(value, dict):
        found = [path] if "argmax_reward_ratio" in value and "gain_captured" not in value else []
        return found + [p for k, v in value.items() for p in _ratio_without_gain(v, f"{path}/{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _ratio_without_gain(v, f"{path}/{i}")]
    return []


def test_summary_never_gives_argmax_reward_ratio_without_gain_captured(evaluation):
    summary = summarise_odm_evaluation(_payload(evaluation), SimpleNamespace(created="now"))
    g = summary["architectures"]["glogd"]
    text = json.dumps(summary)
    assert text.count("argmax_reward_ratio") >= 4  # trial, fresh, per serving rule, per member
    assert _ratio_without_gain(summary) == []
    assert _ratio_without_gain({"a": [{"argmax_reward_ratio": 1.0}]}) == ["/a/0"]  # it can fail
    for reg in (g["regret"], g["fresh_cohort"]["regret"]):
        assert set(REGRET_POLICIES) <= set(reg) and "odm" not in reg


def test_summary_of_an_evaluation_saved_before_the_regret_rows(evaluation):
    """Old evaluations name the served row "odm" and lack the constant dose and the advice:
    the summary calls it "served" and leaves the others out (readers say "retrain")."""
    old = _payload(evaluation)
    for cohort in ("trial", "fresh"):
        reg = old["architectures"]["glogd"][cohort]["regret"]
        reg["odm"] = reg.pop("served")
        for key in ("best_constant_dose", "advised", "best_constant_dose_gy"):
            reg.pop(key)
    g = summarise_odm_evaluation(old, SimpleNamespace(created="now"))["architectures"]["glogd"]
    for reg, cohort in ((g["regret"], "trial"), (g["fresh_cohort"]["regret"], "fresh")):
        assert reg["served"] == evaluation[cohort]["regret"]["served"]
        assert "odm" not in reg and "advised" not in reg and "best_constant_dose" not in reg


def test_cli_prints_the_regret_rows_of_the_trial_and_the_fresh_cohort(
    evaluation, tmp_path, capsys
):
    registry.save_json_artifact(tmp_path, ODM_FAMILY, odm_evaluation_name("nsclc"),
                                _payload(evaluation), seed=0, config={"protocol": "nsclc"},
                                data_hash="test", cohort_version="test", metrics={})
    assert main(["evaluate", "odm", "--protocol", "nsclc", "--json",
                 "--models-dir", str(tmp_path)]) == 0
    g = json.loads(capsys.readouterr().out)["architectures"]["glogd"]
    for c, cohort in ((g, "trial"), (g["fresh_cohort"], "fresh")):
        assert c["n_cases"] == evaluation[cohort]["n_cases"]
        assert "gain_captured" in c and "argmax_reward_ratio" in c
        for policy in REGRET_POLICIES:
            assert c["regret"][policy]["true_reward_loss"] == pytest.approx(
                evaluation[cohort]["regret"][policy]["true_reward_loss"], abs=1e-6)
        assert c["regret"]["advised"]["change_share"] is not None

    assert main(["evaluate", "odm", "--protocol", "nsclc", "--models-dir", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    loss = [line for line in lines if "true-reward loss vs oracle (lower is better)" in line]
    assert len(loss) == 2  # training trial and fresh cohort
    assert all(f"{p} " in line for p in REGRET_POLICIES for line in loss)
    assert "changed)" in loss[1] and "Gy/fx)" in loss[1] and "retrain" not in loss[1]
    ratio = [line for line in lines if "argmax_reward_ratio" in line]
    assert len(ratio) == 2 and all("gain_captured" in line for line in ratio)
