"""Splits of the cell lines that cannot leak: a line is never on both sides of a split.

Two settings, both defined on **all** lines of the data set once, then restricted per drug to
the lines with a label for it:

* ``leave_cell_line_out`` — one global assignment of the lines to ``n_folds`` folds
  (:func:`line_folds`), stratified by lineage and by the line's overall resistance rate. Because
  the assignment is shared by every drug, a fold's training lines are the same for every drug:
  the Res-VAE's unsupervised pre-training runs once per fold on those lines (never a test line)
  and serves every drug's head.
* ``leave_tissue_out`` — each tissue of :func:`held_out_tissues` (lung, liver and every tissue
  with at least ``min_lines`` lines) held out whole, all other lines training. Tissues are
  DepMap lineages, except that blood, lymphocyte and plasma-cell lines form one
  haematopoietic-and-lymphoid tissue (:data:`TISSUE_GROUPS`): holding out leukaemia lines while
  training on lymphoma lines would not test a new tissue.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from engine.core.config import check_range
from engine.drug.data import MISSING, RESISTANT

__all__ = [
    "ALWAYS_HELD_OUT",
    "SETTINGS",
    "TISSUE_GROUPS",
    "Split",
    "held_out_tissues",
    "leave_cell_line_out",
    "leave_tissue_out",
    "line_folds",
    "make_splits",
    "tissues",
]

SETTINGS: tuple[str, ...] = ("leave_cell_line_out", "leave_tissue_out")
"""Evaluation settings."""

TISSUE_GROUPS: dict[str, str] = {
    "blood": "haematopoietic_lymphoid",
    "lymphocyte": "haematopoietic_lymphoid",
    "plasma_cell": "haematopoietic_lymphoid",
}
"""DepMap lineages pooled into one tissue for leave-tissue-out; other lineages are tissues."""

ALWAYS_HELD_OUT: tuple[str, ...] = ("lung", "liver")
"""Tissues held out whatever their size (the project treats lung and liver cancer)."""


@dataclass(frozen=True)
class Split:
    """One train/test partition of the lines (indices into the data set's lines)."""

    setting: str
    """One of :data:`SETTINGS`."""
    name: str
    """``"fold_<k>"`` or the held-out tissue."""
    train: np.ndarray
    """Sorted int64 indices of the training lines."""
    test: np.ndarray
    """Sorted int64 indices of the test lines (disjoint from :attr:`train`)."""

    def restrict(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The split on a subset of lines (e.g. a drug's labelled lines).

        Returns:
            ``(train_pos, test_pos)``: positions into ``rows`` (not line indices) of the lines in
            :attr:`train` and in :attr:`test`.
        """
        rows = np.asarray(rows)
        return (np.flatnonzero(np.isin(rows, self.train)),
                np.flatnonzero(np.isin(rows, self.test)))


def tissues(lineages: Sequence[str]) -> np.ndarray:
    """Tissue of each line: its lineage, with :data:`TISSUE_GROUPS` pooled."""
    return np.array([TISSUE_GROUPS.get(t, t) for t in lineages], dtype=object)


def line_folds(lineages: Sequence[str], y: np.ndarray, n_folds: int = 5,
               seed: int = 0) -> np.ndarray:
    """One fold id per line, stratified by lineage and by the line's resistance rate.

    Lines are ordered by lineage (in a seeded random order of lineages) and, within a lineage,
    by their resistance rate over the drugs they were tested with (random tie-break; lines
    without labels last); consecutive blocks of ``n_folds`` lines in that order are dealt to
    the folds in a seeded random permutation. So fold sizes differ by at most one line, every
    lineage's lines spread over the folds (counts per fold differ by at most two), and so do
    resistant-prone and sensitive-prone lines within a lineage.

    Args:
        lineages: lineage (or tissue) of each line, ``[n_lines]``.
        y: labels ``[n_lines, n_drugs]`` (1, 0 or :data:`MISSING`); may have no columns.
        n_folds: number of folds, ≥ 2.
        seed: seed of the orders and permutations.

    Returns:
        int64 ``[n_lines]`` fold ids in ``0 … n_folds − 1``.
    """
    check_range("n_folds", n_folds, 2, integer=True)
    lineage = np.asarray(lineages, dtype=object)
    y = np.asarray(y).reshape(len(lineage), -1)
    if len(lineage) < n_folds:
        raise ValueError(f"{len(lineage)} lines cannot fill {n_folds} folds")
    rng = np.random.default_rng(seed)
    labelled = (y != MISSING).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(labelled > 0, (y == RESISTANT).sum(1) / np.maximum(labelled, 1), 2.0)
    names = sorted(set(lineage))
    order_of = {name: k for k, name in enumerate(rng.permutation(len(names)))}
    tie = rng.random(len(lineage))
    key = np.array([order_of[names.index(t)] for t in lineage])
    order = np.lexsort((tie, rate, key))  # lineage first, then rate, then random
    folds = np.empty(len(lineage), dtype=np.int64)
    for start in range(0, len(order), n_folds):
        block = order[start:start + n_folds]
        folds[block] = rng.permutation(n_folds)[:len(block)]
    return folds


def leave_cell_line_out(lineages: Sequence[str], y: np.ndarray, n_folds: int = 5,
                        seed: int = 0) -> list[Split]:
    """The ``n_folds`` splits of :func:`line_folds` (fold k is the test set of split k)."""
    folds = line_folds(lineages, y, n_folds, seed)
    return [Split("leave_cell_line_out", f"fold_{k}", np.flatnonzero(folds != k),
                  np.flatnonzero(folds == k)) for k in range(n_folds)]


def held_out_tissues(lineages: Sequence[str], min_lines: int = 40) -> list[str]:
    """Tissues held out by leave-tissue-out: :data:`ALWAYS_HELD_OUT` present in the data, then
    every other tissue with at least ``min_lines`` lines, largest first."""
    check_range("min_lines", min_lines, 1, integer=True)
    names, counts = np.unique(tissues(lineages).astype(str), return_counts=True)
    size = dict(zip(names, counts, strict=True))
    out = [t for t in ALWAYS_HELD_OUT if t in size]
    out += [t for t in sorted(size, key=lambda t: (-size[t], t))
            if size[t] >= min_lines and t not in out]
    return out


def leave_tissue_out(lineages: Sequence[str], held_out: Sequence[str]) -> list[Split]:
    """One split per tissue of ``held_out``: its lines are the test set, all others train."""
    tissue = tissues(lineages)
    known = set(tissue)
    splits = []
    for name in held_out:
        if name not in known:
            raise ValueError(f"tissue {name!r} has no line; accepted: "
                             f"{', '.join(sorted(known))}")
        test = np.flatnonzero(tissue == name)
        splits.append(Split("leave_tissue_out", name, np.flatnonzero(tissue != name), test))
    return splits


def make_splits(setting: str, lineages: Sequence[str], y: np.ndarray, *, n_folds: int = 5,
                seed: int = 0, min_tissue_lines: int = 40) -> list[Split]:
    """The splits of one setting of :data:`SETTINGS` (see the module docstring)."""
    if setting == "leave_cell_line_out":
        return leave_cell_line_out(lineages, y, n_folds, seed)
    if setting == "leave_tissue_out":
        return leave_tissue_out(lineages, held_out_tissues(lineages, min_tissue_lines))
    raise ValueError(f"setting {setting!r}; accepted {', '.join(SETTINGS)}")
