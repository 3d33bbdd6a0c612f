"""The fresh-cohort track record shown beside a recommendation
(engine/arclids/odm_eval.py :func:`track_record`, engine/figures/wording.py
:func:`track_record_text`)."""

from __future__ import annotations

import pytest

from engine.arclids.odm_eval import odm_summary, track_record
from engine.core.protocols import PROTOCOL_NAMES
from engine.figures.wording import track_record_text


def _summary(served: float, advised: float, historic: float, constant: float,
             argmax: float = 0.5, stale: bool = False) -> dict:
    def row(loss: float) -> dict:
        return {"true_reward_loss": loss, "true_reward_mean": 2.0 - loss, "dose_abs_error_gy": 0.5}

    regret = {"served": row(served), "historic": row(historic),
              "best_constant_dose": row(constant), "exact_argmax": row(argmax),
              "advised": row(advised) | {"threshold": 0.8, "change_share": 0.1},
              "best_constant_dose_gy": 3.5, "n_cases": 1000}
    return {"architectures": {"glogd": {
        "rtoe_version": "rtoe-1", "odm_version": "odm-1", "stale": stale,
        "regret": {k: row(9.0) for k in ("served", "historic")},  # the training trial's: unused
        "fresh_cohort": {"n_cases": 1000, "regret": regret}}}}


def test_the_record_is_the_fresh_cohorts_rows_of_the_recommending_policy():
    summary = _summary(served=0.30, advised=0.25, historic=0.20, constant=0.40, argmax=0.35)
    odm = track_record(summary, "rtoe-1", "odm", "odm-1")
    assert odm is not None and odm.n_cases == 1000
    assert (odm.recommendation_loss, odm.advised_loss, odm.clinicians_loss,
            odm.constant_loss, odm.constant_dose_gy) == (0.30, 0.25, 0.20, 0.40, 3.5)
    assert odm.advice_threshold == 0.8
    assert [k for k, _ in odm.ranking()] == ["clinicians", "advice", "recommendation", "constant"]
    argmax = track_record(summary, "rtoe-1", "exact-argmax")
    # the exact argmax has its own row; the advised row was measured with the decision maker
    assert argmax.recommendation_loss == 0.35 and argmax.advised_loss is None


@pytest.mark.parametrize("why", ["other model", "other decision maker", "stale", "none saved"])
def test_no_record_for_what_was_not_measured(why):
    summary = _summary(0.3, 0.25, 0.2, 0.4, stale=why == "stale")
    args = {"other model": ("rtoe-2", "odm", "odm-1"),
            "other decision maker": ("rtoe-1", "odm", "odm-2")}.get(why, ("rtoe-1", "odm", "odm-1"))
    assert track_record(None if why == "none saved" else summary, *args) is None
    measured, verdict = track_record_text(None)
    assert "is not known" in measured and verdict == ""


def test_the_text_names_every_policy_its_loss_and_which_did_best():
    record = track_record(_summary(0.30, 0.25, 0.20, 0.40), "rtoe-1", "odm", "odm-1")
    measured, verdict = track_record_text(record)
    assert "1,000 simulated patients never trained on" in measured
    assert "lower is better" in measured
    for text in ("the recommendation 0.30", "≥ 80 %) 0.25", "clinicians 0.20",
                 "one dose for everyone (3.5 Gy/fx) 0.40"):
        assert text in measured
    assert verdict == ("The virtual trial's clinicians did best there; the recommendation "
                       "lost 0.10 more.")
    best = track_record(_summary(0.10, 0.25, 0.20, 0.40), "rtoe-1", "odm", "odm-1")
    assert track_record_text(best)[1] == "Following the recommendation did best there."


@pytest.mark.parametrize("name", PROTOCOL_NAMES)
def test_every_shipped_recommender_has_its_record(name):
    """The shipped evaluations measured the shipped models: the app shows a record for each."""
    summary = odm_summary(name)
    for arch in summary["architectures"].values():
        record = track_record(summary, arch["rtoe_version"], "odm", arch["odm_version"])
        assert record is not None and record.n_cases >= 1000
        fresh = arch["fresh_cohort"]["regret"]
        assert record.clinicians_loss == fresh["historic"]["true_reward_loss"]
