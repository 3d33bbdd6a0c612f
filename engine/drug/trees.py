"""Tree ensembles as flat arrays: a compact, pickle-free form for serving, fast prediction of many
ensembles at once, and SHAP's TreeExplainer.

The served drug models (:mod:`engine.drug.serving`) are tree ensembles — scikit-learn random
forests or XGBoost boosters — several per drug (the point model and its bagged members). Neither
library's own format fits the registry (state_dicts of tensors read with
``torch.load(weights_only=True)``: nothing that can run code on load), and predicting ~600 small
ensembles one library call at a time would take seconds for one profile. :class:`PackedTrees`
holds every tree of one or more ensembles in flat node arrays:

* a node goes **left when** ``x[feature] <= threshold``; thresholds are float32 and inputs are
  cast to float32, and the conversion keeps each library's decision exact for float32 inputs:
  scikit-learn's float64 threshold ``t`` (it compares float32 inputs ``x <= t``) becomes the
  largest float32 ≤ ``t``; XGBoost's float32 ``x < t`` becomes ``x <= nextafter(t, −∞)``;
* ``value`` is the node's output: a forest's probability of resistance (class 1) at the node, or
  a booster's leaf margin (logit units); ``cover`` the training weight that reached the node
  (SHAP's path weights);
* ``tree_model`` says which ensemble each tree belongs to (trees of an ensemble are contiguous);
  a ``"forest"`` predicts the mean of its trees' leaf probabilities, a ``"boosted"`` ensemble
  ``σ(base_margin + Σ leaf margins)``.

Every tree's nodes are contiguous and in **breadth-first order with siblings adjacent** (the
root first; the children of the k-th inner node are the tree's nodes 2k + 1 and 2k + 2), so the
shape of a tree follows from which nodes are leaves. The state_dict (:meth:`PackedTrees.to_state`)
therefore stores per node only the feature (int16, −1 at a leaf), one float32 (the threshold at
an inner node, the output at a leaf) and the cover (float16): 8 bytes a node.

Prediction walks every tree of every ensemble together, one depth level per numpy step.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

__all__ = ["KINDS", "PackedTrees", "from_sklearn_forest", "from_xgboost", "stack"]

KINDS: tuple[str, ...] = ("forest", "boosted")
"""How an ensemble combines its trees: mean leaf probability, or σ(base + Σ leaf margins)."""

_FIELDS = ("left", "right", "feature", "threshold", "value", "cover", "roots", "tree_model",
           "base_margin")
_DTYPES = {"left": np.int32, "right": np.int32, "feature": np.int32, "threshold": np.float32,
           "value": np.float32, "cover": np.float32, "roots": np.int32, "tree_model": np.int32,
           "base_margin": np.float64}
_STATE_FIELDS = ("feature", "payload", "cover", "tree_size", "tree_model", "base_margin")


@dataclass(frozen=True, eq=False)
class PackedTrees:
    """Trees of ``n_models`` ensembles of one kind, in flat arrays (``N`` nodes, ``T`` trees)."""

    kind: str
    """One of :data:`KINDS`."""
    n_features: int
    """Width of the inputs, ``F``."""
    left: np.ndarray
    """int32 ``[N]``: global index of the child taken when ``x[feature] <= threshold``; −1 at a
    leaf."""
    right: np.ndarray
    """int32 ``[N]``: global index of the other child; −1 at a leaf."""
    feature: np.ndarray
    """int32 ``[N]``: column of ``x`` tested at the node, 0 … F − 1; −1 at a leaf."""
    threshold: np.ndarray
    """float32 ``[N]``: go left when ``x[feature] <= threshold`` (0 at a leaf)."""
    value: np.ndarray
    """float32 ``[N]``: at a leaf, a forest's P(class 1) or a booster's margin (logit units);
    0 at inner nodes."""
    cover: np.ndarray
    """float32 ``[N]``: training weight reaching the node (> 0), SHAP's path weights."""
    roots: np.ndarray
    """int32 ``[T]``: root node of each tree."""
    tree_model: np.ndarray
    """int32 ``[T]``: ensemble of each tree, 0 … n_models − 1, non-decreasing."""
    base_margin: np.ndarray
    """float64 ``[n_models]``: a booster's starting margin (logit units); zeros for forests."""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind = {self.kind!r}; accepted {', '.join(KINDS)}")
        n = len(self.left)
        for name in ("right", "feature", "threshold", "value", "cover"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"PackedTrees.{name} has {len(getattr(self, name))} nodes; "
                                 f"left has {n}")
        if len(self.roots) != len(self.tree_model) or len(self.roots) == 0:
            raise ValueError("PackedTrees needs at least one tree and one model id per tree")
        if np.any(np.diff(self.tree_model) < 0) or self.tree_model[0] != 0:
            raise ValueError("PackedTrees.tree_model must start at 0 and never decrease")
        if len(self.base_margin) != self.n_models:
            raise ValueError(f"PackedTrees.base_margin has {len(self.base_margin)} values for "
                             f"{self.n_models} models")
        inner = self.left >= 0
        if np.any(self.feature[inner] < 0) or np.any(self.feature[inner] >= self.n_features):
            raise ValueError(f"PackedTrees.feature outside 0 … {self.n_features - 1}")
        if np.any(self.left[inner] >= n) or np.any(self.right[inner] >= n) or np.any(
                self.right[inner] < 0):
            raise ValueError("PackedTrees children point outside the node arrays")

    # --- shape -------------------------------------------------------------------------------

    @property
    def n_models(self) -> int:
        """Number of ensembles packed."""
        return int(self.tree_model[-1]) + 1

    @property
    def n_nodes(self) -> int:
        return len(self.left)

    @functools.cached_property
    def max_depth(self) -> int:
        """Longest root-to-leaf path (edges); the number of traversal steps."""
        depth = np.zeros(self.n_nodes, dtype=np.int64)
        frontier = self.roots.astype(np.int64)
        level = 0
        while frontier.size:
            depth[frontier] = level
            frontier = frontier[self.left[frontier] >= 0]
            frontier = np.concatenate([self.left[frontier], self.right[frontier]]).astype(
                np.int64)
            level += 1
        return int(depth.max())

    def trees_of(self, model: int) -> np.ndarray:
        """Indices (into :attr:`roots`) of the trees of ensemble ``model``."""
        if not 0 <= model < self.n_models:
            raise ValueError(f"model = {model}; accepted 0 … {self.n_models - 1}")
        return np.flatnonzero(self.tree_model == model)

    # --- prediction --------------------------------------------------------------------------

    def leaves(self, x: np.ndarray) -> np.ndarray:
        """Leaf reached by each line in each tree: int64 ``[n, T]`` for ``x [n, F]``.

        All (line, tree) walks advance together, one depth level per step; walks that reached
        a leaf leave the active set, so the work is the sum of the path lengths, not
        ``n · T · max_depth``.
        """
        xs = _check_x(x, self.n_features)
        n_trees = len(self.roots)
        flat_x = xs.ravel()
        node = np.tile(self.roots.astype(np.int64), xs.shape[0])  # [n · T]
        offset = np.repeat(np.arange(xs.shape[0], dtype=np.int64) * self.n_features, n_trees)
        active = np.flatnonzero(self.left[node] >= 0)
        while active.size:
            cur = node[active]
            go_left = flat_x[offset[active] + self.feature[cur]] <= self.threshold[cur]
            nxt = np.where(go_left, self.left[cur], self.right[cur]).astype(np.int64)
            node[active] = nxt
            active = active[self.left[nxt] >= 0]
        return node.reshape(xs.shape[0], n_trees)

    def predict_proba(self, x: np.ndarray, max_cells: int = 2_000_000) -> np.ndarray:
        """P(class 1) of every ensemble for every line: float64 ``[n_models, n]``; lines are
        walked in chunks of at most ``max_cells`` (line, tree) pairs to bound memory."""
        xs = _check_x(x, self.n_features)
        step = max(1, max_cells // len(self.roots))
        if xs.shape[0] > step:
            return np.concatenate([self.predict_proba(xs[i:i + step], max_cells)
                                   for i in range(0, xs.shape[0], step)], axis=1)
        out = self.leaf_values(xs)  # [n, T]
        starts = np.flatnonzero(np.r_[True, np.diff(self.tree_model) != 0])
        sums = np.add.reduceat(out, starts, axis=1).T  # [n_models, n]
        if self.kind == "forest":
            counts = np.diff(np.r_[starts, len(self.roots)])
            return sums / counts[:, None]
        return 1.0 / (1.0 + np.exp(-(sums + self.base_margin[:, None])))

    def leaf_values(self, x: np.ndarray) -> np.ndarray:
        """Value of the leaf each line reaches in each tree, float64 ``[n, T]``."""
        return self.value[self.leaves(x)].astype(np.float64)

    # --- subsets and SHAP --------------------------------------------------------------------

    def select(self, models: Sequence[int]) -> PackedTrees:
        """A new :class:`PackedTrees` with only ``models`` (renumbered 0, 1, … in that order)."""
        parts = []
        for m in models:
            trees = self.trees_of(int(m))
            parts.append(self._subset(trees))
        return stack(parts)

    def _subset(self, trees: np.ndarray) -> PackedTrees:
        """One ensemble made of ``trees`` (their model's base margin kept)."""
        nodes = np.concatenate([self._tree_nodes(int(self.roots[t])) for t in trees])
        remap = np.full(self.n_nodes, -1, dtype=np.int64)
        remap[nodes] = np.arange(len(nodes))
        left, right = self.left[nodes], self.right[nodes]
        return PackedTrees(
            kind=self.kind, n_features=self.n_features,
            left=np.where(left >= 0, remap[np.maximum(left, 0)], -1).astype(np.int32),
            right=np.where(right >= 0, remap[np.maximum(right, 0)], -1).astype(np.int32),
            feature=self.feature[nodes].copy(), threshold=self.threshold[nodes].copy(),
            value=self.value[nodes].copy(), cover=self.cover[nodes].copy(),
            roots=remap[self.roots[trees]].astype(np.int32),
            tree_model=np.zeros(len(trees), dtype=np.int32),
            base_margin=self.base_margin[[int(self.tree_model[trees[0]])]].copy())

    def _tree_nodes(self, root: int) -> np.ndarray:
        """Node indices of the tree at ``root`` (pre-order is not needed: any order)."""
        out, frontier = [], np.array([root], dtype=np.int64)
        while frontier.size:
            out.append(frontier)
            inner = frontier[self.left[frontier] >= 0]
            frontier = np.concatenate([self.left[inner], self.right[inner]]).astype(np.int64)
        return np.sort(np.concatenate(out))

    def shap_model(self, model: int) -> dict[str, Any]:
        """Ensemble ``model`` in the dictionary form ``shap.TreeExplainer`` accepts.

        A forest's trees carry ``value / n_trees`` (so SHAP explains the mean probability of
        resistance, in probability units); a booster's carry their margins with the base margin
        as ``base_offset`` (SHAP explains the logit).
        """
        trees = self.trees_of(model)
        scale = 1.0 / len(trees) if self.kind == "forest" else 1.0
        out = []
        for t in trees:
            nodes = self._tree_nodes(int(self.roots[t]))
            local = np.full(self.n_nodes, -1, dtype=np.int64)
            local[nodes] = np.arange(len(nodes))
            left, right = self.left[nodes], self.right[nodes]
            children_left = np.where(left >= 0, local[np.maximum(left, 0)], -1)
            children_right = np.where(right >= 0, local[np.maximum(right, 0)], -1)
            # the root must come first: nodes are sorted and a root precedes its descendants
            values = self.value[nodes].astype(np.float64) * scale
            cover = self.cover[nodes].astype(np.float64)
            for node in range(len(nodes) - 1, -1, -1):  # children come after their parent
                a, b = children_left[node], children_right[node]
                if a >= 0:  # an inner node's value: the cover-weighted mean of its children
                    w = cover[a] + cover[b]
                    values[node] = ((cover[a] * values[a] + cover[b] * values[b]) / w
                                    if w > 0 else 0.5 * (values[a] + values[b]))
            out.append({
                "children_left": children_left.astype(np.int32),
                "children_right": children_right.astype(np.int32),
                "children_default": children_left.astype(np.int32),
                "features": np.where(left >= 0, self.feature[nodes], -2).astype(np.int32),
                "thresholds": self.threshold[nodes].astype(np.float64),
                "values": values[:, None],
                "node_sample_weight": cover,
            })
        return {"trees": out, "base_offset": float(self.base_margin[model]),
                "tree_output": "probability" if self.kind == "forest" else "log_odds",
                "input_dtype": np.float32, "internal_dtype": np.float64}

    # --- state_dict --------------------------------------------------------------------------

    def _breadth_first_left(self) -> np.ndarray:
        """The left children the breadth-first layout implies from the leaf flags ``[N]``."""
        sizes = np.diff(np.r_[self.roots, self.n_nodes])
        tree_of = np.repeat(np.arange(len(self.roots)), sizes)
        inner = (self.left >= 0).astype(np.int64)
        before = np.cumsum(inner) - inner  # inner nodes before each node, all trees
        first = before[self.roots]  # … before each tree's root
        left = self.roots[tree_of] + 1 + 2 * (before - first[tree_of])
        return np.where(inner > 0, left, -1)

    def to_state(self, prefix: str = "") -> dict[str, torch.Tensor]:
        """Flat tensors (for :func:`engine.platform.registry.save_artifact`), keys
        ``<prefix><name>``, 8 bytes a node (module docstring); :meth:`from_state` with the same
        prefix and :meth:`meta` rebuilds an object that predicts identically.

        Raises:
            ValueError: nodes not in the breadth-first layout, or too many features for int16.
        """
        if self.n_features > np.iinfo(np.int16).max:
            raise ValueError(f"{self.n_features} features do not fit the int16 state")
        if np.any(np.diff(self.roots) <= 0) or self.roots[0] != 0:
            raise ValueError("trees must be stored one after another, from node 0")
        if not (np.array_equal(self._breadth_first_left(), self.left)
                and np.array_equal(np.where(self.left >= 0, self.left + 1, -1), self.right)):
            raise ValueError("tree nodes are not in breadth-first order with adjacent siblings")
        inner = self.left >= 0
        arrays = {
            "feature": np.where(inner, self.feature, -1).astype(np.int16),
            "payload": np.where(inner, self.threshold, self.value).astype(np.float32),
            "cover": self.cover.astype(np.float16),
            "tree_size": np.diff(np.r_[self.roots, self.n_nodes]).astype(np.int32),
            "tree_model": self.tree_model.astype(np.int32),
            "base_margin": self.base_margin.astype(np.float64),
        }
        return {f"{prefix}{k}": torch.from_numpy(np.ascontiguousarray(v))
                for k, v in arrays.items()}

    def meta(self) -> dict[str, Any]:
        """What :meth:`from_state` needs beside the tensors (JSON-ready)."""
        return {"kind": self.kind, "n_features": self.n_features}

    @classmethod
    def from_state(cls, state: Mapping[str, torch.Tensor], meta: Mapping[str, Any],
                   prefix: str = "") -> PackedTrees:
        """Inverse of :meth:`to_state` (validated like a new object)."""
        missing = [f"{prefix}{n}" for n in _STATE_FIELDS if f"{prefix}{n}" not in state]
        if missing:
            raise ValueError(f"tree state lacks {', '.join(missing[:4])}")
        a = {n: state[f"{prefix}{n}"].numpy() for n in _STATE_FIELDS}
        feature = a["feature"].astype(np.int32)
        sizes = a["tree_size"].astype(np.int64)
        if sizes.sum() != len(feature) or np.any(sizes < 1):
            raise ValueError("tree state: tree sizes do not add up to the node count")
        roots = np.r_[0, np.cumsum(sizes)[:-1]].astype(np.int32)
        inner = feature >= 0
        payload = a["payload"].astype(np.float32)
        n = len(feature)
        tree_of = np.repeat(np.arange(len(sizes)), sizes)
        flags = inner.astype(np.int64)
        before = np.cumsum(flags) - flags
        left = np.where(inner, roots[tree_of] + 1 + 2 * (before - before[roots][tree_of]), -1)
        if np.any(left[inner] + 1 >= np.r_[roots[1:], n][tree_of[inner]]):
            raise ValueError("tree state: an inner node's children fall outside its tree")
        return cls(kind=str(meta["kind"]), n_features=int(meta["n_features"]),
                   left=left.astype(np.int32),
                   right=np.where(inner, left + 1, -1).astype(np.int32),
                   feature=np.where(inner, feature, -1).astype(np.int32),
                   threshold=np.where(inner, payload, 0).astype(np.float32),
                   value=np.where(inner, 0, payload).astype(np.float32),
                   cover=a["cover"].astype(np.float32), roots=roots,
                   tree_model=a["tree_model"].astype(np.int32),
                   base_margin=a["base_margin"].astype(np.float64))


def _check_x(x: np.ndarray, n_features: int) -> np.ndarray:
    xs = np.asarray(x, dtype=np.float32)
    if xs.ndim != 2 or xs.shape[1] != n_features:
        raise ValueError(f"x must be [n, {n_features}], got shape {xs.shape}")
    if not np.isfinite(xs).all():
        raise ValueError("x holds a missing or infinite value; every feature must be finite")
    return xs


def _float32_at_most(t: np.ndarray) -> np.ndarray:
    """The largest float32 ≤ each float64 ``t``: ``x <= t`` ⇔ ``x <= result`` for float32 x."""
    t = np.asarray(t, dtype=np.float64)
    down = t.astype(np.float32)
    over = down.astype(np.float64) > t
    down[over] = np.nextafter(down[over], np.float32(-np.inf))
    return down


def stack(parts: Sequence[PackedTrees]) -> PackedTrees:
    """Several packed ensembles of one kind as one (models renumbered in order)."""
    if not parts:
        raise ValueError("stack needs at least one PackedTrees")
    kinds = {p.kind for p in parts}
    widths = {p.n_features for p in parts}
    if len(kinds) != 1 or len(widths) != 1:
        raise ValueError(f"cannot stack kinds {sorted(kinds)} / feature counts {sorted(widths)}")
    offset, model_offset = 0, 0
    arrays: dict[str, list[np.ndarray]] = {n: [] for n in _FIELDS}
    for p in parts:
        for name in ("left", "right"):
            a = getattr(p, name)
            arrays[name].append(np.where(a >= 0, a + offset, -1).astype(np.int32))
        for name in ("feature", "threshold", "value", "cover", "base_margin"):
            arrays[name].append(getattr(p, name))
        arrays["roots"].append((p.roots + offset).astype(np.int32))
        arrays["tree_model"].append((p.tree_model + model_offset).astype(np.int32))
        offset += p.n_nodes
        model_offset += p.n_models
    return PackedTrees(kind=parts[0].kind, n_features=parts[0].n_features,
                       **{n: np.concatenate(v).astype(_DTYPES[n]) for n, v in arrays.items()})


def _single_tree(kind: str, n_features: int, left: np.ndarray, right: np.ndarray,
                 feature: np.ndarray, threshold: np.ndarray, value: np.ndarray,
                 cover: np.ndarray) -> PackedTrees:
    """One tree (children −1 at leaves) renumbered breadth-first with adjacent siblings; the
    threshold kept at inner nodes, the value at leaves."""
    left = np.asarray(left, dtype=np.int64)
    right = np.asarray(right, dtype=np.int64)
    order = [0]  # new → old
    k = 0
    while k < len(order):
        old = order[k]
        if left[old] >= 0:
            order += [int(left[old]), int(right[old])]
        k += 1
    order_arr = np.array(order, dtype=np.int64)
    inner = left[order_arr] >= 0
    flags = inner.astype(np.int64)
    new_left = np.where(inner, 1 + 2 * (np.cumsum(flags) - flags), -1)
    return PackedTrees(
        kind=kind, n_features=n_features,
        left=new_left.astype(np.int32),
        right=np.where(inner, new_left + 1, -1).astype(np.int32),
        feature=np.where(inner, np.asarray(feature)[order_arr], -1).astype(np.int32),
        threshold=np.where(inner, np.asarray(threshold)[order_arr], 0).astype(np.float32),
        value=np.where(inner, 0, np.asarray(value)[order_arr]).astype(np.float32),
        cover=np.asarray(cover, dtype=np.float32)[order_arr],
        roots=np.zeros(1, dtype=np.int32), tree_model=np.zeros(1, dtype=np.int32),
        base_margin=np.zeros(1))


def _one_model(parts: list[PackedTrees], base_margin: float) -> PackedTrees:
    packed = stack(parts)
    return PackedTrees(**{**_as_kwargs(packed),
                          "tree_model": np.zeros(len(packed.roots), dtype=np.int32),
                          "base_margin": np.array([base_margin])})


def from_sklearn_forest(forest: Any) -> PackedTrees:
    """A fitted ``sklearn.ensemble.RandomForestClassifier`` (classes 0/1) as one ensemble."""
    classes = list(getattr(forest, "classes_", []))
    if classes != [0, 1]:
        raise ValueError(f"the forest must be fitted on classes [0, 1], got {classes}")
    parts = []
    for est in forest.estimators_:
        t = est.tree_
        value = np.asarray(t.value[:, 0, :], dtype=np.float64)  # [nodes, 2]
        prob = value[:, 1] / np.maximum(value.sum(1), 1e-300)
        leaf = t.children_left < 0
        parts.append(_single_tree(
            "forest", int(forest.n_features_in_), t.children_left, t.children_right,
            t.feature, np.where(leaf, 0.0, _float32_at_most(t.threshold)), prob,
            t.weighted_n_node_samples))
    return _one_model(parts, 0.0)


def from_xgboost(booster: Any, n_features: int) -> PackedTrees:
    """A binary-logistic ``xgboost.Booster`` (numeric splits, no missing values at predict
    time) as one ensemble."""
    model = json.loads(booster.save_raw("json"))
    learner = model["learner"]
    objective = learner.get("objective", {}).get("name")
    if objective != "binary:logistic":
        raise ValueError(f"the booster's objective is {objective!r}; expected 'binary:logistic'")
    base = float(str(learner["learner_model_param"]["base_score"]).strip("[]"))
    parts = []
    for tree in learner["gradient_booster"]["model"]["trees"]:
        left = np.asarray(tree["left_children"], dtype=np.int64)
        cond = np.asarray(tree["split_conditions"], dtype=np.float32)
        if any(tree.get("split_type", [])):
            raise ValueError("categorical splits are not supported")
        # XGBoost goes left when x < t (float32); for float32 x that is x <= nextafter(t, −∞)
        parts.append(_single_tree(
            "boosted", n_features, left, tree["right_children"], tree["split_indices"],
            np.nextafter(cond, np.float32(-np.inf)), cond, tree["sum_hessian"]))
    return _one_model(parts, float(np.log(base / (1.0 - base))))


def _as_kwargs(p: PackedTrees) -> dict[str, Any]:
    return {"kind": p.kind, "n_features": p.n_features,
            **{n: getattr(p, n) for n in _FIELDS}}
