from __future__ import annotations

import math

import numpy as np
import pytest

from engine.core.protocols import PROTOCOL_NAMES, load_protocol


def test_nsclc_protocol_numbers():
    p = load_protocol("nsclc")
    assert (p.n_eval_fractions, p.n_adapt_fractions, p.break_days) == (20, 10, 0)
    grid = p.dose_grid()
    assert grid[0] == 1.5 and grid[-1] == 4.0 and len(grid) == 26
    np.testing.assert_allclose(np.diff(grid), 0.1)
    assert p.target.alpha_beta_gy == 10 and p.target.geud_a == -10
    assert p.oar.alpha_beta_gy == 4 and p.oar.geud_a == 1
    assert math.isinf(p.target.threshold_gy)
    assert [(g.tcp_min, g.ntcp_max, g.bonus) for g in p.goals] == [(0.7, 0.172, 2), (0.5, 0.5, 1)]


def test_hcc_protocol_numbers():
    p = load_protocol("hcc")
    assert (p.n_eval_fractions, p.n_adapt_fractions, p.break_days) == (3, 2, 30)
    grid = p.dose_grid()
    assert grid[0] == 1.0 and grid[-1] == 15.0 and len(grid) == 29
    assert (p.target.alpha_beta_gy, p.target.geud_a, p.target.threshold_gy) == (10, -20, 20)
    assert (p.oar.alpha_beta_gy, p.oar.geud_a, p.oar.threshold_gy) == (2.5, 1, 5)
    assert [(g.tcp_min, g.ntcp_max) for g in p.goals] == [(0.9, 0.25), (0.5, 0.5)]
    assert p.id_columns == ("patient_id", "site_id")


@pytest.mark.parametrize("name", PROTOCOL_NAMES)
def test_features_and_dag(name):
    p = load_protocol(name)
    assert len(p.features) == 13
    roles = {f.name: f.role for f in p.features}
    assert roles[p.target.geud_feature] == roles[p.oar.geud_feature] == "dosimetric"
    for feat in p.features:
        assert feat.min < feat.max
        assert any(feat.name in edge for edge in p.dag_edges), f"{feat.name} is isolated"
    # The two dose nodes share no parent, and every edge ends in a known node.
    parents = {b: {a for a, c in p.dag_edges if c == b} for _, b in p.dag_edges}
    assert not parents.get(p.target.geud_feature, set()) & parents.get(p.oar.geud_feature, set())
    assert all(a in p.feature_names for a, b in p.feature_edges())


def test_unknown_protocol_is_refused():
    with pytest.raises(ValueError, match="unknown protocol"):
        load_protocol("prostate")
