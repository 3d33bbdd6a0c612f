"""The model cards' numbers are the saved evaluations' numbers."""

from __future__ import annotations

import pytest

from engine import settings
from engine.arclids.cards import BLOCKS, CARDS, render_block, stale_blocks


@pytest.mark.parametrize("card", CARDS)
def test_card_tables_match_the_saved_json(card):
    path = settings.ROOT_DIR / "docs" / card
    assert "<!-- generated:" in path.read_text()
    assert stale_blocks(path) == [], (
        "rewrite the tables with `python -m engine.arclids.cards` after retraining")


def test_every_block_kind_is_used_for_both_protocols():
    text = "".join((settings.ROOT_DIR / "docs" / card).read_text() for card in CARDS)
    for kind in BLOCKS:
        for protocol in ("nsclc", "hcc"):
            assert f"<!-- generated: {kind} {protocol} -->" in text


def test_a_changed_number_is_caught(tmp_path):
    card = tmp_path / "card.md"
    table = render_block("rtoe-discrimination", "nsclc")
    card.write_text(f"<!-- generated: rtoe-discrimination nsclc -->\n{table}"
                    "<!-- end generated -->\n")
    assert stale_blocks(card) == []
    digit = next(c for c in table.splitlines()[2] if c.isdigit() and c != "0")
    tampered = table.replace(digit, "0", 1)
    card.write_text(f"<!-- generated: rtoe-discrimination nsclc -->\n{tampered}"
                    "<!-- end generated -->\n")
    assert stale_blocks(card) == ["rtoe-discrimination nsclc"]
