"""The model card's served-model section holds the saved served.json and interpretation.json
numbers (rewrite with ``python -m engine.drug.serving_card`` after ``artds train drug``)."""

from __future__ import annotations

import pytest

from engine import settings
from engine.drug.serving_card import BLOCKS, CARD, render_block, stale_blocks
from engine.platform import registry

CARD_PATH = settings.ROOT_DIR / "docs" / CARD


def _require_served() -> None:
    try:
        render_block("drug-served-choice")
    except registry.ArtifactError as err:
        pytest.fail(f"the served drug models must be shipped in models/drug: {err}")


def test_served_blocks_match_the_saved_json():
    _require_served()
    text = CARD_PATH.read_text()
    for kind in BLOCKS:
        assert f"<!-- served: {kind} all -->" in text, kind
    assert stale_blocks(CARD_PATH) == [], (
        "rewrite the served blocks with `python -m engine.drug.serving_card`")


def test_a_changed_number_is_caught(tmp_path):
    _require_served()
    body = render_block("drug-served-calibration")
    card = tmp_path / "card.md"
    card.write_text(f"<!-- served: drug-served-calibration all -->\n{body}<!-- end served -->\n")
    assert stale_blocks(card) == []
    row = body.splitlines()[3]  # the cross-fitted row
    cell = row.split("|")[2]
    digit = next(c for c in cell if c.isdigit() and c != "0")
    card.write_text("<!-- served: drug-served-calibration all -->\n"
                    + body.replace(row, row.replace(cell, cell.replace(digit, "0", 1)))
                    + "<!-- end served -->\n")
    assert stale_blocks(card) == ["drug-served-calibration all"]


def test_the_prose_of_the_served_section_holds():
    """The card's words about the served models agree with the saved numbers."""
    _require_served()
    from engine.drug.interpret import load_interpretation
    from engine.drug.serving import load_served_drug

    served = load_served_drug().payload
    choice, summary = served["choice"], served["summary"]
    # "The naive baseline scores higher on average but is not a model of the profile"
    assert choice["naive_mean_auroc"] > choice["mean_auroc"][served["model"]]
    assert choice["model"] == choice["best_learned"] and choice["note"] == ""
    # "two fold models share far more top features than random sets would, yet most of each
    # top-20 list changes with the fold"
    interp, _ = load_interpretation()
    stab = interp["stability_summary"]
    random = next(v["stability"]["random_expectation"] for v in interp["drugs"].values())
    assert stab["mean_pairwise_jaccard_mean"] > 5 * random
    assert stab["mean_pairwise_jaccard_max"] < 1 / 3  # fewer than half of 20 shared
    # the served forests need calibrating: raw ECE above the cross-fitted one
    assert summary["ece_raw_mean"] > summary["ece_cross_fitted_mean"]
    assert interp["paper_gene_check"]["in_panel"] is False
