from __future__ import annotations

import numpy as np
import pandas as pd

from engine.arclids.arte import reward
from engine.arclids.outcomes import OutcomeCurves
from engine.arclids.recommend import input_hash, recommend
from engine.core.protocols import load_protocol

NSCLC = load_protocol("nsclc")


class FixedCurves:
    """An outcome model with hand-set curves, to check the recommender alone."""

    name, label, version = "fixed", "fixed test curves", "t1"

    def __init__(self, tcp: np.ndarray, ntcp: np.ndarray) -> None:
        self.tcp, self.ntcp = tcp, ntcp

    def predict_curves(self, cases, protocol):
        return OutcomeCurves(protocol.dose_grid(), self.tcp, self.ntcp)


def _cases(n: int) -> pd.DataFrame:
    row = {name: 1.0 for name in NSCLC.feature_names} | {"dose_eval_gy": 2.3}
    return pd.DataFrame([{"patient_id": f"P{i}", **row} for i in range(n)])


def test_recommends_the_reward_argmax_lowest_dose_on_ties():
    doses = NSCLC.dose_grid()
    tcp = np.clip((doses - 1.5) / 2.5, 0, 1)[None, None, :].repeat(2, axis=1)
    ntcp = np.clip((doses - 1.5) / 5.0, 0, 1)[None, None, :].repeat(2, axis=1)
    ntcp[0, 1] = 0.0  # case 2: no toxicity at all → highest dose wins
    recs = recommend(_cases(2), NSCLC, FixedCurves(tcp, ntcp))
    r = reward(tcp[0, 0], ntcp[0, 0], NSCLC.goals)
    assert recs[0].recommended_dose_gy == doses[int(np.argmax(r))]
    assert recs[1].recommended_dose_gy == 4.0
    assert recs[0].reward == list(r)
    flat = FixedCurves(np.full((1, 1, 26), 0.6), np.full((1, 1, 26), 0.1))
    assert recommend(_cases(1), NSCLC, flat)[0].recommended_dose_gy == 1.5


def test_ensemble_mean_and_sd_are_reported():
    tcp = np.stack([np.full((1, 26), 0.5), np.full((1, 26), 0.8)])
    ntcp = np.full((2, 1, 26), 0.2)
    rec = recommend(_cases(1), NSCLC, FixedCurves(tcp, ntcp))[0]
    assert np.allclose(rec.tcp, 0.65) and np.allclose(rec.tcp_sd, np.std([0.5, 0.8], ddof=1))
    assert rec.recommended_goal == "default"


def test_input_hash_changes_with_inputs_only():
    cases = _cases(2)
    a, b = (input_hash(cases.iloc[i], NSCLC) for i in range(2))
    assert a != b  # ids differ
    changed = cases.iloc[0].copy()
    changed["mtv_rd"] = 0.5
    assert input_hash(changed, NSCLC) != a
    assert input_hash(cases.iloc[0], NSCLC) == a


def test_empty_input_gives_no_recommendations():
    assert (
        recommend(_cases(0), NSCLC, FixedCurves(np.zeros((1, 0, 26)), np.zeros((1, 0, 26)))) == []
    )


class IntervalCurves(FixedCurves):
    """Hand-set curves with a stated interval (as a calibrated ensemble gives)."""

    def __init__(self, tcp, ntcp, half_width: float, level: float = 0.8) -> None:
        super().__init__(tcp, ntcp)
        self.half_width, self.level = half_width, level

    def predict_curves(self, cases, protocol):
        tcp, ntcp = self.tcp.mean(axis=0), self.ntcp.mean(axis=0)
        w = self.half_width
        return OutcomeCurves(protocol.dose_grid(), self.tcp, self.ntcp, interval_level=self.level,
                             tcp_lo=np.clip(tcp - w, 0, 1), tcp_hi=np.clip(tcp + w, 0, 1),
                             ntcp_lo=np.clip(ntcp - w, 0, 1), ntcp_hi=np.clip(ntcp + w, 0, 1))


def _rising(n: int = 1) -> tuple[np.ndarray, np.ndarray]:
    doses = NSCLC.dose_grid()
    tcp = np.clip((doses - 1.0) / 3.0, 0, 1)[None, None, :].repeat(n, axis=1)
    ntcp = np.clip((doses - 1.5) / 8.0, 0, 1)[None, None, :].repeat(n, axis=1)
    return tcp, ntcp


def test_proposal_carries_reward_intervals_at_the_stated_level():
    tcp, ntcp = _rising(2)
    cases = _cases(2).assign(proposed_dose_adapt_gy=[2.0, np.nan])
    recs = recommend(cases, NSCLC, IntervalCurves(tcp, ntcp, half_width=0.05))
    proposal = recs[0].proposal
    assert recs[1].proposal is None  # no proposal for this case
    assert proposal["dose_gy"] == 2.0
    for key, lo, hi in (("reward", "reward_lo", "reward_hi"),
                        ("recommended_reward", "recommended_reward_lo", "recommended_reward_hi")):
        assert proposal[lo] < proposal[hi]  # the curves' interval moves the reward
        assert proposal[lo] <= proposal[key] <= proposal[hi]
    assert proposal["recommended_reward"] == recs[0].recommended_reward
    # a wider interval gives a wider reward interval
    wide = recommend(cases, NSCLC, IntervalCurves(tcp, ntcp, half_width=0.15))[0].proposal
    assert wide["reward_hi"] - wide["reward_lo"] > proposal["reward_hi"] - proposal["reward_lo"]


def test_proposal_reward_interval_is_a_point_without_spread():
    tcp, ntcp = _rising()
    cases = _cases(1).assign(proposed_dose_adapt_gy=[2.0])
    proposal = recommend(cases, NSCLC, FixedCurves(tcp, ntcp))[0].proposal  # one member
    assert proposal["reward_lo"] == proposal["reward_hi"] == proposal["reward"]
    assert proposal["recommended_reward_lo"] == proposal["recommended_reward_hi"]


class CaseCurves:
    """Curves that depend on each case (through ``mtv_rd``), with an 80 % interval."""

    name, label, version = "per-case", "per-case test curves", "t1"

    def predict_curves(self, cases, protocol):
        doses, x = protocol.dose_grid(), cases["mtv_rd"].to_numpy(float)[:, None]
        tcp = np.clip((doses - 1.0 - 0.4 * x) / 3.0, 0, 1)
        ntcp = np.clip((doses - 1.5) / (9.0 - 3.0 * x), 0, 1)
        w = 0.08
        return OutcomeCurves(doses, tcp[None], ntcp[None], interval_level=0.8,
                             tcp_lo=np.clip(tcp - w, 0, 1), tcp_hi=np.clip(tcp + w, 0, 1),
                             ntcp_lo=np.clip(ntcp - w, 0, 1), ntcp_hi=np.clip(ntcp + w, 0, 1))


def test_a_case_gets_the_same_uncertainty_whichever_cases_come_with_it():
    """The dose interval, P(recommendation better) and reward intervals come from random draws
    of plausible curves: a case shown alone and the same case among others must get the same
    ones (they once depended on the case's position in the batch)."""
    cases = _cases(5).assign(mtv_rd=[-0.5, 0.0, 0.3, 0.6, 0.9],
                             proposed_dose_adapt_gy=[2.0, 3.5, 2.4, 1.8, 3.0])
    together = recommend(cases, NSCLC, CaseCurves())
    for i, rec in enumerate(together):
        alone = recommend(cases.iloc[[i]], NSCLC, CaseCurves())[0]
        assert alone.dose_interval_gy == rec.dose_interval_gy
        for key in ("p_recommended_better", "reward_lo", "reward_hi", "recommended_reward_lo",
                    "recommended_reward_hi"):
            assert alone.proposal[key] == rec.proposal[key], key
    # the draws still spread: not every case's dose interval is a point
    assert any(r.dose_interval_gy[0] < r.dose_interval_gy[1] for r in together)
