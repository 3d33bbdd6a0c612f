"""The drug model card's numbers are the saved evaluation's numbers."""

from __future__ import annotations

from engine import settings
from engine.drug.cards import BLOCKS, CARD, render_block, stale_blocks
from engine.drug.evaluate import load_evaluation

CARD_PATH = settings.ROOT_DIR / "docs" / CARD


def test_card_tables_match_the_saved_json():
    assert "<!-- generated:" in CARD_PATH.read_text()
    assert stale_blocks(CARD_PATH) == [], (
        "rewrite the tables with `python -m engine.drug.cards` after a new evaluation")


def test_every_block_kind_is_used():
    text = CARD_PATH.read_text()
    for kind in BLOCKS:
        assert f"<!-- generated: {kind} " in text, kind


def test_a_changed_number_is_caught(tmp_path):
    result, _ = load_evaluation()
    table = render_block("drug-summary", "leave_cell_line_out", result=result)
    card = tmp_path / "card.md"
    card.write_text(f"<!-- generated: drug-summary leave_cell_line_out -->\n{table}"
                    "<!-- end generated -->\n")
    assert stale_blocks(card) == []
    row = table.splitlines()[2]
    digit = next(c for c in row.split("|")[2] if c.isdigit() and c != "0")
    tampered = table.replace(row, row.replace(digit, "0", 1))
    card.write_text(f"<!-- generated: drug-summary leave_cell_line_out -->\n{tampered}"
                    "<!-- end generated -->\n")
    assert stale_blocks(card) == ["drug-summary leave_cell_line_out"]


def test_the_saved_evaluation_is_leak_free_and_complete():
    result, meta = load_evaluation()
    assert meta.data_hash == result["data"]["data_hash"]
    assert set(result["settings"]) == {"leave_cell_line_out", "leave_tissue_out"}
    assert "training lines only" in result["resvae"]["pretraining"]
    for info in result["settings"].values():
        for model, summary in info["summary"].items():
            assert summary["auroc"]["n"] == len(result["data"]["evaluated"]), model


def test_the_cards_prose_matches_the_saved_ranking():
    """The card's sentences under "What the saved evaluation says" read these orderings."""
    result, _ = load_evaluation()
    auroc = {s: {m: v["auroc"]["mean"] for m, v in info["summary"].items()}
             for s, info in result["settings"].items()}
    profile_only = [m for m, v in result["models"].items()
                    if not v["uses_other_drug_labels"] and m != "drug_rate"]
    for setting in ("leave_cell_line_out", "leave_tissue_out"):
        assert all(auroc[setting]["naive_mean_effects"] > auroc[setting][m]
                   for m in profile_only)
    lclo = auroc["leave_cell_line_out"]
    assert lclo["random_forest"] > lclo["xgboost"] > lclo["resvae_unfrozen"] > lclo[
        "resvae_frozen"]
    assert max(auroc["leave_tissue_out"][m] for m in profile_only) < 0.6
    per_drug = result["settings"]["leave_cell_line_out"]["per_drug"]
    for drug in ("Afatinib", "Gefitinib"):
        assert per_drug["random_forest"][drug]["auroc"] > per_drug["naive_mean_effects"][drug][
            "auroc"]
