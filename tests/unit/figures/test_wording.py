"""The wording shared by the app, the report and the command line (engine/figures/wording.py):
how an imported plan's dosimetric feature was computed."""

from __future__ import annotations

from engine.dvh import import_plan
from engine.figures.wording import plan_feature_text
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
