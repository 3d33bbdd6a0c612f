"""Tumour/OAR response model of the planner: properties (hypothesis) and hand-checked cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.planner.model import (
    OarBiology,
    TumourBiology,
    TumourState,
    action_set,
    bed_lower_bound_gy,
    oar_bed_increment_gy,
    oar_volume_step,
    reference_continuation,
    simulate,
    treatment_days,
    treatment_gaps_days,
    tumour_bed_increment_gy,
    tumour_step,
)

biology = st.builds(
    TumourBiology,
    alpha_per_gy=st.floats(0.01, 1.0),
    alpha_beta_gy=st.floats(0.5, 30.0),
    tau_g_days=st.one_of(st.floats(1.0, 1000.0), st.just(math.inf)),
    tau_d_days=st.one_of(st.floats(0.5, 100.0), st.just(math.inf)),
    oer=st.floats(1.0, 3.0),
    rho=st.floats(0.0, 1.0),
)
doses = st.lists(st.floats(0.0, 10.0), min_size=1, max_size=40)
state = st.tuples(st.floats(1e-6, 1.0), st.floats(0.0, 1.0), st.floats(0.0, 1.0))


def test_schedule_skips_weekends():
    days = treatment_days(35)
    assert days[:6].tolist() == [0, 1, 2, 3, 4, 7]
    assert days[-1] == 46  # 7 weeks, last fraction on the Friday of week 7
    gaps = treatment_gaps_days(35)
    assert gaps.sum() == 46 and gaps[-1] == 0
    assert gaps[4] == 3 and gaps[3] == 1


@given(biology, doses)
@settings(max_examples=200)
def test_cell_counts_never_negative(bio, plan):
    traj = simulate(np.array(plan), bio, OarBiology(), treatment_gaps_days(len(plan)))
    for arr in (traj.viable, traj.dead, traj.doomed, traj.volume):
        assert np.all(arr >= 0) and np.all(np.isfinite(arr))


@given(biology, doses)
def test_without_repopulation_decay_and_hypoxia_the_model_is_plain_lq(bio, plan):
    plain = TumourBiology(bio.alpha_per_gy, bio.alpha_beta_gy, math.inf, math.inf,
                          oer=bio.oer, rho=1.0)
    d = np.array(plan)
    traj = simulate(d, plain, OarBiology(), np.ones(len(plan)))
    beta = bio.alpha_per_gy / bio.alpha_beta_gy
    lq = np.exp(-np.sum(bio.alpha_per_gy * d + beta * d * d))
    assert traj.surviving_fraction[-1] == pytest.approx(lq, rel=1e-9, abs=1e-300)
    assert traj.doomed.max() == 0.0


@given(st.floats(0.1, 0.5), st.floats(2.0, 15.0), st.floats(5.0, 100.0))
def test_repopulation_alone_multiplies_lq_by_exp_t_over_tau(alpha, ab, tau_g):
    bio = TumourBiology(alpha, ab, tau_g, math.inf, rho=1.0)
    d = np.full(35, 2.0)
    gaps = treatment_gaps_days(35)
    sf = simulate(d, bio, OarBiology(), gaps).surviving_fraction[-1]
    lq = math.exp(-35 * (alpha * 2 + alpha / ab * 4))
    assert sf == pytest.approx(lq * math.exp(46 / tau_g), rel=1e-9)


@given(state, biology, st.sampled_from([0.0, 1.0, 3.0]), st.floats(0.0, 10.0),
       st.floats(0.0, 10.0))
def test_tumour_bed_increases_above_the_theorem_2_bound(uwm, bio, gap, d1, d2):
    s = TumourState(*uwm)
    d_l = float(bed_lower_bound_gy(s, gap, bio))
    assert d_l >= 0.0
    lo, hi = sorted((d_l + d1, d_l + d2))
    b_lo = float(tumour_bed_increment_gy(s, lo, gap, bio))
    b_hi = float(tumour_bed_increment_gy(s, hi, gap, bio))
    assert b_lo >= -1e-9 * max(1.0, abs(b_lo))  # non-negative from d_l on
    if hi > lo + 1e-9:
        assert b_hi > b_lo
    if d_l > 0:  # c < 0: d_l is the root of the quadratic
        assert float(tumour_bed_increment_gy(s, d_l, gap, bio)) == pytest.approx(0.0, abs=1e-7)


def test_theorem_2_condition_u_over_w_against_tau_ratio():
    bio = TumourBiology(0.3, 10.0, 30.0, 3.0)
    many_dead = TumourState(0.1, 0.9, 0.0)  # u/w = 0.11 ≤ τ_g/τ_d = 10 → d_l = 0
    assert bed_lower_bound_gy(many_dead, 1.0, bio) == 0.0
    no_dead = TumourState(1.0, 0.0, 0.0)  # u/w = ∞ > 10 → positive bound
    assert bed_lower_bound_gy(no_dead, 1.0, bio) > 0.0


def test_bed_hand_computed():
    # Only viable cells, no gap: BED = d + d²/(α/β) (plain LQ BED of one fraction).
    bio = TumourBiology(0.3, 10.0, math.inf, math.inf)
    assert tumour_bed_increment_gy(TumourState(1.0, 0.0, 0.0), 2.0, 0.0, bio) == \
        pytest.approx(2.4)
    # OAR: γ 0.7, α/β 3 → 1.4 + 1.96/3; one day of repopulation and repair costs
    # (1/15 + 1/3.5)/0.3 Gy.
    oar = OarBiology()
    assert oar_bed_increment_gy(2.0, 1.0, oar) == pytest.approx(
        1.4 + 1.96 / 3 - (1 / 15 + 1 / 3.5) / 0.3)


def test_oar_volume_step_hand_computed():
    oar = OarBiology()
    d = 0.7 * 2.0
    expect = math.exp(-0.3 * d - 0.1 * d * d) * math.exp(1 / 15) * math.exp(1 / 3.5)
    assert oar_volume_step(1.0, 2.0, 1.0, oar) == pytest.approx(expect)
    assert oar_volume_step(1.0, 0.0, 0.0, oar) == 1.0


def test_step_hand_computed():
    bio = TumourBiology(0.3, 10.0, 20.0, 4.0, oer=1.7, rho=0.8)
    s = tumour_step(TumourState(1.0, 0.0, 0.0), 2.0, 1.0, bio)
    sp = math.exp(-0.6 - 0.03 * 4)
    assert s.viable == pytest.approx(sp * math.exp(1 / 20))
    assert s.dead == pytest.approx(0.8 * (1 - sp) * math.exp(-1 / 4))
    assert s.doomed == pytest.approx(0.2 * (1 - sp))


@given(biology, st.integers(0, 35))
@settings(max_examples=60)
def test_reference_continuation_matches_simulation(bio, k):
    bio1 = TumourBiology(*(np.atleast_1d(v) for v in (
        bio.alpha_per_gy, bio.alpha_beta_gy, bio.tau_g_days, bio.tau_d_days, bio.oer, bio.rho)))
    gaps = treatment_gaps_days(35)
    ref = np.full(35, 2.0)
    plan = np.concatenate([np.full(k, 2.2), ref[k:]])
    traj = simulate(plan, bio1, OarBiology(), gaps)
    g = reference_continuation(ref, bio1, gaps)[0, k]
    projected = g[0] * traj.viable[0, k] + g[1] * traj.doomed[0, k]
    assert projected == pytest.approx(traj.surviving_fraction[0, -1], rel=1e-9, abs=1e-300)


def test_action_set_algorithm_2():
    assert action_set(2.0, 1.8, 2.2, 0.2) == (1.8, 2.0, 2.2)  # the paper's lung case
    assert action_set(2.0, 1.8, 2.6, 0.2) == (1.8, 2.0, 2.2, 2.4, 2.6)
    assert action_set(2.0, 1.4, 2.1, 0.2) == (1.4, 1.6, 1.8, 2.0, 2.1)
    assert action_set(2.0, 1.5, 2.5, 0.2) == (1.5, 1.666666667, 1.833333333, 2.0,
                                              2.166666667, 2.333333333, 2.5)
    assert action_set(2.0, 2.0, 2.0, 0.2) == (2.0,)
    with pytest.raises(ValueError, match="delta_gy"):
        action_set(2.0, 2.1, 2.2, 0.2)
