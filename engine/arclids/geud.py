"""Adapted and received gEUD: the gEUD transition of ARTE applied to a case table.

Every place that needs a structure's end-of-treatment gEUD — ARTE's candidate doses, the outcome
estimators' training labels at the dose received, the virtual trial's ground truth — calls these
functions, so the three can never drift apart.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from engine.core.protocols import Protocol, Structure
from engine.core.radiobiology import geud_transition, normalise_geud

__all__ = ["adapted_geud", "adapted_geud_norm", "received_geud_norm"]


def adapted_geud(
    cases: pd.DataFrame, protocol: Protocol, structure: Structure, doses_gy: np.ndarray
) -> np.ndarray:
    """gEUD of ``structure`` at the end of treatment for every case and candidate dose, Gy.

    Args:
        cases: one row per case with the structure's gEUD feature and ``dose_eval_gy``.
        protocol: supplies the fraction numbers.
        structure: ``protocol.target`` or ``protocol.oar`` (α/β, D_T).
        doses_gy: candidate adaptive doses per fraction, Gy, shape [D].

    Returns:
        Array [P, D].
    """
    g_eval = cases[structure.geud_feature].to_numpy(dtype=np.float64)[:, None]
    d_eval = cases["dose_eval_gy"].to_numpy(dtype=np.float64)[:, None]
    return geud_transition(
        g_eval,
        protocol.n_eval_fractions,
        protocol.n_adapt_fractions,
        d_eval,
        np.asarray(doses_gy, dtype=np.float64)[None, :],
        structure.alpha_beta_gy,
        structure.threshold_gy,
    )


def adapted_geud_norm(
    cases: pd.DataFrame, protocol: Protocol, structure: Structure, doses_gy: np.ndarray
) -> np.ndarray:
    """Min–max normalised adapted gEUD ĝ with the protocol's fixed range, shape [P, D]."""
    return normalise_geud(
        adapted_geud(cases, protocol, structure, doses_gy),
        structure.geud_norm_min_gy,
        structure.geud_norm_max_gy,
    )


def received_geud_norm(cases: pd.DataFrame, protocol: Protocol, structure: Structure) -> np.ndarray:
    """Normalised adapted gEUD ĝ of ``structure`` at each case's received ``dose_adapt_gy``, [P]."""
    if "dose_adapt_gy" not in cases.columns:
        raise KeyError("cases lack dose_adapt_gy (the adaptive dose per fraction received, Gy)")
    d_adapt = cases["dose_adapt_gy"].to_numpy(dtype=np.float64)
    if not np.all(np.isfinite(d_adapt)):
        raise ValueError("dose_adapt_gy has missing values; labels need the dose received")
    g_adapt = geud_transition(
        cases[structure.geud_feature].to_numpy(dtype=np.float64),
        protocol.n_eval_fractions,
        protocol.n_adapt_fractions,
        cases["dose_eval_gy"].to_numpy(dtype=np.float64),
        d_adapt,
        structure.alpha_beta_gy,
        structure.threshold_gy,
    )
    return normalise_geud(g_adapt, structure.geud_norm_min_gy, structure.geud_norm_max_gy)
