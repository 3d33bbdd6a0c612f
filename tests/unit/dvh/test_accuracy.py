"""docs/plan-import.md shows the saved accuracy measurement and the protocols' plan sections;
a case measured again gives the saved numbers (engine/dvh/accuracy.py)."""

from __future__ import annotations

import json

import pytest

from engine.dvh.accuracy import ACCURACY_JSON, CASES, DOC, block, generated_blocks, measure_case


@pytest.fixture(scope="module")
def saved() -> dict:
    return json.loads(ACCURACY_JSON.read_text(encoding="utf-8"))


def test_the_page_shows_the_saved_json_and_the_protocols(saved):
    text = DOC.read_text(encoding="utf-8")
    for key, body in generated_blocks(saved).items():
        assert block(text, key) == body, (
            f"docs/plan-import.md block {key!r} is stale: run `python -m engine.dvh.accuracy`")


def test_every_case_is_saved(saved):
    assert [(c["phantom"], c["grid_mm"], c["slice_mm"], c["supersample"])
            for c in saved["cases"]] == list(CASES)


@pytest.mark.parametrize("case", [("sphere_r20", 2.5, 2.5, 4), ("box_gradient", 4.0, 2.5, 1)])
def test_a_case_measured_again_gives_the_saved_numbers(saved, case):
    row = next(c for c in saved["cases"] if (c["phantom"], c["grid_mm"], c["slice_mm"],
                                             c["supersample"]) == case)
    assert measure_case(*case) == row


def test_the_documented_accuracy_holds(saved):
    # What docs/plan-import.md states about supersampling (k = 4, the default).
    for c in saved["cases"]:
        if c["supersample"] == 4:
            assert abs(c["volume_vs_contoured_percent"]) < 1.0
            assert abs(c["mean_error_gy"]) < 0.1
        if "geud_max_error_gy" in c:
            assert c["geud_max_error_gy"] < 1e-6


def test_the_numbers_quoted_in_the_text_are_the_saved_ones(saved):
    text = DOC.read_text(encoding="utf-8")

    def case(phantom, grid, k):
        return next(c for c in saved["cases"] if (c["phantom"], c["grid_mm"], c["supersample"])
                    == (phantom, grid, k))

    small = [case("sphere_r7", 4.0, k)["volume_error_percent"] for k in (1, 4)]
    box = [case("box_gradient", 4.0, k)["mean_error_gy"] for k in (1, 4)]
    assert f"off by\n{small[0]:+.2f} % without it and {small[1]:+.2f} % with it" in text
    assert f"falls from {box[0]:+.3f} Gy to {box[1]:+.3f} Gy" in text
