"""The wording shared by the app, the report and the command line (engine/figures/wording.py):
intervals with their level, the predicted reward, the advice, the served dose, and how an imported
plan's dosimetric feature was computed."""

from __future__ import annotations

from engine.dvh import import_plan
from engine.figures.wording import (
    advice_text,
    dose_interval_text,
    interval_label,
    pct_text,
    plan_feature_text,
    recommendation_text,
    reward_text,
)
from tests.unit.dvh.helpers import liver_files, named, thorax_files


def test_plan_feature_text_says_how_each_feature_was_computed():
    result = import_plan("nsclc", **named(thorax_files()))
    texts = [plan_feature_text(f, result) for f in result.feature_details]
    assert texts == ["gEUD (a = -10) of GTV × 20/30 fractions",
                     "mean dose of Lung_L+Lung_R-GTV × 20/30 fractions"]
    same = import_plan("nsclc", **named(thorax_files()), plan_fractions=20)
    assert plan_feature_text(same.feature_details[0], same) == "gEUD (a = -10) of GTV"


def test_plan_feature_text_of_a_volume():
    result = import_plan("hcc", **named(liver_files()))
    texts = {f.feature: plan_feature_text(f, result) for f in result.feature_details}
    assert texts["tumour_volume_cc"] == "volume of GTV"
    assert texts["gtv_geud_gy"].startswith("gEUD (a = -20) of GTV")


def test_text_helpers_state_levels_and_meanings(recs, ensemble_recs):
    from dataclasses import replace

    assert interval_label(recs[0]) is None  # one model: no spread to state
    assert interval_label(ensemble_recs[0]) == "80 % interval"
    assert pct_text(0.7123, [0.6, 0.8], "80 % interval") == "71.2 % (80 % interval 60.0–80.0 %)"
    assert pct_text(0.7123, None, None) == "71.2 %"
    assert reward_text(2.6, [1.61, 2.7], "80 % interval") == "2.60 (80 % interval 1.61–2.70)"
    assert dose_interval_text(recs[0]) is None
    rec = replace(ensemble_recs[0], dose_interval_gy=[2.6333, 3.4])
    assert dose_interval_text(rec) == (
        "2.63–3.4 Gy/fx (80 % interval, from the outcome models' uncertainty)")
    assert advice_text(rec) is None
    prop = {"dose_gy": 2.8, "p_recommended_better": 0.62, "threshold": 0.8, "advice": "keep",
            "advised_dose_gy": 2.8}
    keep = advice_text(replace(rec, proposal=prop, recommended_dose_gy=3.1))
    assert keep.startswith("keep your proposal (2.8 Gy/fx)") and "62 %" in keep
    change = advice_text(replace(rec, recommended_dose_gy=3.1, proposal=prop | {
        "advice": "change", "advised_dose_gy": 3.1, "p_recommended_better": 0.91}))
    assert change.startswith("change to the recommendation (3.1 Gy/fx)") and "91 %" in change
    same = advice_text(replace(rec, recommended_dose_gy=2.8, proposal=prop | {
        "p_recommended_better": 0.0}))
    assert same == "keep your proposal (2.8 Gy/fx): it is the recommended dose"


def test_recommendation_text_is_the_served_dose_without_the_sem(recs):
    """The decision maker's dose to two decimals (its members' mean, or the grid dose it serves);
    the SEM and the q-value are not attached (they are labelled where they are shown)."""
    from dataclasses import replace

    base = replace(recs[0], recommender="odm", recommended_dose_gy=3.2,
                   recommended_dose_sem_gy=0.05, q_value=2.71, member_mean_dose_gy=3.12)
    paper = replace(base, odm_serving_rule="mean-dose", recommended_dose_gy=3.12)
    assert recommendation_text(paper) == "3.12 Gy/fx"
    assert recommendation_text(replace(base, odm_serving_rule="mean-q")) == "3.20 Gy/fx"
    assert recommendation_text(recs[0]) == f"{recs[0].recommended_dose_gy:g} Gy/fx"
