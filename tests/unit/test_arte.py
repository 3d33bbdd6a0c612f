from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.arte import OutcomeCurves, adapted_geud, goal_index, reward
from engine.protocols import load_protocol

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
