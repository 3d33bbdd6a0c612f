"""The networks of the RT outcome estimators (:mod:`engine.arclids.rtoe`).

:class:`GraphNet` — the graph network of the GLoGD-GNN (its μ- and T-networks) and of the
Single-GNN: node values of a case's feature graph (:mod:`engine.arclids.graphs`) → one logit.
:class:`LogisticNet` — the logistic baseline as a module (one linear layer on the node values).

Their attribute names make the ``state_dict`` keys of the saved RTOE artifacts (``models/rtoe``,
e.g. ``net.convs.0.lin.weight``): renaming an attribute breaks loading them.

:class:`StackedGraphNets` and :class:`StackedLogisticNets` — inference-only snapshots of M such
networks of one shape with their weights stacked on a leading member axis, evaluated in one
batched pass (an ensemble's members at once); :func:`stack_nets` builds the right one. Their
:meth:`~StackedGraphNets.node_sweep` evaluates every case at many values of one node (the
Single-GNN's dose node) recomputing only what that node reaches.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch_geometric.nn import DenseGCNConv

__all__ = ["GraphNet", "LogisticNet", "StackedGraphNets", "StackedLogisticNets", "stack_nets"]


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


def _normalised_adjacency(looped: torch.Tensor) -> torch.Tensor:
    """D^-1/2 Â D^-1/2 of an adjacency with self loops [N, N], as DenseGCNConv computes it."""
    deg_inv_sqrt = looped.sum(dim=-1).clamp(min=1).pow(-0.5)  # [N]
    return deg_inv_sqrt.unsqueeze(-1) * looped * deg_inv_sqrt.unsqueeze(-2)  # [N, N]


def _per_member(h: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``h`` [M, ..., I] times each member's ``weight`` [M, I, O] → [M, ..., O] (one bmm)."""
    m, width = h.shape[0], h.shape[-1]
    out = torch.bmm(h.reshape(m, -1, width), weight)  # [M, R, O]
    return out.reshape(*h.shape[:-1], weight.shape[-1])


def _mix(base: torch.Tensor, matrix: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``base`` + Σ_i ``matrix``[o, i] ``rows``[:, i]: node states mixed over the graph.

    Args:
        base: [M, O, P, 1, H], broadcast over the V values.
        matrix: [O, I].
        rows: [M, I, P, V, H].

    Returns:
        [M, O, P, V, H]. For a few inputs I as I fused multiply-adds (a batched matrix product
        with such small inner sizes runs far below their speed; measured).
    """
    m, n_in, p, v, width = rows.shape
    if n_in > 4:
        mixed = (matrix @ rows.reshape(m, n_in, -1)).view(m, -1, p, v, width)
        return mixed.add_(base)
    out = torch.addcmul(base, rows[:, :1], matrix[:, 0].view(1, -1, 1, 1, 1))
    for i in range(1, n_in):
        out.addcmul_(rows[:, i:i + 1], matrix[:, i].view(1, -1, 1, 1, 1))
    return out


class StackedGraphNets:
    """M :class:`GraphNet` of one shape as one batched network (inference only).

    The members' weights are copied at construction and stacked on a leading member axis, so
    later changes to the networks are not seen (build a new stack). Every output equals the
    member's own ``forward`` up to float32 rounding (the sums run in another order).

    Node states are held node-major, [M, N, B, H], so that the propagation over the graph is
    one matrix product per member ([N, N] @ [N, B·H]) rather than B tiny ones. The first
    convolution's product of a node's state is a piecewise-linear function of the node's scalar
    value (:meth:`_first_layer_pieces`), evaluated by lookup instead of an H × H product
    (measured 15–20 % faster); its tables hold M·N·(H + 1)·2H floats, 17 MB for the 2 × 20
    GLoGD networks of one served outcome (H = 64, N = 13).

    Args:
        nets: M ≥ 1 networks with the same adjacency, width H and number of convolutions.
    """

    def __init__(self, nets: Sequence[GraphNet]) -> None:
        if not nets:
            raise ValueError("stacking needs at least one network")
        first = nets[0]
        for net in nets:
            if (len(net.convs) != len(first.convs)
                    or net.input.weight.shape != first.input.weight.shape
                    or not torch.equal(net.adjacency, first.adjacency)):
                raise ValueError("stacked graph networks need one adjacency, width and depth")
        self.adjacency = first.adjacency.clone()  # [N, N], with self loops
        self.propagation = _normalised_adjacency(self.adjacency)  # [N, N]
        with torch.no_grad():
            w_in = torch.stack([n.input.weight for n in nets])  # [M, H, 1 + H]
            embed = torch.stack([n.node_embedding.weight for n in nets])  # [M, N, H]
            b_in = torch.stack([n.input.bias for n in nets])  # [M, H]
            # As in GraphNet.forward: the input layer on [x, e] is x·w_x + (e W_eᵀ + b).
            self.w_value = w_in[:, :, 0].contiguous()  # [M, H]
            self.node_bias = torch.bmm(embed, w_in[:, :, 1:].transpose(1, 2)) + b_in[:, None]
            # [M, N, H]
            self.conv_weight = [torch.stack([n.convs[k].lin.weight.t() for n in nets])
                                for k in range(len(first.convs))]  # each [M, H, H] (in → out)
            self.conv_bias = [torch.stack([n.convs[k].bias for n in nets])
                              for k in range(len(first.convs))]  # each [M, H]
            # Pooling sums the node states; the head's first layer divides by N (the mean).
            self.head_weight = torch.stack([n.head[0].weight.t() for n in nets]) / self.n_nodes
            # [M, H, H]
            self.head_bias = torch.stack([n.head[0].bias for n in nets])  # [M, H]
            self.out_weight = torch.stack([n.head[2].weight for n in nets])  # [M, 1, H]
            self.out_bias = torch.stack([n.head[2].bias for n in nets])  # [M, 1]
            self.kinks, self.pieces = self._first_layer_pieces()
        self._reach: dict[int, list[torch.Tensor]] = {}

    @property
    def n_members(self) -> int:
        return self.w_value.shape[0]

    @property
    def n_nodes(self) -> int:
        return self.adjacency.shape[0]

    def _first_layer_pieces(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The first convolution's product of each node's state as a piecewise-linear function.

        Node n's state u(v) = relu(v·w + c_n) [H] of its value v enters the first convolution as
        u(v) W. Unit j is active on one side of its kink t_j = −c_j / w_j, so between the sorted
        kinks u(v) W = v·A_i + C_i with A_i = Σ_active w_j W_j and C_i = Σ_active c_j W_j (built
        in float64): a lookup and a multiply-add per value instead of an H × H product.

        Returns:
            kinks sorted per member and node [M·N, H]; pieces [M·N·(H + 1), 2H] holding
            [A_i, C_i] of member m, node n, piece i at row (m·N + n)·(H + 1) + i, where piece i
            is the one with i kinks strictly below v.
        """
        m, n, width = self.node_bias.shape
        w = self.w_value.double()[:, None].expand(m, n, width)  # [M, N, H]
        c = self.node_bias.double()  # [M, N, H]
        flat = w == 0
        # A unit with w = 0 is constant: always active when c > 0, never when c ≤ 0.
        kink = torch.where(flat, torch.where(c > 0, -torch.inf, torch.inf),
                           -c / torch.where(flat, torch.ones_like(w), w))  # [M, N, H]
        kinks, order = torch.sort(kink, dim=2)
        rank = torch.empty_like(order)
        rank.scatter_(2, order, torch.arange(width).expand_as(order))  # [M, N, H]
        piece = torch.arange(width + 1)[:, None]  # [H + 1, 1]
        # Kink below v ⇔ its rank < i. Active: w ≥ 0 and kink below v, or w < 0 and not.
        below = rank[:, :, None, :] < piece  # [M, N, H + 1, H]
        active = torch.where((w >= 0)[:, :, None, :], below, ~below).double()
        weight = self.conv_weight[0].double()[:, None]  # [M, 1, H, H]
        slopes = active @ (w[..., None] * weight)  # [M, N, H + 1, H]
        intercepts = active @ (c[..., None] * weight)  # [M, N, H + 1, H]
        pieces = torch.cat([slopes, intercepts], dim=3).float()  # [M, N, H + 1, 2H]
        return kinks.float().reshape(m * n, width), pieces.reshape(-1, 2 * width)

    def _first_products(self, values: torch.Tensor, nodes: torch.Tensor) -> torch.Tensor:
        """relu(v·w + c_n) W of the first convolution, [M, K, R, H], for values [M, K, R] of
        the K nodes ``nodes`` (indices), by the pieces of :meth:`_first_layer_pieces`."""
        m, k, r = values.shape
        n, width = self.n_nodes, self.w_value.shape[1]
        rows = (torch.arange(m)[:, None] * n + nodes[None]).flatten()  # [M·K]
        piece = torch.searchsorted(self.kinks[rows], values.reshape(m * k, r).contiguous(),
                                 side="left")
        piece += rows[:, None] * (width + 1)  # [M·K, R]
        pieces = torch.index_select(self.pieces, 0, piece.flatten())  # [M·K·R, 2H]
        out = torch.addcmul(pieces[:, width:], pieces[:, :width], values.reshape(-1, 1))
        return out.view(m, k, r, width)

    def _head(self, summed: torch.Tensor) -> torch.Tensor:
        """Logits [M, ...] from the node states summed over the nodes [M, ..., H]."""
        m, width = self.n_members, summed.shape[-1]
        z = torch.baddbmm(self.head_bias[:, None], summed.reshape(m, -1, width),
                          self.head_weight).relu_()  # [M, R, H]
        # [1, H] @ [H, R] per member: a product with a transposed view, faster than [R, H] @
        # [H, 1] (measured).
        logit = torch.baddbmm(self.out_bias[:, :, None], self.out_weight, z.transpose(1, 2))
        return logit.view(summed.shape[:-1])  # [M, 1, R] → [M, ...]

    def _propagate(self, lin: torch.Tensor, k: int) -> torch.Tensor:
        """Convolution k's pre-activation [M, N, B, H] from the products ``lin`` [M, N, B, H]."""
        m, n, b, width = lin.shape
        pre = (self.propagation @ lin.view(m, n, b * width)).view(m, n, b, width)
        return pre.add_(self.conv_bias[k][:, None, None])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [M, B]: member m's logits for its own node values ``x[m]`` ([M, B, N])."""
        with torch.no_grad():
            nodes = torch.arange(self.n_nodes)
            h = self._propagate(self._first_products(x.transpose(1, 2), nodes), 0).relu_()
            for k in range(1, len(self.conv_weight)):
                h = self._propagate(_per_member(h, self.conv_weight[k]), k).relu_()
            return self._head(h.sum(dim=1))  # [M, N, B, H] → [M, B]

    def reach(self, node: int) -> list[torch.Tensor]:
        """Nodes whose state can depend on ``node``'s value, per layer: sorted node indices
        S_0 = {node}, S_k+1 = S_k and its neighbours, for k = 0 … number of convolutions."""
        if node not in self._reach:
            sets = [torch.tensor([node])]
            for _ in self.conv_weight:
                touched = self.adjacency[:, sets[-1]].sum(dim=1) > 0  # [N]
                sets.append(torch.nonzero(touched).flatten())
            self._reach[node] = sets
        return self._reach[node]

    def node_sweep(self, x: torch.Tensor, node: int, values: torch.Tensor) -> torch.Tensor:
        """Logits [M, P, V] of every case with ``node`` set to each of its V values.

        Equals ``self(x')`` for the inputs x' with column ``node`` replaced by ``values``, but
        only the states the node reaches are computed per value: a node's pre-activation in
        convolution l sums the propagated products of the states of layer l, so the part from
        nodes outside the reach S_l is computed once per case ([M, N, P, H]) and only the S_l
        part per value ([M, |S_l|, P, V, H]). The Single-GNN's dose node is isolated in the feature
        graphs of the shipped protocols, so a dose costs two H × H products (second
        convolution, head) instead of a whole graph's.

        Args:
            x: node values [M, P, N]; column ``node`` is ignored.
            node: index of the swept node.
            values: member m's values of the node for case p, [M, P, V].
        """
        sets = self.reach(node)
        m, n_cases, n_values = values.shape
        width = self.w_value.shape[1]
        with torch.no_grad():
            # Per-case products; those of the layer's reach are replaced by the swept ones.
            fixed = self._first_products(x.transpose(1, 2), torch.arange(self.n_nodes))
            swept = self._first_products(values.reshape(m, 1, -1), sets[0])  # [M, 1, P·V, H]
            for k in range(len(self.conv_weight)):
                inside, reached = sets[k], sets[k + 1]
                if k > 0:
                    fixed = _per_member(fixed, self.conv_weight[k])  # [M, N, P, H]
                    swept = _per_member(swept, self.conv_weight[k])  # [M, |S_k|, P, V, H]
                fixed[:, inside] = 0.0
                pre = self._propagate(fixed, k)  # [M, N, P, H]: input from outside the reach
                swept = _mix(pre[:, reached].unsqueeze(3), self.propagation[reached][:, inside],
                             swept.view(m, len(inside), n_cases, n_values, width)).relu_()
                # [M, |S_k+1|, P, V, H]
                fixed = pre.relu_()
            fixed[:, sets[-1]] = 0.0
            summed = swept[:, 0] if swept.shape[1] == 1 else swept.sum(dim=1)  # [M, P, V, H]
            return self._head(summed.add_(fixed.sum(dim=1).unsqueeze(2)))  # [M, P, V]


class StackedLogisticNets:
    """M :class:`LogisticNet` as one batched linear layer (inference only; weights copied).

    Args:
        nets: M ≥ 1 logistic networks over the same N nodes.
    """

    def __init__(self, nets: Sequence[LogisticNet]) -> None:
        if not nets or len({n.linear.weight.shape for n in nets}) != 1:
            raise ValueError("stacking needs at least one logistic network, all of one size")
        with torch.no_grad():
            self.weight = torch.cat([n.linear.weight for n in nets])  # [M, N]
            self.bias = torch.cat([n.linear.bias for n in nets])  # [M]

    @property
    def n_members(self) -> int:
        return self.weight.shape[0]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [M, B] for member-wise node values ``x`` [M, B, N]."""
        with torch.no_grad():
            return torch.einsum("mbn,mn->mb", x, self.weight) + self.bias[:, None]

    def node_sweep(self, x: torch.Tensor, node: int, values: torch.Tensor) -> torch.Tensor:
        """Logits [M, P, V] with ``node`` set to ``values`` [M, P, V] (``x`` [M, P, N]; its
        column ``node`` is ignored): the logit is linear in the node's value."""
        with torch.no_grad():
            others = self.weight.clone()
            others[:, node] = 0.0
            fixed = torch.einsum("mpn,mn->mp", x, others) + self.bias[:, None]  # [M, P]
            return fixed[..., None] + values * self.weight[:, node, None, None]


def stack_nets(nets: Sequence[nn.Module]) -> StackedGraphNets | StackedLogisticNets:
    """The batched snapshot of M networks of one kind (all GraphNet or all LogisticNet)."""
    if all(isinstance(n, GraphNet) for n in nets):
        return StackedGraphNets(nets)  # type: ignore[arg-type]
    if all(isinstance(n, LogisticNet) for n in nets):
        return StackedLogisticNets(nets)  # type: ignore[arg-type]
    raise ValueError("stacked networks must all be GraphNet or all LogisticNet")
