"""engine.core.profiles: the row-level checks every gene-expression profile upload makes."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from engine.core.profiles import (
    MAX_ID_CHARS,
    Z_MEAN_LIMIT,
    Z_VALUE_RANGE,
    case_hint,
    sample_id_problem,
    scale_problem,
    tissue_problem,
    z_score_problem,
)


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_a_z_score_is_accepted_exactly_when_finite_and_in_range(value: float) -> None:
    got, problem = z_score_problem(4, "EGFR", "column EGFR", repr(value))
    inside = np.isfinite(value) and Z_VALUE_RANGE[0] <= value <= Z_VALUE_RANGE[1]
    assert (problem is None) == inside
    if inside:
        assert got == value
    else:
        assert got is None and problem.row == 4 and problem.column == "EGFR"
        assert problem.message.startswith("row 4, column EGFR: ")
        assert "between -15 and 25" in problem.message


def test_cell_problems_say_what_is_wrong() -> None:
    def message(cell: str) -> str:
        return z_score_problem(2, "TET1", "gene TET1", cell)[1].message

    assert message("") == ("row 2, gene TET1: is empty; accepted: an expression z-score on the "
                           "training panel's scale between -15 and 25")
    assert "value 'abc' is not a number" in message("abc")
    assert "value 30 is out of range" in message("30")


def test_sample_ids_must_be_printable_short_and_unique() -> None:
    seen: dict[str, int] = {}
    assert sample_id_problem(2, "a", seen) is None and seen == {"a": 2}
    assert "is also in row 2" in sample_id_problem(3, "a", seen).message
    assert "must be 1–64" in sample_id_problem(4, "", seen).message
    assert sample_id_problem(5, "x" * (MAX_ID_CHARS + 1), seen) is not None
    assert seen == {"a": 2}


def test_tissue_empty_or_accepted_passes_else_lists_the_accepted() -> None:
    accepted = {"lung", "breast"}
    assert tissue_problem(2, "", accepted, "a tissue of the panel") is None
    assert tissue_problem(2, "brain", set(), "a tissue of the panel") is None
    msg = tissue_problem(2, "brain", accepted, "a tissue of the panel").message
    assert msg == ("row 2, tissue 'brain' is not a tissue of the panel; accepted: breast, lung "
                   "or empty")


def test_scale_problem_flags_log_scale_profiles_only() -> None:
    assert scale_problem(2, np.array([0.5, -0.3, 1.0])) is None
    msg = scale_problem(2, np.array([7.2, 8.1, 6.5])).message
    assert "average 7.27" in msg and "look like log2 expression" in msg
    assert f"between {-Z_MEAN_LIMIT:g} and {Z_MEAN_LIMIT:g}" in msg


def test_case_hint_names_the_right_symbol_after_a_prefix() -> None:
    genes = {"EGFR": "EGFR", "TET1": "TET1"}
    assert case_hint(["egfr", "mut_Tet1", "nope"], genes, ("", "mut_")) == (
        " (gene symbols are case-sensitive: 'egfr' → 'EGFR', 'mut_Tet1' → 'mut_TET1')")
    assert case_hint(["nope"], genes) == ""
