"""engine.core.tabular: formula neutralisation for written CSVs and its inverse on reading."""

from __future__ import annotations

import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from engine.core.tabular import (
    FORMULA_START,
    formula_safe,
    neutralise_formula,
    restore_formula,
)


@given(st.text(max_size=30))
def test_neutralised_text_never_starts_a_formula_and_restores(text: str) -> None:
    safe = neutralise_formula(text)
    assert safe[:1] not in FORMULA_START
    # Text that itself begins with the escape ("'=…") reads back without it, as a spreadsheet
    # shows it; everything else round-trips exactly.
    if not (text[:1] == "'" and text[1:2] in FORMULA_START):
        assert restore_formula(safe) == text


def test_formula_safe_touches_text_columns_only() -> None:
    frame = pd.DataFrame({"id": ["=A1", "P-1"], "x": [-1.5, 2.0], "note": ["@me", None]})
    out = formula_safe(frame)
    assert list(out["id"]) == ["'=A1", "P-1"]
    assert list(out["x"]) == [-1.5, 2.0]
    assert out["note"].iloc[0] == "'@me" and pd.isna(out["note"].iloc[1])
    assert list(frame["id"]) == ["=A1", "P-1"]  # the input is not changed
