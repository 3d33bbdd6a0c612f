"""Feature graphs of the outcome networks and the encoder that turns cases into node values.

Each case is one small graph (ARCliDS S2, Fig. 6): one node per protocol feature, in protocol
order, with the protocol's Markov-blanket DAG edges between features made undirected (the graph
convolutions pass messages both ways). The outcome nodes of the DAG are not graph nodes: the
network's output plays their part.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from engine.core.protocols import Protocol

__all__ = ["FeatureEncoder", "FeatureGraph", "feature_graph"]

SD_FLOOR = 1e-6
"""Smallest standard deviation the encoder divides by (a constant feature stays finite)."""


@dataclass(frozen=True)
class FeatureGraph:
    """The undirected feature graph of one protocol (shared by every case of that protocol)."""

    node_names: tuple[str, ...]
    """Feature names, one per node, in protocol order (node i is ``protocol.features[i]``)."""
    edge_index: torch.Tensor
    """COO edges, ``torch.long`` of shape [2, E]: every DAG edge between two features in both
    directions, no self loops, sorted by (source, target)."""
    adjacency: torch.Tensor
    """Dense adjacency, float32 [N, N], symmetric, 0/1, zero diagonal."""

    @property
    def n_nodes(self) -> int:
        return len(self.node_names)


_GRAPHS: dict[tuple, FeatureGraph] = {}


def feature_graph(protocol: Protocol) -> FeatureGraph:
    """The feature graph of ``protocol`` (cached per protocol name, features and edges).

    The tensors are shared between callers; treat them as read-only.
    """
    edges = protocol.feature_edges()
    key = (protocol.name, protocol.feature_names, edges)
    graph = _GRAPHS.get(key)
    if graph is None:
        graph = _build_graph(protocol.feature_names, edges)
        _GRAPHS[key] = graph
    return graph


def _build_graph(names: tuple[str, ...], edges: tuple[tuple[str, str], ...]) -> FeatureGraph:
    index = {name: i for i, name in enumerate(names)}
    adjacency = torch.zeros(len(names), len(names), dtype=torch.float32)  # [N, N]
    for parent, child in edges:
        a, b = index[parent], index[child]
        if a != b:
            adjacency[a, b] = adjacency[b, a] = 1.0
    edge_index = adjacency.nonzero().t().contiguous()  # [2, E], row-major so sorted
    return FeatureGraph(node_names=names, edge_index=edge_index, adjacency=adjacency)


class FeatureEncoder:
    """Standardises a protocol's features into node values (scikit-learn shape).

    Features with ``scale == "log"`` are transformed with log(1 + x) first, the others are used
    raw; ``fit`` learns the mean and standard deviation of the transformed values and
    ``transform`` returns (value − mean) / sd.

    Args:
        protocol: supplies the feature names (node order) and their scales.
        linear_features: features standardised on the linear scale whatever their protocol
            scale says (the outcome estimators use it for a node whose value they replace, e.g.
            by a normalised gEUD that may be negative).
    """

    def __init__(self, protocol: Protocol, linear_features: Sequence[str] = ()) -> None:
        self.protocol = protocol
        self.linear_features = tuple(linear_features)

    @property
    def _log_mask(self) -> np.ndarray:
        return np.array(
            [
                f.scale == "log" and f.name not in self.linear_features
                for f in self.protocol.features
            ]
        )

    def _transformed(self, cases: pd.DataFrame) -> np.ndarray:
        names = list(self.protocol.feature_names)
        absent = [n for n in names if n not in cases.columns]
        if absent:
            raise KeyError(f"cases lack the feature columns {', '.join(absent)}")
        values = np.array(cases[names], dtype=np.float64)  # [P, N], a writable copy
        bad = ~np.isfinite(values)
        if bad.any():
            columns = [names[j] for j in np.flatnonzero(bad.any(axis=0))]
            raise ValueError(
                f"{int(bad.any(axis=1).sum())} case(s) have missing or non-finite values in "
                f"{', '.join(columns)}; the outcome networks need complete cases "
                "(use Cohort.complete_table)"
            )
        mask = self._log_mask
        values[:, mask] = np.log1p(values[:, mask])
        return values

    def fit(self, cases: pd.DataFrame) -> FeatureEncoder:
        """Learn ``mean_`` and ``sd_`` (arrays [N]) of the transformed features of ``cases``."""
        values = self._transformed(cases)
        if len(values) == 0:
            raise ValueError("cannot fit the feature encoder on zero cases")
        self.mean_ = values.mean(axis=0)
        self.sd_ = np.maximum(values.std(axis=0), SD_FLOOR)
        return self

    def transform(self, cases: pd.DataFrame) -> np.ndarray:
        """Standardised node values, float32 [P, N] in protocol feature order."""
        return ((self._transformed(cases) - self.mean_) / self.sd_).astype(np.float32)

    def fit_transform(self, cases: pd.DataFrame) -> np.ndarray:
        return self.fit(cases).transform(cases)

    def standardise(self, name: str, values: np.ndarray) -> np.ndarray:
        """Standardise raw values of one feature with its fitted statistics (any shape)."""
        j = self.protocol.feature_names.index(name)
        values = np.asarray(values, dtype=np.float64)
        if self._log_mask[j]:
            values = np.log1p(values)
        return (values - self.mean_[j]) / self.sd_[j]

    def state(self) -> dict[str, torch.Tensor]:
        """Fitted statistics as float64 tensors ``{"mean": [N], "sd": [N]}``."""
        return {
            "mean": torch.from_numpy(self.mean_.copy()),
            "sd": torch.from_numpy(self.sd_.copy()),
        }

    @classmethod
    def from_state(
        cls,
        protocol: Protocol,
        state: Mapping[str, torch.Tensor],
        linear_features: Sequence[str] = (),
    ) -> FeatureEncoder:
        """Rebuild a fitted encoder from :meth:`state`."""
        encoder = cls(protocol, linear_features)
        n = len(protocol.feature_names)
        mean = state["mean"].detach().cpu().to(torch.float64).numpy()
        sd = state["sd"].detach().cpu().to(torch.float64).numpy()
        if mean.shape != (n,) or sd.shape != (n,):
            raise ValueError(
                f"encoder state has shapes {mean.shape}/{sd.shape}; protocol {protocol.name} "
                f"has {n} features"
            )
        encoder.mean_, encoder.sd_ = mean.copy(), sd.copy()
        return encoder
