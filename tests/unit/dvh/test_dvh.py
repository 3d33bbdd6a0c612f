"""The DVH and its metrics (engine/dvh/dvh.py): hand-worked examples and properties."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.core.protocols.plan import parse_metric
from engine.core.radiobiology import eqd2
from engine.dvh.dvh import DVH, from_cumulative, from_differential, from_samples

exponents = st.floats(-40.0, 40.0).filter(lambda a: abs(a) > 1e-3)


def three_masses() -> DVH:
    """10 Gy in half of 100 cm³, 20 Gy in 30 %, 30 Gy in 20 %."""
    return DVH(np.array([10.0, 20.0, 30.0]), np.array([0.5, 0.3, 0.2]), 100.0)


@pytest.mark.parametrize(("metric", "expected"), [
    ("mean", 0.5 * 10 + 0.3 * 20 + 0.2 * 30),
    ("min", 10.0),
    ("max", 30.0),          # D0.03cc lies in the hottest mass
    ("D50%", 20.0),         # 50 % receive at least 20 Gy
    ("D20%", 30.0),
    ("D80%", 10.0),
    ("D100%", 10.0),
    ("D10cc", 30.0),
    ("D60cc", 10.0),
    ("V20Gy", 50.0),
    ("V25Gy", 20.0),
    ("V5Gy", 100.0),
    ("V31Gy", 0.0),
    ("V20Gy_cc", 50.0),
    ("CV15Gy", 50.0),       # cm³ below 15 Gy
])
def test_metrics_of_three_masses(metric, expected):
    assert three_masses().metric(parse_metric(metric)) == pytest.approx(expected)


def test_cm3_metrics_need_absolute_volume():
    dvh = DVH(np.array([10.0, 20.0]), np.array([0.5, 0.5]), None)
    assert dvh.metric(parse_metric("D2cc")) is None
    assert dvh.metric(parse_metric("CV15Gy")) is None
    assert dvh.metric(parse_metric("V15Gy")) == pytest.approx(50.0)
    assert dvh.near_max_gy == 20.0  # the point maximum without volumes


@settings(max_examples=60, deadline=None)
@given(st.floats(0.1, 100.0), exponents)
def test_geud_of_a_uniform_dose_is_the_dose(dose, a):
    dvh = from_samples(np.full(50, dose), np.full(50, 0.1))
    assert len(dvh.dose_gy) == 1
    assert dvh.geud_gy(a) == pytest.approx(dose, rel=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.5, 80.0), min_size=2, max_size=30), st.data())
def test_geud_rises_with_a_and_equals_the_mean_at_1(doses, data):
    # The power mean is non-decreasing in its exponent: cold spots weigh more as a falls.
    weights = data.draw(st.lists(st.floats(0.01, 1.0), min_size=len(doses),
                                 max_size=len(doses)))
    dvh = from_samples(np.array(doses), np.array(weights))
    values = [dvh.geud_gy(a) for a in (-20.0, -10.0, -1.0, 1.0, 10.0, 20.0)]
    assert all(b >= a - 1e-9 for a, b in itertools.pairwise(values))
    assert dvh.geud_gy(1.0) == pytest.approx(np.average(doses, weights=weights), rel=1e-9)
    assert min(doses) - 1e-9 <= values[0] and values[-1] <= max(doses) + 1e-9


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0.0, 70.0), st.floats(0.001, 2.0)), min_size=1,
                max_size=200))
def test_binning_keeps_the_mean_and_volume_exact(samples):
    dose = np.array([s[0] for s in samples])
    vol = np.array([s[1] for s in samples])
    dvh = from_samples(dose, vol)
    assert dvh.total_volume_cc == pytest.approx(vol.sum())
    assert dvh.mean_gy == pytest.approx(np.average(dose, weights=vol), abs=1e-9)
    assert np.all(np.diff(dvh.dose_gy) > 0)
    assert dvh.fraction.sum() == pytest.approx(1.0)


def test_cumulative_table_is_integrated_by_trapezoids():
    # 100 % at 0 Gy falling linearly to 0 % at 10 Gy: a uniform distribution on [0, 10].
    dvh = from_cumulative(np.array([0.0, 10.0]), np.array([100.0, 0.0]), percent=True,
                          total_volume_cc=50.0)
    assert dvh.mean_gy == pytest.approx(5.0, abs=1e-6)
    assert dvh.metric(parse_metric("V2.5Gy")) == pytest.approx(75.0, abs=0.1)
    assert dvh.metric(parse_metric("D50%")) == pytest.approx(5.0, abs=0.011)
    assert dvh.total_volume_cc == 50.0


def test_cumulative_table_in_cm3_and_not_starting_at_0():
    # 80 cm³ receive ≥ 5 Gy, 40 ≥ 10, 0 ≥ 20: 80 cm³ total (the first row).
    dvh = from_cumulative(np.array([5.0, 10.0, 20.0]), np.array([80.0, 40.0, 0.0]),
                          percent=False)
    assert dvh.total_volume_cc == 80.0
    assert dvh.mean_gy == pytest.approx((40 * 7.5 + 40 * 15.0) / 80, abs=1e-6)
    # In % with 90 % at the first dose: 10 % lies below it, placed at half that dose.
    partial = from_cumulative(np.array([4.0, 8.0]), np.array([90.0, 0.0]), percent=True)
    assert partial.mean_gy == pytest.approx(0.1 * 2.0 + 0.9 * 6.0, abs=1e-6)


def test_differential_table():
    dvh = from_differential(np.array([1.0, 2.0, 3.0]), np.array([2.0, 0.0, 2.0]), percent=False)
    assert dvh.total_volume_cc == 4.0
    assert list(dvh.dose_gy) == [1.0, 3.0] and dvh.mean_gy == 2.0


def test_eqd2_at_2_gy_per_fraction_is_the_physical_dose():
    dvh = DVH(np.array([60.0]), np.array([1.0]), 10.0)
    for ab in (2.0, 3.0, 10.0):
        assert dvh.eqd2(30, ab).dose_gy[0] == pytest.approx(60.0)
    # 3 × 15 Gy, α/β 10: the radiobiology module's EQD2.
    sbrt = DVH(np.array([45.0, 9.0]), np.array([0.5, 0.5]), 10.0).eqd2(3, 10.0)
    assert sbrt.dose_gy == pytest.approx([eqd2(3, 15.0, 10.0), eqd2(3, 3.0, 10.0)])
    assert sbrt.total_volume_cc == 10.0


def test_scaling_scales_every_dose_metric():
    dvh = three_masses()
    half = dvh.scaled(0.5)
    assert half.mean_gy == pytest.approx(0.5 * dvh.mean_gy)
    assert half.geud_gy(-10) == pytest.approx(0.5 * dvh.geud_gy(-10))
    assert half.metric(parse_metric("V10Gy")) == dvh.metric(parse_metric("V20Gy"))


def test_cumulative_curve_falls_from_100_to_0():
    dose, volume = three_masses().cumulative(50)
    assert volume[0] == 100.0 and volume[-1] == 0.0 and dose[0] == 0.0
    assert np.all(np.diff(volume) <= 0) and np.all(np.diff(dose) > 0)
    assert volume[np.searchsorted(dose, 15.0)] == pytest.approx(50.0)


def test_a_dvh_needs_matching_arrays():
    with pytest.raises(ValueError, match="same length"):
        DVH(np.array([1.0, 2.0]), np.array([1.0]), None)
    with pytest.raises(ValueError, match="no volume"):
        from_samples(np.array([1.0]), np.array([0.0]))
