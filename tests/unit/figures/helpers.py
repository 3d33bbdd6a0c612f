"""Shared by the figure tests: hand-made outcome curves (:class:`CurveModel`), a few cases
of a protocol, and small readers of a plotly figure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from engine.arclids.outcomes import OutcomeCurves
from engine.arclids.recommend import Recommendation, recommend
from engine.core.protocols import Protocol

__all__ = ["CurveModel", "make_cases", "traces", "with_proposal"]


class CurveModel:
    """Logistic TCP/NTCP curves over the dose grid; ``members`` > 1 gives an ensemble."""

    name = "curves"
    label = "hand-made curves"
    version = "test-1"

    def __init__(self, members: int = 1, tcp_mid: float = 0.35, ntcp_mid: float = 0.8,
                 spread: float = 0.03, level: float | None = None) -> None:
        self.members = members
        self.tcp_mid = tcp_mid
        self.ntcp_mid = ntcp_mid
        self.spread = spread
        self.level = level
        """With a level the curves state an interval (mean ± 1.3 sd + 0.02, clipped to 0–1)
        at that level, as a calibrated ensemble does; without, the members' min–max is used."""

    def predict_curves(self, cases: pd.DataFrame, protocol: Protocol) -> OutcomeCurves:
        doses = protocol.dose_grid()
        g = np.linspace(0.0, 1.0, len(doses))[None, None, :]  # [1, 1, D]
        shift = np.arange(len(cases))[None, :, None] * 0.08  # [1, P, 1]
        k = np.arange(self.members)[:, None, None] - (self.members - 1) / 2  # [M, 1, 1]
        # TCP and NTCP members move partly independently, so the covariance is full rank.
        tcp = 1.0 / (1.0 + np.exp(-(g - self.tcp_mid - shift + self.spread * k) / 0.15))
        ntcp = 1.0 / (1.0 + np.exp(-(g - self.ntcp_mid + shift / 2
                                      + self.spread * (k % 2 - 0.4 * k)) / 0.12))
        if self.level is None:
            return OutcomeCurves(doses_gy=doses, tcp=tcp, ntcp=ntcp)  # [M, P, D] each
        ends = {}
        for name, v in (("tcp", tcp), ("ntcp", ntcp)):
            width = 1.3 * v.std(axis=0, ddof=1) + 0.02
            ends[f"{name}_lo"] = np.clip(v.mean(axis=0) - width, 0.0, 1.0)
            ends[f"{name}_hi"] = np.clip(v.mean(axis=0) + width, 0.0, 1.0)
        return OutcomeCurves(doses_gy=doses, tcp=tcp, ntcp=ntcp, interval_level=self.level,
                             **ends)


def make_cases(protocol: Protocol, ids: list[str]) -> pd.DataFrame:
    rows = []
    for i, pid in enumerate(ids):
        row: dict[str, object] = {"patient_id": pid}
        if "site_id" in protocol.id_columns:
            row["site_id"] = 1
        for feat in protocol.features:
            mid = (feat.min + feat.max) / 2
            row[feat.name] = round(mid) + i if feat.integer else mid * (1 + 0.1 * i)
        row["dose_eval_gy"] = protocol.dose_eval_min_gy + 0.2
        rows.append(row)
    return pd.DataFrame(rows)


def traces(fig: go.Figure, kind: str) -> list:
    return [t for t in fig.data if t.type == kind]


def with_proposal(recs: list[Recommendation], protocol: Protocol, cases: pd.DataFrame,
                   model, doses: list[float]) -> list[Recommendation]:
    return recommend(cases.assign(proposed_dose_adapt_gy=doses), protocol, model)
