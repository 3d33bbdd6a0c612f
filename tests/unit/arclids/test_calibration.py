"""Recalibration, conformal intervals, bagging by patient and the proposal comparison."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import expit, logit

from engine.arclids.calibration import (
    MIN_SLOPE,
    RECALIBRATION_METHODS,
    AdviceCalibration,
    OutcomeCalibration,
    choose_recalibration,
    fit_advice_calibration,
    fit_calibration,
    fit_conformal,
    fit_platt,
    interval_draws,
    recalibration_words,
)
from engine.arclids.ensemble import EnsembleOutcomeModel, member_calibrated_proba
from engine.arclids.outcomes import OutcomeCurves
from engine.arclids.recommend import ADVICE_THRESHOLD, compare_proposal, dose_interval, ntcp_caution
from engine.arclids.rtoe import OutcomeEstimator, RTOEConfig
from engine.arclids.rtoe_train import training_cases
from engine.arclids.splits import (
    bootstrap_rows,
    out_of_bag,
    patient_groups,
    stratified_splits,
)
from engine.core.protocols import load_protocol

NSCLC = load_protocol("nsclc")


def test_platt_recovers_a_known_miscalibration():
    rng = np.random.default_rng(0)
    z = rng.normal(0.0, 2.0, 20_000)
    raw = expit(z)
    y = rng.random(z.size) < expit(-1.0 + 0.5 * z)  # truth: a = −1, b = 0.5
    oob = rng.random((3, z.size)) < 0.4
    a, b, n = fit_platt(np.stack([raw] * 3), oob, y.astype(int))
    assert a == pytest.approx(-1.0, abs=0.1) and b == pytest.approx(0.5, abs=0.05)
    assert n == oob.sum()


def test_platt_with_nothing_to_fit_is_the_identity():
    raw = np.full((2, 5), 0.3)
    assert fit_platt(raw, np.zeros((2, 5), bool), np.array([0, 1, 0, 1, 0]))[:2] == (0.0, 1.0)
    assert fit_platt(raw, np.ones((2, 5), bool), np.zeros(5))[:2] == (0.0, 1.0)  # one class


@settings(max_examples=50, deadline=None)
@given(a=st.floats(-5, 5), b=st.floats(MIN_SLOPE, 5),
       p=st.lists(st.floats(1e-6, 1 - 1e-6), min_size=2, max_size=20))
def test_recalibration_is_strictly_increasing(a, b, p):
    cal = OutcomeCalibration(intercept=a, slope=b)
    p = np.sort(np.unique(np.asarray(p)))
    out = cal.apply(p)
    assert ((out >= 0) & (out <= 1)).all()
    assert (np.diff(out) >= 0).all()


def test_a_slope_below_the_minimum_is_refused_by_name():
    with pytest.raises(ValueError, match=r"OutcomeCalibration\.slope"):
        OutcomeCalibration(slope=0.0)


def test_conformal_interval_holds_its_level_on_a_fresh_draw():
    rng = np.random.default_rng(1)

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        truth = rng.uniform(0.1, 0.9, (n, 5))
        # members agree with each other (sd 0.02) more than with the truth (bias 0.1)
        members = np.clip(truth[None] + 0.1 + rng.normal(0.0, 0.02, (10, n, 5)), 0, 1)
        return members, truth

    members, truth = draw(800)
    q = fit_conformal(members, truth, 0.8)
    cal = OutcomeCalibration(interval_level=0.8, conformal_quantile=q)
    fresh, fresh_truth = draw(800)
    lo, hi = cal.interval(fresh)
    coverage = ((fresh_truth >= lo) & (fresh_truth <= hi)).mean()
    assert coverage == pytest.approx(0.8, abs=0.03)
    # the members' own spread is too narrow for the shifted truth: min–max covers less
    raw_lo, raw_hi = OutcomeCalibration().interval(fresh)
    assert ((fresh_truth >= raw_lo) & (fresh_truth <= raw_hi)).mean() < coverage


def test_interval_draws_spread_as_the_interval():
    members = np.full((5, 3, 4), 0.5)
    lo, hi = np.full((3, 4), 0.4), np.full((3, 4), 0.6)
    draws = interval_draws(members, lo, hi, 0.8, n_draws=4000, seed=0)
    inside = ((draws >= lo) & (draws <= hi)).mean()
    assert inside == pytest.approx(0.8, abs=0.03)
    assert (draws[:, 0, 0] == draws[:, 0, 3]).all()  # one ε per curve, shared along the doses
    assert interval_draws(members, lo, hi, None) is members or np.array_equal(
        interval_draws(members, lo, hi, None), members)


def test_glogd_stays_monotone_in_dose_after_recalibration():
    cases = training_cases("nsclc")
    members = {o: [OutcomeEstimator(NSCLC, o, RTOEConfig(arch="glogd", hidden=8, n_layers=1,
                                                         epochs=2, seed=k)).fit(cases, cases[o])
                   for k in range(3)] for o in NSCLC.outcome_names}
    cal = OutcomeCalibration(intercept=-1.2, slope=0.3, interval_level=0.8,
                             conformal_quantile=1.5)
    model = EnsembleOutcomeModel(NSCLC, members["local_control"], members["rp2"], name="t",
                                 label="t", version="t", tcp_calibration=cal,
                                 ntcp_calibration=cal)
    curves = model.predict_curves(cases, NSCLC)
    assert (np.diff(curves.tcp, axis=2) >= 0).all() and (np.diff(curves.ntcp, axis=2) >= 0).all()
    assert curves.interval_level == 0.8
    lo, hi = curves.tcp_lo, curves.tcp_hi
    assert (lo <= curves.tcp.mean(axis=0) + 1e-12).all()
    assert (hi >= curves.tcp.mean(axis=0) - 1e-12).all()
    raw_tcp, _ = model.predict_raw(cases, NSCLC.dose_grid())
    np.testing.assert_allclose(curves.tcp, expit(-1.2 + 0.3 * logit(np.clip(raw_tcp, 1e-7,
                                                                            1 - 1e-7))))


def test_hcc_splits_never_put_a_patient_on_both_sides():
    cases = training_cases("hcc")
    groups = patient_groups(cases)
    assert len(np.unique(groups)) < len(cases)  # several sites per patient exist
    y = cases["liver_toxicity"].to_numpy()
    for train, test in stratified_splits(y, seed=0, groups=groups):
        assert not set(groups[train]) & set(groups[test])
        assert len(test) and y[test].sum() > 0 and y[train].sum() > 0


def test_splits_by_row_are_unchanged_when_every_row_is_its_own_patient():
    y = np.array([1] * 48 + [0] * 19)
    by_row = stratified_splits(y, seed=3)
    by_patient = stratified_splits(y, seed=3, groups=np.arange(len(y)))
    for (a, b), (c, d) in zip(by_row, by_patient, strict=True):
        assert np.array_equal(a, c) and np.array_equal(b, d)


def test_bootstrap_draws_whole_patients():
    cases = pd.DataFrame({"patient_id": ["a", "a", "b", "c", "c", "c"]})
    rows = bootstrap_rows(cases, seed=5)
    drawn = cases["patient_id"].to_numpy()[rows]
    for pid in set(drawn):  # a drawn patient brings all its rows, as often as it was drawn
        assert (drawn == pid).sum() % (cases["patient_id"] == pid).sum() == 0
    oob = out_of_bag(cases, seed=5)
    assert set(cases["patient_id"][oob]).isdisjoint(set(drawn))
    assert np.array_equal(bootstrap_rows(cases, seed=5), rows)


def _curves(tcp: np.ndarray, ntcp: np.ndarray, half: float) -> OutcomeCurves:
    return OutcomeCurves(NSCLC.dose_grid(), tcp, ntcp, interval_level=0.8,
                         tcp_lo=np.clip(tcp[0] - half, 0, 1), tcp_hi=np.clip(tcp[0] + half, 0, 1),
                         ntcp_lo=np.clip(ntcp[0] - half, 0, 1),
                         ntcp_hi=np.clip(ntcp[0] + half, 0, 1))


def test_proposal_is_kept_unless_the_recommendation_is_clearly_better():
    doses = NSCLC.dose_grid()
    tcp = np.clip((doses - 1.5) / 2.5, 0, 1)[None, None, :]
    ntcp = np.full((1, 1, len(doses)), 0.05)
    sure = compare_proposal(_curves(tcp, ntcp, 0.01), NSCLC, np.array([4.0]), np.array([1.5]))
    assert sure.p_recommended_better[0] == 1.0 and sure.advice[0] == "change"
    assert sure.advised_dose_gy[0] == 4.0
    same = compare_proposal(_curves(tcp, ntcp, 0.01), NSCLC, np.array([3.0]), np.array([3.0]))
    assert same.p_recommended_better[0] == 0.0 and same.advice[0] == "keep"
    # the higher dose gains TCP but may push NTCP past the population goal's 17.2 %: unsure
    tcp = np.clip(0.15 + 0.2 * doses, 0, 1)[None, None, :]  # 0.75 at 3.0 Gy, 0.85 at 3.5 Gy
    ntcp = np.clip(-0.32 + 0.14 * doses, 0, 1)[None, None, :]  # 0.10 at 3.0 Gy, 0.17 at 3.5
    vague = compare_proposal(_curves(tcp, ntcp, 0.05), NSCLC, np.array([3.5]), np.array([3.0]))
    assert 0.2 < vague.p_recommended_better[0] < ADVICE_THRESHOLD
    assert vague.advice[0] == "keep" and vague.advised_dose_gy[0] == 3.0


def test_dose_interval_widens_with_the_outcome_uncertainty():
    doses = NSCLC.dose_grid()
    tcp = np.clip((doses - 1.5) / 2.5, 0, 1)[None, None, :]
    ntcp = np.clip((doses - 1.5) / 3.0, 0, 1)[None, None, :] ** 2
    narrow = dose_interval(_curves(tcp, ntcp, 0.001), NSCLC)
    wide = dose_interval(_curves(tcp, ntcp, 0.3), NSCLC)
    assert narrow[1][0] - narrow[0][0] <= wide[1][0] - wide[0][0]
    assert wide[1][0] - wide[0][0] > 0


def test_ntcp_above_the_default_goal_gets_a_caution():
    default = next(g for g in NSCLC.goals if g.name == "default")
    assert ntcp_caution(NSCLC, default.ntcp_max - 0.01) is None
    assert "exceeds" in ntcp_caution(NSCLC, default.ntcp_max + 0.1)


def test_reference_dose_recalibration_keeps_the_dose_response():
    cal = OutcomeCalibration(intercept=-0.7, slope=0.2, reference_dose_gy=2.8)
    raw = np.array([[[0.2, 0.4, 0.7, 0.9]]])  # [M, P, D], rising with dose
    ref = raw[..., 1:2]  # the reference dose is the second grid dose
    out = cal.apply(raw, ref)
    # the patient's level at the reference dose is recalibrated ...
    assert out[0, 0, 1] == pytest.approx(expit(-0.7 + 0.2 * logit(0.4)))
    # ... and the member's own change of logit along the dose is kept
    np.testing.assert_allclose(np.diff(logit(out[0, 0])), np.diff(logit(raw[0, 0])))
    with pytest.raises(ValueError, match="reference dose"):
        cal.apply(raw)


def test_platt_with_a_dose_offset_recovers_the_patient_level():
    rng = np.random.default_rng(3)
    z_ref = rng.normal(0.0, 2.0, 20_000)
    offset = rng.normal(0.0, 0.5, z_ref.size)  # received dose ≠ reference dose
    y = rng.random(z_ref.size) < expit(0.5 + 0.3 * z_ref + offset)
    a, b, _ = fit_platt(expit(z_ref + offset)[None], np.ones((1, z_ref.size), bool),
                        y.astype(int), expit(z_ref)[None])
    assert a == pytest.approx(0.5, abs=0.08) and b == pytest.approx(0.3, abs=0.04)


def test_advice_calibration_is_monotone_and_corrects_over_confidence():
    rng = np.random.default_rng(4)
    p_raw = rng.random(5000)
    truly = rng.random(5000) < 0.5 * p_raw  # the raw share claims twice what is true
    advice = fit_advice_calibration(p_raw, truly)
    grid = np.linspace(0, 1, 21)
    mapped = advice.apply(grid)
    assert (np.diff(mapped) >= 0).all() and mapped.min() >= 0 and mapped.max() <= 1
    assert advice.apply(np.array([0.9]))[0] == pytest.approx(0.45, abs=0.08)
    assert AdviceCalibration.from_dict(advice.to_dict()) == advice


def test_an_over_confident_share_no_longer_changes_the_clinicians_dose():
    doses = NSCLC.dose_grid()
    tcp = np.clip((doses - 1.5) / 2.5, 0, 1)[None, None, :]
    ntcp = np.full((1, 1, len(doses)), 0.05)
    never = AdviceCalibration(raw=(0.0, 1.0), calibrated=(0.0, 0.3))
    curves = _curves(tcp, ntcp, 0.01)
    mapped = compare_proposal(OutcomeCurves(**{**curves.__dict__, "p_better_map": never}),
                              NSCLC, np.array([4.0]), np.array([1.5]))
    assert mapped.p_recommended_better[0] == pytest.approx(0.3)
    assert mapped.advice[0] == "keep" and mapped.advised_dose_gy[0] == 1.5


def test_curves_read_the_reference_dose_from_the_grid_as_a_second_pass_would():
    cases = training_cases("nsclc").head(8)
    members = [OutcomeEstimator(NSCLC, "rp2", RTOEConfig(arch="single", hidden=8, n_layers=1,
                                                         epochs=1, seed=k)).fit(cases, cases["rp2"])
               for k in range(2)]
    cal = OutcomeCalibration(intercept=-0.4, slope=0.3, reference_dose_gy=2.8)
    doses = NSCLC.dose_grid()
    assert np.isclose(doses, 2.8).any()
    on_grid = member_calibrated_proba(members, cal, cases, doses)
    raw = np.stack([m.predict_proba(cases, doses) for m in members])
    ref = np.stack([m.predict_proba(cases, np.array([2.8])) for m in members])
    np.testing.assert_allclose(on_grid, cal.apply(raw, ref), atol=1e-12)
    off_grid = member_calibrated_proba(members, cal, cases, np.array([2.85]))
    np.testing.assert_allclose(
        off_grid, cal.apply(np.stack([m.predict_proba(cases, np.array([2.85])) for m in members]),
                            ref), atol=1e-12)


def _recalibration_case(truth_shift: float, seed: int = 0) -> dict[str, np.ndarray]:
    """Members [M=4, P, D=5] whose logits are the truth's minus ``truth_shift`` plus member
    noise; training outcomes drawn at one dose per case from the truth."""
    rng = np.random.default_rng(seed)
    n_train, n_cal, n_doses = 400, 300, 5
    level = rng.normal(0.0, 1.0, n_train + n_cal)[:, None]
    dose_term = np.linspace(-1.0, 1.0, n_doses)[None, :]
    true_logit = level + dose_term
    raw_logit = true_logit - truth_shift + rng.normal(0.0, 0.1, (4, *true_logit.shape))
    raw = expit(raw_logit)
    received = rng.integers(0, n_doses, n_train)
    rows = np.arange(n_train)
    y = (rng.random(n_train) < expit(true_logit[:n_train])[rows, received]).astype(int)
    return {"raw_train": raw[:, :n_train][:, rows, received], "raw_train_ref": raw[:, :n_train, 2],
            "oob": rng.random((4, n_train)) < 0.37, "y": y,
            "raw_cal": raw[:, n_train:], "truth_cal": expit(true_logit[n_train:])}


def _fit(case: dict[str, np.ndarray]) -> OutcomeCalibration:
    return fit_calibration(case["raw_train"], case["oob"], case["y"], case["raw_cal"],
                           case["truth_cal"], 0.8, raw_train_ref=case["raw_train_ref"],
                           reference_dose_gy=2.8, reference_index=2)


def test_members_that_already_match_the_truth_are_served_as_trained():
    """A Platt map fitted on noisy out-of-bag outcomes can only move right members away from
    the truth: the calibration cohort's truth keeps them as they are."""
    cal = _fit(_recalibration_case(truth_shift=0.0))
    assert cal.method == "none" and (cal.intercept, cal.slope) == (0.0, 1.0)
    assert set(cal.candidate_mse) == set(RECALIBRATION_METHODS)
    assert cal.candidate_mse["none"] == min(cal.candidate_mse.values())
    assert cal.interval_level == 0.8 and cal.conformal_quantile is not None


def test_members_shifted_from_the_truth_are_recalibrated_and_the_choice_recorded():
    """Members that over-predict (the balanced event rate of oversampled training) get a Platt
    map; the recorded scores are the ensemble means' squared errors against the truth."""
    case = _recalibration_case(truth_shift=-1.5)
    cal = _fit(case)
    assert cal.method in ("platt", "platt-reference-dose")
    assert cal.candidate_mse[cal.method] < 0.5 * cal.candidate_mse["none"]
    none_mse = float(np.mean((case["raw_cal"].mean(axis=0) - case["truth_cal"]) ** 2))
    assert cal.candidate_mse["none"] == pytest.approx(none_mse)
    again = OutcomeCalibration.from_dict(cal.to_dict())
    assert again == cal


def test_ties_go_to_the_reference_dose_map_and_without_a_cohort_it_is_the_default():
    same = OutcomeCalibration(method="none")
    raw = np.full((2, 3, 5), 0.4)
    chosen, mse = choose_recalibration(
        {"none": same, "platt": OutcomeCalibration(method="platt"),
         "platt-reference-dose": OutcomeCalibration(method="platt-reference-dose")},
        raw, np.full((3, 5), 0.4))
    assert chosen == "platt-reference-dose" and set(mse.values()) == {0.0}
    case = _recalibration_case(truth_shift=0.0)
    plain = fit_calibration(case["raw_train"], case["oob"], case["y"], None, None,
                            raw_train_ref=case["raw_train_ref"], reference_dose_gy=2.8)
    assert plain.method == "platt-reference-dose" and plain.reference_dose_gy == 2.8
    assert plain.conformal_quantile is None and plain.candidate_mse is None


def test_an_unknown_recalibration_method_is_refused_by_name():
    with pytest.raises(ValueError, match=r"OutcomeCalibration\.method"):
        OutcomeCalibration(method="isotonic")


def test_the_map_is_chosen_the_same_way_without_an_interval():
    """The regret learning curve shows no interval but must serve the map the app would."""
    case = _recalibration_case(truth_shift=0.0)
    with_interval = _fit(case)
    without = fit_calibration(case["raw_train"], case["oob"], case["y"], case["raw_cal"],
                              case["truth_cal"], raw_train_ref=case["raw_train_ref"],
                              reference_dose_gy=2.8, reference_index=2, interval=False)
    assert without.method == with_interval.method == "none"
    assert without.candidate_mse == with_interval.candidate_mse
    assert without.conformal_quantile is None and without.interval_level is None


def test_the_model_label_says_only_what_the_maps_do():
    platt = OutcomeCalibration(intercept=-0.4, slope=0.3, method="platt")
    none = OutcomeCalibration(method="none")
    assert recalibration_words(platt, platt) == "recalibrated"
    assert recalibration_words(none, platt) == "NTCP recalibrated"
    assert recalibration_words(platt, none) == "TCP recalibrated"
    assert recalibration_words(none, none) == "as trained"


@pytest.mark.parametrize("name", ["nsclc", "hcc"])
def test_the_served_label_names_the_recalibrated_outcomes(name):
    from engine.arclids.serving import load_served_model

    model = load_served_model(name)
    words = recalibration_words(model.tcp_calibration, model.ntcp_calibration)
    assert f"bagged members, {words}, trained on the virtual trial" in model.label
