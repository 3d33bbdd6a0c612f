"""WGAN-GP synthetic patients: transform, determinism, validity of samples, JSD."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from engine.arclids.cohort import generate_cohort
from engine.arclids.gan import (
    WGANGP,
    GANConfig,
    TabularTransform,
    feature_divergences,
    gan_columns,
    jensen_shannon,
)
from engine.core.protocols import load_protocol

NSCLC = load_protocol("nsclc")
HCC = load_protocol("hcc")
TINY = GANConfig(hidden=16, n_layers=2, latent_dim=4, epochs=2, batch_size=16)


@pytest.fixture(scope="module")
def nsclc_cases():
    return generate_cohort("nsclc").complete_table


def test_jsd_known_values():
    assert jensen_shannon(np.array([1, 2, 3]), np.array([2, 4, 6])) == pytest.approx(0.0)
    assert jensen_shannon(np.array([1, 0]), np.array([0, 1])) == pytest.approx(1.0)
    # P = (½, ½), Q = (1, 0): M = (¾, ¼); ½ KL(P‖M) + ½ KL(Q‖M) in bits
    expected = 0.5 * (0.5 * math.log2(0.5 / 0.75) + 0.5 * math.log2(0.5 / 0.25)) + 0.5 * math.log2(
        1 / 0.75
    )
    assert jensen_shannon(np.array([1, 1]), np.array([1, 0])) == pytest.approx(expected)
    with pytest.raises(ValueError):
        jensen_shannon(np.array([0, 0]), np.array([1, 1]))


@given(
    st.lists(st.floats(0, 10), min_size=3, max_size=3),
    st.lists(st.floats(0, 10), min_size=3, max_size=3),
)
def test_jsd_is_symmetric_and_bounded(p, q):
    p, q = np.array(p), np.array(q)
    if p.sum() <= 0 or q.sum() <= 0:
        return
    a, b = jensen_shannon(p, q), jensen_shannon(q, p)
    assert a == pytest.approx(b, abs=1e-12)
    assert 0.0 <= a <= 1.0


def test_feature_divergences_zero_for_same_table_and_high_for_shifted(nsclc_cases):
    same = feature_divergences(NSCLC, nsclc_cases, nsclc_cases)
    assert set(same) == set(gan_columns(NSCLC))
    assert max(same.values()) == pytest.approx(0.0, abs=1e-12)
    shifted = nsclc_cases.assign(mtv_rd=nsclc_cases["mtv_rd"] + 5.0)
    assert feature_divergences(NSCLC, nsclc_cases, shifted)["mtv_rd"] == pytest.approx(1.0)


def test_transform_round_trip_and_types(nsclc_cases):
    tr = TabularTransform(NSCLC).fit(nsclc_cases)
    x = tr.transform(nsclc_cases)
    assert x.shape == (len(nsclc_cases), len(gan_columns(NSCLC))) and x.dtype == np.float32
    np.testing.assert_allclose(x.mean(axis=0), 0.0, atol=1e-5)
    back = tr.inverse(x)
    for col in gan_columns(NSCLC):
        np.testing.assert_allclose(back[col], nsclc_cases[col], rtol=1e-4, atol=1e-4)
    assert tr.dose_step_gy_ == pytest.approx(0.1)  # the trial prescribes in 0.1 Gy steps


def test_tiny_gan_shapes_validity_and_determinism(nsclc_cases):
    a = WGANGP(NSCLC, TINY).fit(nsclc_cases)
    b = WGANGP(NSCLC, TINY).fit(nsclc_cases)
    assert len(a.history_) == TINY.epochs
    sa, sb = a.sample(300, seed=3), b.sample(300, seed=3)
    assert list(sa.columns) == list(gan_columns(NSCLC)) and len(sa) == 300
    assert sa.equals(sb)  # same seed, same data → identical synthetic patients
    assert not sa.equals(a.sample(300, seed=4))
    for feat in NSCLC.features:
        col = sa[feat.name]
        assert col.between(feat.min, feat.max).all(), feat.name
        if feat.kind == "genotype":
            assert set(col.unique()) <= {0.0, 1.0, 2.0}
    dose = sa["dose_eval_gy"]
    assert dose.between(NSCLC.dose_eval_min_gy, NSCLC.dose_eval_max_gy).all()
    np.testing.assert_allclose(dose * 10, np.round(dose * 10), atol=1e-6)


def test_state_dict_round_trip_samples_identically(nsclc_cases):
    gan = WGANGP(NSCLC, TINY).fit(nsclc_cases)
    state = gan.state_dict()
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    assert not any(k.startswith("critic") for k in state)
    again = WGANGP.from_state_dict(NSCLC, TINY, state)
    assert again.sample(50, seed=1).equals(gan.sample(50, seed=1))


def test_hcc_ordinal_features_are_integers():
    cases = generate_cohort("hcc").complete_table
    sample = WGANGP(HCC, TINY).fit(cases).sample(200, seed=0)
    for name in ("child_pugh_pre", "n_sites"):
        np.testing.assert_array_equal(sample[name], np.round(sample[name]))
    np.testing.assert_allclose(sample["dose_eval_gy"] * 2, np.round(sample["dose_eval_gy"] * 2))


def test_config_validation():
    with pytest.raises(ValueError, match="n_critic"):
        GANConfig(n_critic=0)
    with pytest.raises(ValueError, match="unknown"):
        GANConfig.from_dict({"width": 3})
