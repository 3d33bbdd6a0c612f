"""Splits that cannot leak: no cell line on both sides of any split, for any seed and sizes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.drug.data import MISSING
from engine.drug.splits import (
    held_out_tissues,
    leave_cell_line_out,
    leave_tissue_out,
    line_folds,
    make_splits,
    tissues,
)


@st.composite
def panels(draw):
    n_folds = draw(st.integers(2, 7))
    n = draw(st.integers(n_folds, 80))
    lineages = draw(st.lists(st.sampled_from(["lung", "liver", "breast", "blood", "lymphocyte",
                                              "skin"]), min_size=n, max_size=n))
    n_drugs = draw(st.integers(0, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    y = rng.choice([MISSING, 0, 1], size=(n, n_drugs)).astype(np.int8)
    return lineages, y, n_folds, draw(st.integers(0, 2**31 - 1))


@given(panels())
def test_leave_cell_line_out_never_puts_a_line_on_both_sides(panel):
    lineages, y, n_folds, seed = panel
    splits = leave_cell_line_out(lineages, y, n_folds, seed)
    n = len(lineages)
    assert len(splits) == n_folds
    tested = np.concatenate([s.test for s in splits])
    assert sorted(tested.tolist()) == list(range(n))  # every line tested exactly once
    for s in splits:
        assert not set(s.train.tolist()) & set(s.test.tolist())
        assert len(s.train) + len(s.test) == n
        # restricted to any subset (a drug's labelled lines) the sides stay disjoint
        rows = np.flatnonzero(y[:, 0] != MISSING) if y.shape[1] else np.arange(n)
        tr, te = s.restrict(rows)
        assert not set(rows[tr].tolist()) & set(rows[te].tolist())
        assert len(tr) + len(te) == len(rows)


@given(panels())
def test_folds_are_balanced_and_spread_every_lineage(panel):
    lineages, y, n_folds, seed = panel
    folds = line_folds(lineages, y, n_folds, seed)
    sizes = np.bincount(folds, minlength=n_folds)
    assert sizes.max() - sizes.min() <= 1
    lineage = np.array(lineages)
    for name in set(lineages):
        counts = np.bincount(folds[lineage == name], minlength=n_folds)
        assert counts.max() - counts.min() <= 2
    np.testing.assert_array_equal(folds, line_folds(lineages, y, n_folds, seed))  # seeded


@given(panels(), st.integers(1, 30))
def test_leave_tissue_out_holds_each_tissue_out_whole(panel, min_lines):
    lineages, _, _, _ = panel
    held = held_out_tissues(lineages, min_lines)
    tissue = tissues(lineages)
    assert [t for t in ("lung", "liver") if t in set(tissue)] == held[:len(
        [t for t in ("lung", "liver") if t in set(tissue)])]
    for s in leave_tissue_out(lineages, held):
        assert set(tissue[s.test]) == {s.name}
        assert s.name not in set(tissue[s.train])
        assert len(s.train) + len(s.test) == len(lineages)


def test_blood_and_lymphoid_lines_are_one_tissue():
    lineages = ["blood", "lymphocyte", "plasma_cell", "lung", "liver"]
    assert tissues(lineages).tolist() == ["haematopoietic_lymphoid"] * 3 + ["lung", "liver"]
    split = leave_tissue_out(lineages, ["haematopoietic_lymphoid"])[0]
    assert split.test.tolist() == [0, 1, 2] and split.train.tolist() == [3, 4]


def test_shipped_tissue_splits():
    from engine.drug.data import load_drug_data

    d = load_drug_data()
    assert held_out_tissues(d.lineages, 40) == ["lung", "liver", "haematopoietic_lymphoid",
                                                "breast", "colorectal"]
    with pytest.raises(ValueError, match="setting"):
        make_splits("random", d.lineages, d.y)
    with pytest.raises(ValueError, match="no line"):
        leave_tissue_out(d.lineages, ["moon"])
