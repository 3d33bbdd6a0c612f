"""The networks of the RT outcome estimators (:mod:`engine.arclids.rtoe`).

:class:`GraphNet` — the graph network of the GLoGD-GNN (its μ- and T-networks) and of the
Single-GNN: node values of a case's feature graph (:mod:`engine.arclids.graphs`) → one logit.
:class:`LogisticNet` — the logistic baseline as a module (one linear layer on the node values).

Their attribute names make the ``state_dict`` keys of the saved RTOE artifacts (``models/rtoe``,
e.g. ``net.convs.0.lin.weight``): renaming an attribute breaks loading them.
"""

from __future__ import annotations

import torch
from torch import nn
from torch_geometric.nn import DenseGCNConv

__all__ = ["GraphNet", "LogisticNet"]


class GraphNet(nn.Module):
    """Graph network over the feature graph: node values [B, N] → one logit per graph [B].

    Node input is [standardised value, learned node-identity embedding] (1 + H) → linear → ReLU
    → ``n_layers`` × (DenseGCNConv(H, H) → ReLU) with the dense adjacency [N, N] shared by every
    graph of the batch (with self loops; the convolution normalises it symmetrically) → mean
    over nodes (global mean pool) [B, H] → MLP head (H → H → 1).

    Args:
        adjacency: float [N, N] symmetric 0/1 adjacency of the feature graph.
        hidden: width H.
        n_layers: number of graph convolutions.
    """

    def __init__(self, adjacency: torch.Tensor, hidden: int, n_layers: int) -> None:
        super().__init__()
        n_nodes = adjacency.shape[0]
        # Self loops added once here; the convolutions then skip re-adding them per call.
        looped = adjacency.clone().float().fill_diagonal_(1.0)  # [N, N]
        self.register_buffer("adjacency", looped, persistent=False)
        self.node_embedding = nn.Embedding(n_nodes, hidden)
        self.input = nn.Linear(1 + hidden, hidden)
        self.convs = nn.ModuleList(DenseGCNConv(hidden, hidden) for _ in range(n_layers))
        self.head = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def reset_parameters(self) -> None:
        self.node_embedding.reset_parameters()
        self.input.reset_parameters()
        for conv in self.convs:
            conv.reset_parameters()
        for layer in self.head:
            if isinstance(layer, nn.Linear):
                layer.reset_parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [B] for node values ``x`` [B, N] (float32, standardised)."""
        # The input layer on the concatenation [x, e] equals x·w_x + (e W_eᵀ + b); the embedding
        # half is computed once per forward for the N nodes instead of once per graph.
        w_value, w_embed = self.input.weight[:, :1], self.input.weight[:, 1:]  # [H, 1], [H, H]
        node_bias = self.node_embedding.weight @ w_embed.t() + self.input.bias  # [N, H]
        h = torch.relu(x.unsqueeze(-1) * w_value.t() + node_bias)  # [B, N, H]
        for conv in self.convs:
            h = torch.relu(conv(h, self.adjacency, add_loop=False))  # [B, N, H]
        pooled = h.mean(dim=1)  # [B, H]
        return self.head(pooled).squeeze(-1)  # [B]


class LogisticNet(nn.Module):
    """Logistic regression as a module: node values [B, N] → logit [B] (fitted by L-BFGS)."""

    def __init__(self, n_nodes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(n_nodes, 1)

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [B] for node values ``x`` [B, N]."""
        return self.linear(x).squeeze(-1)  # [B]
