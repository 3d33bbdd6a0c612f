"""The model card's Res-VAE interpretation blocks equal what the saved JSON gives."""

from __future__ import annotations

import pytest

from engine import settings
from engine.drug.resvae_card import BLOCKS, CARD, render_block, stale_blocks
from engine.platform import registry

CARD_PATH = settings.ROOT_DIR / "docs" / CARD


def _require_saved() -> None:
    try:
        render_block("drug-resvae-gene-check")
    except registry.ArtifactError as err:
        pytest.fail(f"models/drug/interpretation_resvae.json must be shipped: {err}")


def test_resvae_blocks_match_the_saved_json():
    _require_saved()
    text = CARD_PATH.read_text()
    for kind in BLOCKS:
        assert f"<!-- resvae: {kind} all -->" in text, kind
    assert stale_blocks(CARD_PATH) == [], (
        "rewrite the resvae blocks with `python -m engine.drug.resvae_card`")


def test_a_changed_number_is_caught(tmp_path):
    _require_saved()
    body = render_block("drug-resvae-stability")
    card = tmp_path / "card.md"
    card.write_text(f"<!-- resvae: drug-resvae-stability all -->\n{body}<!-- end resvae -->\n")
    assert stale_blocks(card) == []
    row = body.splitlines()[-1]
    cell = row.split("|")[2]
    digit = next(c for c in cell if c.isdigit() and c != "0")
    card.write_text("<!-- resvae: drug-resvae-stability all -->\n"
                    + body.replace(row, row.replace(cell, cell.replace(digit, "0", 1)))
                    + "<!-- end resvae -->\n")
    assert stale_blocks(card) == ["drug-resvae-stability all"]
    with pytest.raises(ValueError, match="unknown resvae block"):
        render_block("drug-served-choice", saved={})
