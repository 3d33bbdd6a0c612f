"""The interface of an outcome model: TCP and NTCP curves over the dose grid, per ensemble member.

Implemented by the virtual trial's reference truth (:class:`engine.arclids.cohort.ReferenceModel`)
and the learned ensembles (:class:`engine.arclids.ensemble.EnsembleOutcomeModel`); consumed by ARTE,
the recommender, the figures and the app.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from typing import Protocol as TypingProtocol

import numpy as np
import pandas as pd

from engine.core.protocols import Protocol

__all__ = ["OutcomeCurves", "OutcomeModel"]


@dataclass(frozen=True)
class OutcomeCurves:
    """Predicted TCP and NTCP over the dose grid for a batch of cases, per ensemble member."""

    doses_gy: np.ndarray
    """Candidate adaptive doses per fraction, Gy, shape [D]."""
    tcp: np.ndarray
    """Tumour control probability, shape [M, P, D] (M ensemble members, P cases)."""
    ntcp: np.ndarray
    """Normal-tissue complication probability, shape [M, P, D]."""
    interval_level: float | None = None
    """Level of the ``*_lo``/``*_hi`` interval in (0, 1) (e.g. 0.8), None when no calibrated
    interval exists (reference truth: lo = hi = the curve; uncalibrated members: their min–max)."""
    tcp_lo: np.ndarray | None = None
    """Lower end of the TCP interval, [P, D]; None: the members' minimum."""
    tcp_hi: np.ndarray | None = None
    """Upper end of the TCP interval, [P, D]; None: the members' maximum."""
    ntcp_lo: np.ndarray | None = None
    """Lower end of the NTCP interval, [P, D]; None: the members' minimum."""
    ntcp_hi: np.ndarray | None = None
    """Upper end of the NTCP interval, [P, D]; None: the members' maximum."""
    p_better_map: Any = None
    """The model's :class:`engine.arclids.calibration.AdviceCalibration` (raw share of plausible
    models → probability that a recommendation truly beats a proposal), None when it has none."""

    @property
    def n_members(self) -> int:
        return int(self.tcp.shape[0])

    def mean(self) -> tuple[np.ndarray, np.ndarray]:
        """Ensemble-mean (tcp, ntcp), each [P, D]."""
        return self.tcp.mean(axis=0), self.ntcp.mean(axis=0)

    def interval(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(tcp_lo, tcp_hi, ntcp_lo, ntcp_hi), each [P, D]: the stated interval, or the members'
        min–max where none is given (``interval_level`` None)."""
        return (
            self.tcp.min(axis=0) if self.tcp_lo is None else self.tcp_lo,
            self.tcp.max(axis=0) if self.tcp_hi is None else self.tcp_hi,
            self.ntcp.min(axis=0) if self.ntcp_lo is None else self.ntcp_lo,
            self.ntcp.max(axis=0) if self.ntcp_hi is None else self.ntcp_hi,
        )

    def sd(self) -> tuple[np.ndarray, np.ndarray]:
        """Ensemble standard deviation (tcp, ntcp), each [P, D]; zeros for a single member."""
        if self.n_members < 2:
            return np.zeros(self.tcp.shape[1:]), np.zeros(self.ntcp.shape[1:])
        return self.tcp.std(axis=0, ddof=1), self.ntcp.std(axis=0, ddof=1)

    def covariance(self) -> np.ndarray:
        """Ensemble covariance of (tcp, ntcp) per case and dose, shape [P, D, 2, 2]."""
        p, d = self.tcp.shape[1:]
        if self.n_members < 2:
            return np.zeros((p, d, 2, 2))
        stacked = np.stack([self.tcp, self.ntcp], axis=-1)  # [M, P, D, 2]
        centred = stacked - stacked.mean(axis=0, keepdims=True)
        return np.einsum("mpdi,mpdj->pdij", centred, centred) / (self.n_members - 1)


class OutcomeModel(TypingProtocol):
    """What the recommender needs from an outcome model (reference truth or learned ensemble)."""

    name: str
    """Short identifier, e.g. ``"reference"``."""
    label: str
    """What users see, e.g. ``"reference model (virtual trial ground truth)"``."""
    version: str
    """Version string recorded with every recommendation."""

    def predict_curves(self, cases: pd.DataFrame, protocol: Protocol) -> OutcomeCurves:
        """TCP and NTCP for every case and every dose of ``protocol.dose_grid()``."""
        ...
