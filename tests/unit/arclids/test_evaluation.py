"""Evaluation metrics: AUROC, log-loss, and the recommendation metrics (RMSD/MAD,
self-evaluation, best fixed dose, gain captured)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.arclids.evaluation import (
    LOG_LOSS_EPS,
    auroc,
    best_fixed_dose,
    gain_captured,
    log_loss,
    mad,
    mean_sem,
    positive_outcome,
    rmsd,
    self_evaluation,
    verdict_shares,
)


def test_auroc_hand_cases():
    assert auroc([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == 1.0
    assert auroc([0.9, 0.8, 0.2, 0.1], [0, 0, 1, 1]) == 0.0
    assert auroc([0.5, 0.5], [0, 1]) == 0.5  # a tie counts one half
    with pytest.raises(ValueError, match="one positive and one negative"):
        auroc([0.1, 0.2], [1, 1])


def test_log_loss_hand_case_and_one_class():
    expected = -(math.log(0.8) + math.log(0.6)) / 2
    assert log_loss([0.8, 0.4], [1, 0]) == pytest.approx(expected)
    # defined where AUROC is not: every label the same
    assert log_loss([0.9, 0.7], [1, 1]) == pytest.approx(-(math.log(0.9) + math.log(0.7)) / 2)


def test_log_loss_clips_certain_mistakes():
    assert log_loss([0.0], [1]) == pytest.approx(-math.log(LOG_LOSS_EPS))
    assert math.isfinite(log_loss([1.0, 0.0], [0, 1]))


def test_log_loss_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="matching"):
        log_loss([0.5, 0.5], [1])


@given(
    p_true=st.floats(0.02, 0.98),
    p_other=st.floats(0.02, 0.98),
)
def test_log_loss_is_proper(p_true: float, p_other: float):
    """The expected log-loss under outcome probability p is smallest when predicting p."""
    labels = np.array([1, 0])
    weights = np.array([p_true, 1.0 - p_true])

    def expected(q: float) -> float:
        return float(sum(w * log_loss([q], [y]) for w, y in zip(weights, labels, strict=True)))

    assert expected(p_true) <= expected(p_other) + 1e-12


def test_rmsd_and_mad_by_hand():
    a, b = np.array([2.0, 3.0, 4.0]), np.array([2.0, 2.0, 2.0])
    assert rmsd(a, b) == pytest.approx(math.sqrt((0 + 1 + 4) / 3))
    assert mad(a, b) == pytest.approx(1.0)
    assert math.isnan(rmsd(np.array([]), np.array([])))


@given(st.lists(st.floats(-10, 10), min_size=1, max_size=20))
def test_rmsd_at_least_mad(xs):
    a = np.array(xs)
    assert rmsd(a, np.zeros_like(a)) >= mad(a, np.zeros_like(a)) - 1e-12


def test_mean_sem():
    out = mean_sem(np.array([1.0, 2.0, 3.0]))
    assert out["mean"] == pytest.approx(2.0)
    assert out["sem"] == pytest.approx(1.0 / math.sqrt(3))
    assert mean_sem(np.array([5.0])) == {"mean": 5.0, "sem": None}
    assert mean_sem(np.array([np.nan])) == {"mean": None, "sem": None}


def test_self_evaluation_table_1():
    clinical = np.full(9, 3.0)
    recommended = np.array([3.5, 2.5, 3.0, 2.5, 3.5, 2.0, 4.0, 3.3, 3.0])
    tc = np.array([0, 0, 0, 1, 1, 0, 1, 1, 1])
    tox = np.array([0, 0, 0, 1, 1, 1, 0, 0, 0])
    verdicts = self_evaluation(recommended, clinical, tc, tox, window_gy=0.4)
    assert verdicts.tolist() == [
        "good",  # not controlled, no toxicity: higher is good
        "bad",  # ... lower is bad
        "bad",  # ... repeating the failed dose is no improvement
        "good",  # toxicity: lower is good
        "bad",  # toxicity: higher is bad
        "good",  # toxicity without control: lower is still good
        "not_sure",  # controlled without toxicity, 1 Gy away (window 0.4)
        "good",  # ... within the window
        "good",  # ... identical
    ]
    np.testing.assert_array_equal(positive_outcome(tc, tox), tc.astype(bool) & (tox == 0))


def test_verdict_shares():
    shares = verdict_shares(np.array(["good", "good", "bad", "not_sure"], dtype=object))
    assert shares == {"good": 0.5, "bad": 0.25, "not_sure": 0.25, "n": 4}
    assert verdict_shares(np.array([], dtype=object))["good"] is None


def test_best_fixed_dose_and_gain_captured_definition():
    reward = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 3.0]])  # [P, D]
    j, r_fixed = best_fixed_dose(reward)
    assert (j, r_fixed) == (2, 1.5)
    r_argmax = reward.max(axis=1).mean()  # 2.0
    assert gain_captured(r_argmax, r_argmax, r_fixed) == pytest.approx(1.0)
    assert gain_captured(r_fixed, r_argmax, r_fixed) == pytest.approx(0.0)
    assert gain_captured(1.75, r_argmax, r_fixed) == pytest.approx(0.5)
    assert gain_captured(1.0, r_argmax, r_fixed) == pytest.approx(-1.0)
    # nothing to capture when one dose is best for everyone
    assert gain_captured(1.0, 1.0, 1.0) is None
