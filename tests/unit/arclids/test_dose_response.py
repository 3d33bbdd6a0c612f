"""The served curves against the truth along the dose grid
(engine/arclids/rtoe_eval.py :func:`dose_response_metrics`)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.arclids.rtoe_eval import dose_response_metrics


def test_a_flat_curve_where_the_truth_rises_shows_in_the_rise_error():
    doses = np.linspace(0.0, 1.0, 5)
    truth = np.stack([0.1 + 0.4 * doses, 0.2 + 0.2 * doses])  # rises 0.4 and 0.2
    flat = np.full_like(truth, 0.3)
    m = dose_response_metrics(flat, truth)
    assert m["rise_served_median"] == 0.0
    assert m["rise_true_median"] == pytest.approx(0.3)
    assert m["rise_mae"] == pytest.approx(0.3)
    assert m["grid_mse_truth"] == pytest.approx(np.mean((flat - truth) ** 2))


@given(st.lists(st.floats(0.0, 1.0), min_size=6, max_size=6), st.floats(-0.2, 0.2))
def test_a_shifted_truth_has_no_rise_error(values, shift):
    truth = np.clip(np.sort(np.asarray(values)).reshape(2, 3), 0.2, 0.8)
    m = dose_response_metrics(truth + shift, truth)
    assert m["rise_mae"] == pytest.approx(0.0, abs=1e-12)
    assert m["grid_mse_truth"] == pytest.approx(shift**2)
