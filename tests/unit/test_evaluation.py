"""Evaluation metrics: AUROC and log-loss."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.evaluation import LOG_LOSS_EPS, auroc, log_loss


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
