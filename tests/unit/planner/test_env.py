"""Fractionation environment, reward (15), configs and the exact oracle."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from engine.planner.config import (
    BiologyRanges,
    CourseConfig,
    PlanConfig,
    RewardWeights,
    config_from_dict,
    preference_weights,
)
from engine.planner.env import (
    FractionationEnv,
    action_mask,
    plan_returns,
    prepare_scenarios,
    sample_biology,
)
from engine.planner.oracle import enumerate_weekly_plans, solve_oracle

CFG = PlanConfig()


@pytest.fixture(scope="module")
def scen():
    return prepare_scenarios(sample_biology(CFG.biology, 24, np.random.default_rng(3)), CFG)


def test_sampling_respects_ranges_and_patient_alpha():
    bio = sample_biology(CFG.biology, 1000, np.random.default_rng(0))
    a = bio.arrays()
    assert a["alpha_per_gy"].min() >= 0.20 and a["alpha_per_gy"].max() <= 0.365
    assert a["tau_g_days"].min() >= 10 and a["tau_d_days"].max() <= 6
    fixed = sample_biology(replace(CFG.biology, patient_alpha_per_gy=0.31), 50,
                           np.random.default_rng(0))
    same_rest = sample_biology(CFG.biology, 50, np.random.default_rng(0))
    assert np.all(fixed.arrays()["alpha_per_gy"] == 0.31)
    assert np.array_equal(fixed.arrays()["tau_g_days"], same_rest.arrays()["tau_g_days"])


def test_reference_scores_its_own_rewards(scen):
    out = plan_returns(np.full(35, 2.0), scen, CFG)
    assert np.allclose(out.returns, scen.ref_rewards.sum(axis=1))
    assert np.allclose(out.tumour_bed_gy, scen.ref_bed_t[:, -1])
    # Terminal mode telescopes: the return is J_N − J_0, here λ1 · BED (no penalties).
    assert np.allclose(out.returns, CFG.reward.lambda_tumour * scen.ref_bed_t[:, -1])


@pytest.mark.parametrize("block", [1, 5])
def test_env_stepping_matches_fixed_plan_scoring(scen, block):
    cfg = replace(CFG, course=replace(CFG.course, fractions_per_decision=block))
    env = FractionationEnv(cfg)
    obs, mask = env.reset(scen.bio)
    rng = np.random.default_rng(1)
    chosen, total, rel_total, done = [], 0.0, 0.0, False
    while not done:
        assert obs.shape == (24, 8) and obs.dtype == np.float32 and mask.shape == (24, 3)
        a = np.where(mask, rng.random(mask.shape), -1).argmax(1)
        chosen.append(a)
        obs, raw, rel, done, mask = env.step(a)
        total, rel_total = total + raw, rel_total + rel
    doses = np.repeat(np.asarray(cfg.course.actions_gy)[np.stack(chosen, 1)], block, axis=1)
    lo, hi = cfg.course.total_dose_bounds_gy
    assert np.all((doses.sum(1) >= lo - 1e-9) & (doses.sum(1) <= hi + 1e-9))
    expect = np.array([plan_returns(d, scen, cfg).returns[i] for i, d in enumerate(doses)])
    assert np.allclose(total, expect)
    assert np.allclose(rel_total, expect - scen.ref_rewards.sum(1))


def test_grouped_env_averages_its_scenarios(scen):
    env = FractionationEnv(CFG, group_size=8)
    obs, mask = env.reset(scen.bio)
    assert obs.shape == (3, 8) and mask.shape == (3, 3)
    _, raw, _, _, _ = env.step(np.array([2, 1, 0]))
    single = FractionationEnv(CFG)
    single.reset(scen.bio)
    _, raw1, _, _, _ = single.step(np.repeat([2, 1, 0], 8))
    assert np.allclose(raw, raw1.reshape(3, 8).mean(1))


def test_mask_refuses_unreachable_totals():
    cfg = CFG
    # 62 Gy after 30 fractions: a last week at 1.8 or 2.0 Gy ends at 71 or 72 Gy, at 2.2 at
    # 73 Gy > 72; 57 Gy: only 2.2 Gy reaches 68 Gy.
    assert action_mask(np.array([62.0]), 30, cfg, block=5).tolist() == [[True, True, False]]
    assert action_mask(np.array([57.0]), 30, cfg, block=5).tolist() == [[False, False, True]]
    assert action_mask(np.array([0.0]), 0, cfg, block=5).all()


def test_outside_the_mask_is_an_error(scen):
    env = FractionationEnv(CFG)
    env.reset(scen.bio)
    for _ in range(2):
        env.step(np.full(24, 2))  # two weeks at 2.2 Gy: +2 Gy
    env.step(np.full(24, 2))  # a third (+3 Gy) still leaves 68–72 reachable
    with pytest.raises(ValueError, match="mask"):
        for _ in range(4):
            env.step(np.full(24, 2))


def test_cumulative_mode_pays_the_running_objective(scen):
    cfg = replace(CFG, reward=replace(CFG.reward, mode="cumulative"))
    s2 = prepare_scenarios(scen.bio, cfg)
    out = plan_returns(np.full(35, 2.0), s2, cfg)
    assert np.allclose(out.returns, s2.ref_bed_t[:, 1:].sum(1))


def test_oar_penalty_applies_beyond_the_tolerance(scen):
    w = RewardWeights(lambda_oar=4.0, oar_tolerance=0.005)
    high = np.full(35, 2.2)  # 77 Gy: far above the reference OAR BED
    cfg = replace(CFG, reward=w, course=replace(CFG.course, total_dose_bounds_gy=(60, 80)))
    s2 = prepare_scenarios(scen.bio, cfg)
    out = plan_returns(high, s2, cfg)
    excess = out.oar_bed_gy - s2.ref_oar_bed[-1] - 0.005 * abs(s2.ref_oar_bed[-1])
    assert np.all(excess > 0)
    assert np.allclose(out.returns, out.tumour_bed_gy - 4.0 * excess)


def test_oar_tolerance_is_relative_to_the_magnitude_of_a_negative_reference(scen):
    from engine.planner.env import objective

    w = RewardWeights(lambda_tumour=0.0, lambda_tumour_shortfall=0.0, lambda_sf=0.0,
                      lambda_oar=1.0, oar_tolerance=0.1)
    zero = np.zeros(1)
    # Reference −10 Gy: up to −9 Gy is tolerated, −8 Gy exceeds it by 1 Gy.
    assert objective(zero, zero, zero, np.array([-9.0]), np.array([-10.0]), w)[0] == 0.0
    assert objective(zero, zero, zero, np.array([-8.0]), np.array([-10.0]), w)[0] == -1.0


def test_config_validation_names_the_field():
    with pytest.raises(ValueError, match="alpha_per_gy low"):
        BiologyRanges(alpha_per_gy=(-0.1, 0.3)).validate()
    with pytest.raises(ValueError, match="fractions_per_decision"):
        CourseConfig(fractions_per_decision=3).validate()
    with pytest.raises(ValueError, match="total_dose_bounds_gy"):
        CourseConfig(total_dose_bounds_gy=(71, 72)).validate()
    with pytest.raises(ValueError, match="priority"):
        preference_weights("both")
    with pytest.raises(ValueError, match="sparing_gamma"):
        replace(CFG, oar=replace(CFG.oar, sparing_gamma=0.0)).validate()
    assert config_from_dict(CFG.to_dict()) == CFG


def test_oracle_enumerates_every_weekly_plan_and_beats_each(scen):
    plans = enumerate_weekly_plans((1.8, 2.0, 2.2), 7)
    assert plans.shape == (3**7, 7) and len({tuple(p) for p in plans}) == 3**7
    oracle = solve_oracle(scen, CFG)
    assert oracle.n_plans == 2187
    assert np.allclose(oracle.weekly_plans_gy[oracle.reference_index], 2.0)
    total = oracle.weekly_plans_gy.sum(1) * 5
    assert np.array_equal(oracle.feasible, (total >= 68 - 1e-9) & (total <= 72 + 1e-9))
    rng = np.random.default_rng(0)
    some = rng.choice(np.flatnonzero(oracle.feasible), 40, replace=False)
    scored = plan_returns(np.repeat(oracle.weekly_plans_gy[some], 5, axis=1), scen, CFG)
    assert np.allclose(scored.returns.mean(1), oracle.mean_return[some])
    assert oracle.best_return >= scored.returns.mean(1).max() - 1e-12
    assert oracle.best_return >= oracle.reference_return
    assert oracle.best_return == pytest.approx(
        oracle.mean_return[oracle.feasible].max())
