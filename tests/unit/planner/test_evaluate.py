"""Planning pipeline: adaptation points, summaries, a tiny end-to-end run, figures, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engine.cli import build_parser, main
from engine.planner.config import PRIORITIES, REWARD_MODES, PlanConfig
from engine.planner.env import PlanOutcome
from engine.planner.evaluate import adaptation_plan, outcome_summary, run_plan
from engine.planner.figures import (
    bed_sf_figure,
    phantom_dose_figure,
    volume_box_figure,
    weekly_dose_figure,
)
from engine.planner.jobs import run_plan_job
from engine.platform.jobs import FileJob
from tests.unit.planner.helpers import tiny_plan


def test_adaptation_points_follow_the_running_segment_mean():
    # The paper's Table 5 expected doses (its own ART row merges W5–W7, see docs/planner.md).
    plan, weeks = adaptation_plan(np.array([2.12, 2.13, 2.13, 2.04, 1.89, 1.85, 1.85]), 0.03)
    assert weeks == [4, 5, 6]
    assert plan.tolist() == [2.13, 2.13, 2.13, 2.04, 1.89, 1.85, 1.85]
    plan, weeks = adaptation_plan(np.array([2.0, 2.02, 2.03, 2.0]), 0.03)
    assert weeks == [] and plan.tolist() == [2.01] * 4
    plan, weeks = adaptation_plan(np.full(7, 2.0), 0.03)
    assert weeks == [] and plan.tolist() == [2.0] * 7


def test_outcome_summary_statistics():
    bed = np.arange(1.0, 101.0)
    out = PlanOutcome(returns=bed, tumour_bed_gy=bed, oar_bed_gy=np.full(100, 17.0),
                      surviving_fraction=np.where(bed > 50, 1e-6, 1e-3),
                      weekly_volume=np.ones((100, 8)))
    s = outcome_summary(out, 1e-4)
    assert s["tumour_bed_mean"] == 50.5 and s["tumour_bed_iqr"] == pytest.approx(49.5)
    assert s["tumour_bed_range"] == [1.0, 100.0]
    lo, hi = s["tumour_bed_ci95"]
    assert hi - 50.5 == pytest.approx(1.96 * np.std(bed, ddof=1) / 10, rel=1e-3)
    assert 50.5 - lo == pytest.approx(hi - 50.5)
    assert s["p_sf_below_1e4"] == 0.5 and s["oar_bed_mean"] == 17.0


@pytest.fixture(scope="module")
def tiny_result():
    return run_plan(tiny_plan(beamlet=True))


def test_tiny_run_payload(tiny_result):
    p = tiny_result.payload
    for key in ("reference", "art"):
        for field in ("tumour_bed_mean", "tumour_bed_iqr", "oar_bed_mean", "p_sf_below_1e4"):
            assert np.isfinite(p[key][field])
    assert len(p["weekly_dose_gy"]) == 7
    assert all(1.8 - 1e-9 <= d <= 2.2 + 1e-9 for d in p["weekly_dose_gy"])
    assert all(2 <= w <= 7 for w in p["adaptation_weeks"])
    assert p["oracle"]["n_plans"] == 2187
    # The oracle is the best weekly plan: the ART plan's grid-valued weeks cannot beat it
    # unless they are off-grid (segment means), and the reference never does.
    assert p["oracle"]["mean_return"] >= p["reference"]["mean_return"]
    assert p["oracle_ratio"] == pytest.approx(p["art"]["mean_return"]
                                              / p["oracle"]["mean_return"])
    gain = p["oracle"]["mean_return"] - p["reference"]["mean_return"]
    if p["oracle_gain_captured"] is not None:
        assert p["oracle_gain_captured"] == pytest.approx(
            (p["art"]["mean_return"] - p["reference"]["mean_return"]) / gain)
    shares = np.asarray(p["policy"]["per_fraction_action_share"])
    assert shares.shape == (35, 3) and np.allclose(shares.sum(1), 1.0)
    assert p["train_seconds"] > 0
    assert set(p["beamlet"]["reference"]) == {"lung_v20_percent", "lung_mean_gy",
                                              "heart_v45_percent", "heart_d2_gy"}
    json.dumps(p, allow_nan=False)  # strict JSON


def test_identical_seeds_give_identical_results():
    a = run_plan(tiny_plan(seed=4)).payload
    b = run_plan(tiny_plan(seed=4)).payload
    for p in (a, b):
        for key in ("train_seconds", "evaluate_seconds", "oracle_seconds"):
            p.pop(key)
    assert a == b


def test_figures_render(tiny_result):
    fig = weekly_dose_figure(tiny_result)
    names = {t.name for t in fig.data}
    assert {"ART plan", "Reference (equal dose)", "1.8 Gy", "2.2 Gy"} <= names
    assert len(volume_box_figure(tiny_result).data) == 2
    assert len(bed_sf_figure(tiny_result).data) == 4
    phantom = phantom_dose_figure(tiny_result)
    assert sum(t.type == "heatmap" for t in phantom.data) == 2
    assert "lung V20" in phantom.layout.annotations[0].text


def test_job_writes_progress(tmp_path):
    job = FileJob(tmp_path)
    assert job.read() is None
    result = run_plan_job(tiny_plan().to_dict(), str(tmp_path))
    assert job.read() == {"share": 1.0, "message": "done"}
    assert result is not None and result.payload["seed"] == 0


def test_cli_plan_json(capsys):
    code = main(["plan", "--json", "--quiet", "--episodes", "2", "--scenarios", "20",
                 "--no-beamlet", "--gamma", "0.4", "--priority", "oar_sparing",
                 "--alpha-per-gy", "0.3"])
    assert code == 0
    p = json.loads(capsys.readouterr().out)
    for key in ("reference", "art", "weekly_dose_gy", "adaptation_weeks", "oracle_ratio",
                "oracle_gain_captured", "train_seconds"):
        assert key in p
    assert p["config"]["oar"]["sparing_gamma"] == 0.4
    assert p["config"]["biology"]["patient_alpha_per_gy"] == 0.3
    assert p["config"]["reward"]["oar_two_sided"] is True


def test_cli_plan_bad_input(capsys):
    assert main(["plan", "--gamma", "1.5", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "sparing_gamma" in err and "1.5" in err


def test_cli_plan_defaults_and_choices_are_the_planner_config_ones():
    """`artds plan` spells its defaults and choices out (importing the planner loads torch);
    they stay engine.planner.config's."""
    from engine.cli.planner import _plan_config

    parser = build_parser()
    assert _plan_config(parser.parse_args(["plan"])) == PlanConfig().validate()
    for priority in PRIORITIES:
        assert _plan_config(parser.parse_args(["plan", "--priority", priority])).priority == \
            priority
    for mode in REWARD_MODES:
        assert _plan_config(parser.parse_args(["plan", "--reward-mode", mode])).reward.mode == \
            mode
