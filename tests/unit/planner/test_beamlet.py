"""Beamlet-weight LP (22)–(26) and the 2-D phantom."""

from __future__ import annotations

import numpy as np
import pytest

from engine.planner.beamlet import (
    BeamletConfig,
    build_phantom,
    dose_influence,
    dvh_metrics,
    plan_course_doses,
    shrink_target,
    solve_beamlet_lp,
)


def test_lp_hand_checked_two_voxels_two_beamlets():
    # Voxel 0 is target, voxel 1 an OAR. Beamlet 0 gives (1.0, 0.5), beamlet 1 (1.0, 0.1):
    # min D_oar = 0.5 w0 + 0.1 w1 s.t. w0 + w1 ≥ 2, D ≤ 2.2 → w = (0, 2), D_oar = 0.2.
    influence = np.array([[1.0, 1.0], [0.5, 0.1]])
    target = np.array([True, False])
    w, dose = solve_beamlet_lp(influence, target, {"oar": ~target}, {"oar": 1.0}, 2.0, 1.1)
    assert w == pytest.approx([0.0, 2.0], abs=1e-9)
    assert dose == pytest.approx([2.0, 0.2], abs=1e-9)


def test_lp_infeasible_is_reported():
    influence = np.array([[1.0], [3.0]])  # the OAR gets 3× the target dose: cap 1.1× breaks
    with pytest.raises(RuntimeError, match="beamlet LP failed"):
        solve_beamlet_lp(influence, np.array([True, False]), {}, {}, 1.0, 1.1)


def test_phantom_plan_satisfies_constraints():
    cfg = BeamletConfig(grid=32, voxel_mm=8.75)
    ph = build_phantom(cfg)
    assert ph.tumour.sum() > 5 and ph.lung.sum() > 50 and ph.heart.sum() > 10
    assert not (ph.tumour & (ph.lung | ph.heart)).any()
    inf = dose_influence(ph, cfg)
    assert inf.shape[0] == ph.body.sum() and np.all(inf >= 0)
    body = ph.body
    target = ph.tumour[body]
    _, dose = solve_beamlet_lp(inf, target, {"lung": ph.lung[body]}, {"lung": 1.0}, 2.0, 1.1)
    assert dose[target].min() >= 2.0 - 1e-6
    assert dose.max() <= 2.2 + 1e-6


def test_shrinking_target_and_course_accumulation():
    cfg = BeamletConfig(grid=32, voxel_mm=8.75)
    ph = build_phantom(cfg)
    n = ph.tumour.sum()
    half = shrink_target(ph, 0.5, 0.0)
    assert half.sum() == round(0.5 * n) and (half <= ph.tumour).all()
    assert shrink_target(ph, 0.01, 0.25).sum() == round(0.25 * n)
    ref = plan_course_doses(np.full(35, 2.0), [1], [1.0], 5, cfg, ph)
    assert ref.dose_map_gy[ph.tumour].min() >= 70.0 - 1e-6
    art = plan_course_doses(np.full(35, 2.0), [1, 3], [1.0, 0.4], 5, cfg, ph)
    assert art.dose_map_gy[art.targets[-1]].min() >= 70.0 - 1e-6
    # A smaller target in weeks 3–7 spares the lung.
    assert art.metrics["lung_mean_gy"] < ref.metrics["lung_mean_gy"]


def test_dvh_metrics_hand_computed():
    dose = np.array([[10.0, 30.0], [50.0, 70.0]])
    lung = np.array([[True, True], [False, False]])
    heart = np.array([[False, False], [True, True]])
    m = dvh_metrics(dose, lung, heart)
    assert m["lung_v20_percent"] == 50.0 and m["lung_mean_gy"] == 20.0
    assert m["heart_v45_percent"] == 100.0
    assert m["heart_d2_gy"] == pytest.approx(50 + 0.98 * 20)
