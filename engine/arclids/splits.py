"""Who trains on what: splits and bootstrap resamples of a trial's cases, always by patient.

An HCC patient has one row per tumour site and one toxicity outcome: splitting or resampling rows
would put a patient's sibling rows on both sides (before, 12 of 20 held-out toxic rows had a
sibling in training and the CV AUROC exceeded the Bayes ceiling). Every helper here keeps a
patient's rows together. Used by the grid search (:mod:`engine.arclids.rtoe_train`), the bagged
members and their out-of-bag recalibration (:mod:`engine.arclids.rtoe_calibration`) and Learning
Mode.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = [
    "BOOTSTRAP_SEED",
    "N_SPLITS",
    "bootstrap_rows",
    "out_of_bag",
    "patient_groups",
    "stratified_splits",
]

N_SPLITS = 10
"""Stratified shuffle 80/20 splits per grid point (the paper's 10)."""
BOOTSTRAP_SEED = 50_000
"""Member k of a served ensemble trains on the bootstrap resample with seed BOOTSTRAP_SEED + k."""


def patient_groups(cases: pd.DataFrame) -> np.ndarray:
    """Group code per row: rows of one patient share a code (HCC has one row per tumour site)."""
    return pd.factorize(cases["patient_id"].astype(str))[0]


def stratified_splits(
    y: np.ndarray,
    n_splits: int = N_SPLITS,
    test_size: float = 0.2,
    seed: int = 0,
    groups: np.ndarray | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified shuffle splits by group: every row of a group (patient) lands on one side.

    Groups are stratified by their label (a group with any event counts as an event, so each test
    set keeps the classes' proportions among patients, and at least one group of each class stays
    in training). With ``groups`` None every row is its own group (identical to splitting rows).
    Returns (train_idx, test_idx) row-index pairs, deterministic by seed.
    """
    y = np.asarray(y).astype(int)
    groups = np.arange(len(y)) if groups is None else np.asarray(groups)
    if groups.shape != y.shape:
        raise ValueError(f"groups has shape {groups.shape}; expected {y.shape}, one per row")
    codes, first = np.unique(groups, return_index=True)
    codes = codes[np.argsort(first)]  # groups in order of first appearance
    row_code = pd.Index(codes).get_indexer(groups)
    group_y = np.zeros(len(codes), dtype=int)
    np.maximum.at(group_y, row_code, y)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_splits):
        test_groups = []
        for cls in np.unique(group_y):
            members = np.flatnonzero(group_y == cls)
            # keep at least one of each class for training
            n_test = min(round(test_size * len(members)), len(members) - 1)
            test_groups.extend(rng.permutation(members)[:n_test].tolist())
        test_idx = np.flatnonzero(np.isin(row_code, test_groups))
        train_idx = np.setdiff1d(np.arange(len(y)), test_idx)
        out.append((train_idx, test_idx))
    return out


def bootstrap_rows(cases: pd.DataFrame, seed: int) -> np.ndarray:
    """Rows of a bootstrap resample of the patients (each drawn patient brings all its rows).

    Members of a served ensemble train on these (bagging): their spread then reflects what the
    finite training trial cannot tell, and the rows a member never saw give out-of-bag
    predictions for the recalibration (:mod:`engine.arclids.calibration`).
    """
    codes = patient_groups(cases)
    n = int(codes.max()) + 1 if len(codes) else 0
    drawn = np.random.default_rng(seed).integers(0, n, size=n)
    rows_of = [np.flatnonzero(codes == g) for g in range(n)]
    return np.concatenate([rows_of[g] for g in drawn]) if n else np.arange(0)


def out_of_bag(cases: pd.DataFrame, seed: int) -> np.ndarray:
    """True for the rows :func:`bootstrap_rows` with ``seed`` did not draw, [P]."""
    oob = np.ones(len(cases), dtype=bool)
    oob[bootstrap_rows(cases, seed)] = False
    return oob
