"""Fitting an outcome ensemble's calibration from its bagged members (the maths is in
:mod:`engine.arclids.calibration`).

:func:`calibrate_members` fits one outcome's recalibration on the members' out-of-bag
predictions and its interval on the calibration cohort; :func:`calibrate_advice` fits the map of
``p_recommended_better`` against that cohort's truth. Used by ``artds train rtoe`` (and its
``--recalibrate``), the regret learning curve and Learning Mode.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from engine.arclids.calibration import (
    DEFAULT_INTERVAL_LEVEL,
    AdviceCalibration,
    OutcomeCalibration,
    fit_advice_calibration,
    fit_calibration,
    reference_index,
)
from engine.arclids.ensemble import EnsembleOutcomeModel
from engine.arclids.rtoe import OutcomeEstimator
from engine.arclids.rtoe_eval import calibration_cohort
from engine.arclids.splits import out_of_bag
from engine.core.protocols import Protocol

__all__ = ["calibrate_advice", "calibrate_members", "reference_dose_gy"]


def calibrate_members(
    protocol: Protocol,
    outcome: str,
    members: Sequence[OutcomeEstimator],
    cases: pd.DataFrame,
    bootstrap_seeds: Sequence[int],
    *,
    interval: bool = True,
    level: float = DEFAULT_INTERVAL_LEVEL,
) -> OutcomeCalibration:
    """Fit the recalibration maps on the members' out-of-bag predictions on their training
    ``cases``, choose one on the calibration cohort (its truth) and, with ``interval``, fit the
    conformal interval there.

    Args:
        protocol: the protocol.
        outcome: the members' outcome.
        members: bagged members, member k trained on ``bootstrap_rows(cases, bootstrap_seeds[k])``.
        cases: the training cases (with ``outcome``).
        bootstrap_seeds: one seed per member.
        interval: also fit the interval (False: the map only, e.g. for the regret learning
            curve, which shows no interval).
        level: interval level.
    """
    y = cases[outcome].to_numpy().astype(int)
    doses = protocol.dose_grid()
    ref_dose = reference_dose_gy(protocol, cases)
    raw = np.stack([m.predict_proba(cases) for m in members])  # [M, P]
    raw_ref = np.stack([m.predict_proba(cases, np.array([ref_dose]))[:, 0] for m in members])
    oob = np.stack([out_of_bag(cases, s) for s in bootstrap_seeds])  # [M, P]
    table, truth_curves = calibration_cohort(protocol.name)
    raw_cal = np.stack([m.predict_proba(table, doses) for m in members])
    truth = truth_curves[0 if outcome == protocol.target.outcome else 1]
    return fit_calibration(raw, oob, y, raw_cal, truth, level, raw_train_ref=raw_ref,
                           reference_dose_gy=ref_dose,
                           reference_index=reference_index(doses, ref_dose), interval=interval)


def calibrate_advice(
    protocol: Protocol,
    tcp_members: Sequence[OutcomeEstimator],
    ntcp_members: Sequence[OutcomeEstimator],
    calibrations: dict[str, Any],
) -> AdviceCalibration:
    """Fit the map of ``p_recommended_better`` against the truth on the calibration cohort.

    The proposal is each patient's historic clinician dose, the recommendation the exact reward
    argmax of the recalibrated ensemble (what the decision maker learns to approximate); a pair
    counts as "truly better" when the recommendation's true reward exceeds the proposal's.
    Patients whose two doses coincide are left out.
    """
    from engine.arclids.arte import at_dose, reward
    from engine.arclids.recommend import compare_proposal

    model = EnsembleOutcomeModel(
        protocol, list(tcp_members), list(ntcp_members), name="calibration",
        label="calibration", version="calibration",
        tcp_calibration=OutcomeCalibration.from_dict(calibrations["tcp"]),
        ntcp_calibration=OutcomeCalibration.from_dict(calibrations["ntcp"]))
    table, (true_tcp, true_ntcp) = calibration_cohort(protocol.name)
    doses = protocol.dose_grid()
    curves = model.predict_curves(table, protocol)
    tcp, ntcp = curves.mean()
    rec = doses[np.argmax(reward(tcp, ntcp, protocol.goals), axis=1)]
    prop = table["dose_adapt_gy"].to_numpy(np.float64)
    raw = compare_proposal(curves, protocol, rec, prop).p_recommended_better
    truly = (reward(at_dose(doses, true_tcp, rec), at_dose(doses, true_ntcp, rec), protocol.goals)
             > reward(at_dose(doses, true_tcp, prop), at_dose(doses, true_ntcp, prop),
                      protocol.goals))
    differ = ~np.isclose(rec, prop)
    return fit_advice_calibration(raw[differ], truly[differ])


def reference_dose_gy(protocol: Protocol, cases: pd.DataFrame) -> float:
    """The grid dose nearest the training cases' median received adaptive dose, Gy: where the
    recalibration reads each patient's level (:class:`OutcomeCalibration`)."""
    doses = protocol.dose_grid()
    median = float(np.median(cases["dose_adapt_gy"].to_numpy(np.float64)))
    return float(doses[int(np.argmin(np.abs(doses - median)))])
