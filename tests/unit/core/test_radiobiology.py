"""Properties of the radiobiology core (hypothesis) and hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.core.radiobiology import (
    alpha_from_sf2,
    bed,
    eqd2,
    geud,
    geud_transition,
    geud_transition_general,
    lkb_ntcp,
    logistic_outcome,
    logistic_tcp,
    lq_survival,
    lql_effect,
    normalise_geud,
    sf2_from_alpha,
)

alpha_beta = st.floats(0.5, 20.0)
threshold = st.floats(1.0, 30.0)
dose = st.floats(0.1, 40.0)
fractions = st.integers(1, 40)


def test_lq_hand_computed():
    assert lql_effect(2.0, 10.0) == pytest.approx(2.4)
    assert bed(30, 2.0, 10.0) == pytest.approx(72.0)
    # 5 × 10 Gy at α/β 10: BED 100 Gy, EQD2 83.33 Gy
    assert eqd2(5, 10.0, 10.0) == pytest.approx(100.0 / 1.2)


def test_lql_hand_computed_above_threshold():
    # D_T = 5, α/β = 2.5: f(5) = 5 + 25/2.5 = 15; slope 1 + 10/2.5 = 5; f(7) = 15 + 2·5 = 25
    assert lql_effect(7.0, 2.5, 5.0) == pytest.approx(25.0)


@given(alpha_beta, threshold)
def test_lql_continuous_and_c1_at_threshold(ab, d_t):
    eps = 1e-6 * d_t
    below, at, above = (lql_effect(d, ab, d_t) for d in (d_t - eps, d_t, d_t + eps))
    assert below == pytest.approx(at, rel=1e-5) and above == pytest.approx(at, rel=1e-5)
    slope_below = (at - below) / eps
    slope_above = (above - at) / eps
    assert slope_below == pytest.approx(1 + 2 * d_t / ab, rel=1e-4)
    assert slope_above == pytest.approx(slope_below, rel=1e-4)


@given(alpha_beta, threshold, dose)
def test_lql_never_above_lq(ab, d_t, d):
    assert lql_effect(d, ab, d_t) <= lql_effect(d, ab) * (1 + 1e-12)


@given(fractions, alpha_beta)
def test_eqd2_of_two_gy_fractions_is_physical_dose(n, ab):
    assert eqd2(n, 2.0, ab) == pytest.approx(2.0 * n)


transition_args = st.tuples(
    st.floats(5.0, 80.0),  # g_eval
    st.integers(1, 30),  # n_eval
    st.integers(1, 15),  # n_adapt
    st.floats(0.5, 25.0),  # d_eval
    alpha_beta,
    threshold,
)


@given(transition_args, st.floats(0.1, 25.0))
def test_transition_equals_general_form_in_every_branch(args, d_adapt):
    g, n_e, n_a, d_e, ab, d_t = args
    branch = geud_transition(g, n_e, n_a, d_e, d_adapt, ab, d_t)
    general = geud_transition_general(g, n_e, n_a, d_e, d_adapt, ab, d_t)
    assert branch == pytest.approx(general, rel=1e-9)


@pytest.mark.parametrize(
    ("d_eval", "d_adapt"),
    [(2.0, 3.0), (2.0, 8.0), (8.0, 2.0), (8.0, 9.0)],
    ids=["qq", "ql", "lq", "ll"],
)
def test_each_table_s1_branch_against_hand_formula(d_eval, d_adapt):
    g, n_e, n_a, ab, d_t = 30.0, 3, 2, 10.0, 5.0
    gamma = ab + 2 * d_t
    r = n_a / n_e
    if d_eval < d_t and d_adapt < d_t:
        expected = g * (1 + r * (d_adapt / d_eval) * (d_adapt + ab) / (d_eval + ab))
    elif d_eval < d_t <= d_adapt:
        expected = g * (1 + r * (gamma * d_adapt - d_t**2) / (d_eval * (d_eval + ab)))
    elif d_adapt < d_t <= d_eval:
        expected = g * (1 + r * d_adapt * (d_adapt + ab) / (gamma * d_eval - d_t**2))
    else:
        expected = g * (1 + r * (gamma * d_adapt - d_t**2) / (gamma * d_eval - d_t**2))
    assert geud_transition(g, n_e, n_a, d_eval, d_adapt, ab, d_t) == pytest.approx(expected)


@given(transition_args, st.floats(0.1, 24.0), st.floats(0.01, 5.0))
def test_transition_strictly_increasing_in_adaptive_dose(args, d_low, step):
    g, n_e, n_a, d_e, ab, d_t = args
    low = geud_transition(g, n_e, n_a, d_e, d_low, ab, d_t)
    high = geud_transition(g, n_e, n_a, d_e, d_low + step, ab, d_t)
    assert high > low


def test_transition_vectorised_over_patients_and_doses():
    g = np.array([[40.0], [50.0]])
    d_adapt = np.linspace(1.5, 4.0, 26)[None, :]
    out = geud_transition(g, 20, 10, 2.3, d_adapt, 10.0, math.inf)
    assert out.shape == (2, 26)
    assert np.all(np.diff(out, axis=1) > 0)


def test_torch_matches_numpy_and_has_finite_gradients():
    d = torch.linspace(1.0, 15.0, 29, dtype=torch.float64, requires_grad=True)
    for d_t in (math.inf, 5.0, 20.0):
        out = geud_transition(torch.tensor(30.0, dtype=torch.float64), 3, 2, 10.0, d, 2.5, d_t)
        ref = geud_transition(30.0, 3, 2, 10.0, d.detach().numpy(), 2.5, d_t)
        np.testing.assert_allclose(out.detach().numpy(), ref, rtol=1e-12)
        (grad,) = torch.autograd.grad(out.sum(), d)
        assert torch.isfinite(grad).all() and (grad > 0).all()


@given(st.floats(-1.0, 2.0), st.floats(0.0, 1.0), st.floats(0.01, 1.0), st.floats(1e-4, 1.0))
def test_logistic_increasing_in_dose(g, mu, t, step):
    low, high = logistic_outcome(g, mu, t), logistic_outcome(g + step, mu, t)
    assert high >= low
    # strictly increasing wherever float64 can resolve the change: dp = p(1 − p)·step/t with
    # step/t ≥ 1e-4 exceeds the spacing of doubles near 1 once p(1 − p) > 1e-9
    if 1e-9 < low < 1.0 - 1e-9:
        assert high > low


def test_logistic_half_at_mu_and_no_overflow():
    assert logistic_outcome(0.4, 0.4, 0.1) == pytest.approx(0.5)
    extreme = logistic_outcome(np.array([-1e4, 1e4]), 0.5, 1e-3)
    assert extreme[0] == pytest.approx(0.0) and extreme[1] == pytest.approx(1.0)
    t = logistic_outcome(torch.tensor([0.2, 0.6]), torch.tensor(0.4), torch.tensor(0.1))
    assert isinstance(t, torch.Tensor) and t[1] > t[0]


def test_normalise_geud():
    assert normalise_geud(80.0, 40.0, 120.0) == pytest.approx(0.5)


def test_geud_limits():
    doses, vol = np.array([10.0, 20.0]), np.array([0.5, 0.5])
    assert geud(doses, vol, 1.0) == pytest.approx(15.0)  # mean dose
    assert geud(doses, vol, -50.0) == pytest.approx(10.0, rel=0.02)  # → minimum dose
    with pytest.raises(ValueError):
        geud(doses, vol, 0.0)


def test_population_models_at_their_midpoints():
    assert lkb_ntcp(30.8, 30.8, 0.37) == pytest.approx(0.5)
    assert lkb_ntcp(30.8 + 0.37 * 30.8, 30.8, 0.37) == pytest.approx(0.8413, abs=1e-4)
    assert logistic_tcp(84.5, 84.5, 1.5) == pytest.approx(0.5)
    # γ50 is the normalised slope at D50: dTCP/dD · D50 = γ50
    h = 1e-4
    slope = (logistic_tcp(84.5 + h, 84.5, 1.5) - logistic_tcp(84.5 - h, 84.5, 1.5)) / (2 * h)
    assert slope * 84.5 == pytest.approx(1.5, rel=1e-4)


@settings(max_examples=50)
@given(st.floats(1.0, 150.0), st.floats(1.0, 150.0))
def test_population_models_increasing(d1, d2):
    lo, hi = sorted((d1, d2))
    assert logistic_tcp(hi, 84.5, 1.5) >= logistic_tcp(lo, 84.5, 1.5)
    assert lkb_ntcp(hi, 30.8, 0.37) >= lkb_ntcp(lo, 30.8, 0.37)


# --------------------------------------------------------------------------------------------
# LQ survival and SF2 ↔ α

alpha = st.floats(0.01, 1.5)
beta = st.floats(0.0, 0.2)
sf2 = st.floats(1e-4, 0.9999)


def test_lq_survival_hand_computed():
    # α 0.3, β 0.03: one 2 Gy fraction exp(−0.72); 30 of them exp(−21.6).
    assert lq_survival(2.0, 0.3, 0.03) == pytest.approx(math.exp(-0.72))
    assert lq_survival(2.0, 0.3, 0.03, n_fractions=30) == pytest.approx(math.exp(-21.6))
    assert lq_survival(0.0, 0.3, 0.03) == 1.0
    d = np.array([[0.0, 1.0, 2.0]])
    np.testing.assert_allclose(lq_survival(d, np.array([[0.1], [0.4]]), 0.0),
                               np.exp(-np.array([[0.1], [0.4]]) * d))


def test_lq_survival_torch_matches_numpy_with_gradients():
    d = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64, requires_grad=True)
    s = lq_survival(d, 0.3, 0.03, 5)
    np.testing.assert_allclose(s.detach().numpy(), lq_survival(np.array([1.0, 2.0, 3.0]),
                                                               0.3, 0.03, 5))
    s.sum().backward()
    assert torch.all(d.grad < 0)


@given(alpha, beta, st.floats(0.0, 20.0), st.floats(0.001, 5.0), fractions)
def test_lq_survival_monotone_in_dose(a, b, d, step, n):
    low, high = lq_survival(d, a, b, n), lq_survival(d + step, a, b, n)
    assert 0.0 <= high <= low <= 1.0
    assert high < low or low == 0.0


@given(alpha, beta)
def test_two_gy_survival_is_sf2(a, b):
    assert sf2_from_alpha(a, beta_per_gy2=b) == lq_survival(2.0, a, b)
    assert sf2_from_alpha(a, beta_per_gy2=b) == pytest.approx(math.exp(-2 * a - 4 * b))
    assert sf2_from_alpha(a, 10.0) == pytest.approx(lq_survival(2.0, a, a / 10.0), rel=1e-12)


@given(sf2, alpha_beta)
def test_sf2_alpha_round_trip_at_fixed_alpha_beta(s, ab):
    a = alpha_from_sf2(s, ab)
    assert a > 0
    assert sf2_from_alpha(a, ab) == pytest.approx(s, rel=1e-9)


@given(sf2, beta)
def test_sf2_alpha_round_trip_at_fixed_beta(s, b):
    a = alpha_from_sf2(s, beta_per_gy2=b)
    assert sf2_from_alpha(a, beta_per_gy2=b) == pytest.approx(s, rel=1e-9)


@given(alpha, alpha_beta)
def test_alpha_sf2_round_trip(a, ab):
    assert alpha_from_sf2(sf2_from_alpha(a, ab), ab) == pytest.approx(a, rel=1e-9)


def test_alpha_from_sf2_domain():
    # Fixed α/β: α > 0 only for SF2 in (0, 1); fixed β: any SF2 > 0 (α < 0 above exp(−4β)).
    assert np.isnan(alpha_from_sf2([0.0, 1.0, 1.2, -0.1], 10.0)).all()
    out = alpha_from_sf2([0.0, 1.2, -0.1], beta_per_gy2=0.05)
    assert np.isnan(out[[0, 2]]).all() and out[1] == pytest.approx(-math.log(1.2) / 2 - 0.1)
    assert float(alpha_from_sf2(math.exp(-0.2), beta_per_gy2=0.05)) == pytest.approx(0.0)
    for kwargs in ({}, {"alpha_beta_gy": 10.0, "beta_per_gy2": 0.05}, {"alpha_beta_gy": 0.0},
                   {"beta_per_gy2": -0.01}):
        with pytest.raises(ValueError):
            alpha_from_sf2(0.5, **kwargs)
