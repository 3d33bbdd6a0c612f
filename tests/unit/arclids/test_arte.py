from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.arclids.arte import goal_index, reward
from engine.arclids.geud import adapted_geud
from engine.arclids.outcomes import OutcomeCurves
from engine.core.protocols import load_protocol

NSCLC = load_protocol("nsclc")
prob = st.floats(0.0, 1.0)


def test_reward_bonuses_follow_goal_priority():
    tcp = np.array([0.8, 0.6, 0.3, 0.8])
    ntcp = np.array([0.1, 0.3, 0.1, 0.6])
    r = reward(tcp, ntcp, NSCLC.goals)
    np.testing.assert_allclose(r, tcp * (1 - ntcp) + np.array([2, 1, 0, 0]))
    np.testing.assert_array_equal(goal_index(tcp, ntcp, NSCLC.goals), [0, 1, -1, -1])


@given(prob, prob, st.floats(0.0, 0.2))
def test_reward_increases_with_tcp_and_falls_with_ntcp(tcp, ntcp, step):
    higher_tcp = min(tcp + step, 1.0)
    lower_ntcp = max(ntcp - step, 0.0)
    base = reward(tcp, ntcp, NSCLC.goals)
    assert reward(higher_tcp, ntcp, NSCLC.goals) >= base
    assert reward(tcp, lower_ntcp, NSCLC.goals) >= base


def test_adapted_geud_shape_and_monotone():
    cases = pd.DataFrame(
        {"tumour_geud_gy": [44.0, 46.0], "lung_geud_gy": [12, 9], "dose_eval_gy": [2.3, 2.2]}
    )
    g = adapted_geud(cases, NSCLC, NSCLC.target, NSCLC.dose_grid())
    assert g.shape == (2, 26)
    assert np.all(np.diff(g, axis=1) > 0)
    # at the evaluation dose the adaptive phase adds n_adapt/n_eval of the evaluation gEUD
    at_eval = adapted_geud(cases.iloc[:1], NSCLC, NSCLC.target, np.array([2.3]))
    assert at_eval[0, 0] == pytest.approx(44.0 * 1.5)


def test_outcome_curves_statistics():
    rng = np.random.default_rng(0)
    tcp = rng.random((5, 3, 4))
    ntcp = rng.random((5, 3, 4))
    curves = OutcomeCurves(doses_gy=np.arange(4.0), tcp=tcp, ntcp=ntcp)
    mean_tcp, _ = curves.mean()
    sd_tcp, sd_ntcp = curves.sd()
    cov = curves.covariance()
    assert cov.shape == (3, 4, 2, 2)
    np.testing.assert_allclose(cov[..., 0, 0], sd_tcp**2)
    np.testing.assert_allclose(cov[..., 1, 1], sd_ntcp**2)
    np.testing.assert_allclose(cov[..., 0, 1], cov[..., 1, 0])
    np.testing.assert_allclose(mean_tcp, tcp.mean(0))
    single = OutcomeCurves(doses_gy=np.arange(4.0), tcp=tcp[:1], ntcp=ntcp[:1])
    assert not single.sd()[0].any() and not single.covariance().any()


def _tiny_ensemble(arch: str, n_members: int = 3):
    from engine.arclids.cohort import generate_cohort
    from engine.arclids.ensemble import EnsembleOutcomeModel
    from engine.arclids.rtoe import OutcomeEstimator, RTOEConfig

    cases = generate_cohort("nsclc").complete_table
    members = {
        outcome: [
            OutcomeEstimator(
                NSCLC, outcome, RTOEConfig(arch=arch, hidden=8, n_layers=1, epochs=1, seed=k)
            ).fit(cases, cases[outcome].to_numpy())
            for k in range(n_members)
        ]
        for outcome in NSCLC.outcome_names
    }
    return EnsembleOutcomeModel(NSCLC, members["local_control"], members["rp2"], name="t",
                                label="tiny", version="v")


@pytest.mark.parametrize("arch", ["glogd", "single"])
def test_vectorised_arte_equals_the_per_member_loop(arch):
    from engine.arclids.arte import evaluate_arte
    from engine.arclids.cohort import generate_cohort
    from engine.arclids.odm import arte_member

    model = _tiny_ensemble(arch)
    cases = generate_cohort("nsclc", seed=4, n_patients=20).complete_table
    batched = evaluate_arte(cases, NSCLC, model)
    m, p, d = 3, len(cases), len(NSCLC.dose_grid_gy)
    assert batched.tcp.shape == batched.reward.shape == batched.goal.shape == (m, p, d)
    assert batched.goal_flags.shape == (len(NSCLC.goals), m, p, d)
    assert batched.target_geud_gy.shape == (p, d)
    # The ensemble evaluates its members in one batched pass: equal to one member's up to
    # float32 rounding (vectorised kernels round by position in the batch).
    close = {"rtol": 0.0, "atol": 1e-6}
    for k in range(m):
        one = evaluate_arte(cases, NSCLC, arte_member(model, k))
        np.testing.assert_allclose(batched.tcp[k], one.tcp[0], **close)
        np.testing.assert_allclose(batched.ntcp[k], one.ntcp[0], **close)
        np.testing.assert_allclose(batched.reward[k], one.reward[0], **close)
        np.testing.assert_array_equal(batched.goal[k], one.goal[0])
        np.testing.assert_array_equal(batched.goal_flags[:, k], one.goal_flags[:, 0])
        np.testing.assert_allclose(
            batched.reward[k], reward(one.tcp[0], one.ntcp[0], NSCLC.goals), **close
        )
    np.testing.assert_allclose(
        batched.target_geud_gy, adapted_geud(cases, NSCLC, NSCLC.target, NSCLC.dose_grid())
    )
    # goal flags are the goal definitions, independent of priority
    g0 = NSCLC.goals[0]
    np.testing.assert_array_equal(
        batched.goal_flags[0], (batched.tcp > g0.tcp_min) & (batched.ntcp < g0.ntcp_max)
    )


def test_at_dose_interpolates_linearly_and_hits_grid_points():
    from engine.arclids.arte import at_dose

    grid = np.array([1.0, 2.0, 3.0])
    values = np.array([[0.0, 1.0, 4.0], [2.0, 2.0, 2.0]])
    np.testing.assert_allclose(at_dose(grid, values, np.array([2.5, 1.0])), [2.5, 2.0])
    np.testing.assert_allclose(at_dose(grid, values, np.array([3.0, 9.0])), [4.0, 2.0])
    stacked = np.stack([values, 2 * values])  # leading member axis
    np.testing.assert_allclose(at_dose(grid, stacked, np.array([1.5, 2.0])), [[0.5, 2.0],
                                                                                [1.0, 4.0]])


def test_goal_flags_are_each_goal_and_agree_with_goal_index():
    from engine.arclids.arte import goal_flags

    goals = load_protocol("nsclc").goals  # population goal first, then the default goal
    tcp = np.array([0.75, 0.60, 0.40, 0.75])
    ntcp = np.array([0.10, 0.30, 0.10, 0.60])
    flags = goal_flags(tcp, ntcp, goals)
    assert flags.shape == (len(goals), 4)
    np.testing.assert_array_equal(flags[0], [True, False, False, False])
    np.testing.assert_array_equal(flags[1], [True, True, False, False])
    first = np.where(flags.any(axis=0), flags.argmax(axis=0), -1)
    np.testing.assert_array_equal(goal_index(tcp, ntcp, goals), first)
    assert goal_flags(0.75, 0.10, goals).shape == (len(goals),)
