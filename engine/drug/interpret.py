"""Which genes push a drug-resistance prediction toward resistance: SHAP values of the served tree
models, ranked per drug and per tissue, their stability across cross-validation folds, and the
paper's TFF1 claim checked.

**Attributions.** ``shap.TreeExplainer`` (exact path-dependent TreeSHAP, Lundberg et al. 2020) on
the packed trees (:meth:`engine.drug.trees.PackedTrees.shap_model`): for one line the SHAP values
of its 2,118 features sum to the model's output minus the explainer's expected value — a
forest's probability of resistance (probability units) or a booster's logit (logit units;
:func:`shap_values` says which). A positive value pushes that line's prediction toward
resistance. The served model's classifier is explained before recalibration: the Platt map is
monotone, so it changes the units, not the direction or the ranking.

**Per drug and tissue** (:func:`rank_features`): every labelled line is explained by the model of
its leave-cell-line-out fold that never saw it (held-out SHAP values), then per group of lines —
all lines, each lineage with at least ``min_group_lines`` labelled lines, and the lineage
sub-subtypes of lung and liver (e.g. ``lung / NSCLC_adenocarcinoma``) — features are ranked by
mean |SHAP| (how much they move that group's predictions), each with its mean SHAP (net push of
the group toward resistance, > 0, or sensitivity) and its **direction**: the correlation over the
group's lines between the feature's value and its SHAP value (> 0: higher expression / copy
number, or a mutation, pushes toward resistance).

**Stability** (:func:`stability`): each fold model ranks features by mean |SHAP| over the same
lines (all the drug's labelled lines); the top-``k`` sets of the folds are compared by their
mean pairwise Jaccard index (1 = the same ``k`` features every time; two random ``k``-sets of
2,118 features share almost none, ≈ k / 2,118), with the features in every fold's top ``k``.

**TFF1** (:func:`gene_check`): the method paper names TFF1 as a gefitinib-resistance gene in
lung adenocarcinoma; the check reports whether TFF1 is a panel gene at all and, if it is, its
rank in that group.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from engine import settings
from engine.drug.trees import PackedTrees

__all__ = [
    "INTERPRETATION_NAME",
    "MODALITY_LABELS",
    "SUBTYPE_LINEAGES",
    "explain_with",
    "feature_parts",
    "gene_check",
    "line_groups",
    "load_interpretation",
    "rank_features",
    "save_interpretation",
    "shap_values",
    "stability",
    "tree_explainer",
]

INTERPRETATION_NAME = "interpretation"
"""Registry name of the saved interpretation (``models/drug/interpretation.json``)."""

MODALITY_LABELS: dict[str, str] = {"expr": "expression", "mut": "mutation",
                                   "cn": "copy number"}
"""How each feature block reads in a label (``"EGFR expression"``)."""

SUBTYPE_LINEAGES: tuple[str, ...] = ("lung", "liver")
"""Lineages whose DepMap sub-subtypes get rankings of their own (the project's sites)."""


def feature_parts(name: str) -> dict[str, str]:
    """``"expr:EGFR (1956)"`` → ``{"feature": …, "gene": "EGFR", "modality": "expr",
    "label": "EGFR expression"}``."""
    modality, _, rest = name.partition(":")
    gene = rest.split(" (", 1)[0].strip()
    return {"feature": name, "gene": gene, "modality": modality,
            "label": f"{gene} {MODALITY_LABELS.get(modality, modality)}"}


def shap_values(trees: PackedTrees, model: int, x: np.ndarray) -> tuple[np.ndarray, float, str]:
    """SHAP values of ensemble ``model`` of ``trees`` for lines ``x [n, F]``.

    Returns:
        ``(values [n, F], expected_value, units)``; each row sums to the model's output for the
        line minus ``expected_value``; units ``"probability"`` (forest) or ``"logit"``
        (boosted).
    """
    return explain_with(tree_explainer(trees, model), x)


def tree_explainer(trees: PackedTrees, model: int) -> tuple[Any, str]:
    """``shap.TreeExplainer`` of ensemble ``model`` of ``trees`` and its units (build once, use
    with :func:`explain_with` for many lines)."""
    import shap  # heavy import (numba), only when explaining

    return (shap.TreeExplainer(trees.shap_model(model)),
            "probability" if trees.kind == "forest" else "logit")


def explain_with(explainer: tuple[Any, str], x: np.ndarray) -> tuple[np.ndarray, float, str]:
    """:func:`shap_values` with an explainer of :func:`tree_explainer`."""
    tree, units = explainer
    values = np.asarray(tree.shap_values(np.asarray(x, dtype=np.float32)), dtype=np.float64)
    return values, float(np.ravel(tree.expected_value)[0]), units


def _direction(values: np.ndarray, attributions: np.ndarray) -> np.ndarray:
    """Per feature, the correlation over lines of its value with its SHAP value (NaN when
    either is constant): ``[n, F], [n, F] → [F]``."""
    v = values - values.mean(0)
    a = attributions - attributions.mean(0)
    denom = np.sqrt((v ** 2).sum(0) * (a ** 2).sum(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 1e-12, (v * a).sum(0) / np.maximum(denom, 1e-300), np.nan)


def rank_features(attributions: np.ndarray, values: np.ndarray, names: Sequence[str],
                  top: int) -> list[dict[str, Any]]:
    """The ``top`` features of a group of lines by mean |SHAP|.

    Args:
        attributions: SHAP values ``[n, F]`` of the group's lines.
        values: the lines' feature values ``[n, F]``.
        names: ``F`` feature names (``"expr:EGFR (1956)"``).
        top: number of features returned.

    Returns:
        Ranked dicts: ``rank`` (1 = largest), ``feature``, ``gene``, ``modality``, ``label``,
        ``mean_abs_shap``, ``mean_shap`` (> 0: the group's predictions pushed toward
        resistance), ``direction`` (correlation of value and SHAP value; None when constant in
        the group).
    """
    attributions = np.asarray(attributions, dtype=np.float64)
    mean_abs = np.abs(attributions).mean(0)
    mean = attributions.mean(0)
    direction = _direction(np.asarray(values, dtype=np.float64), attributions)
    order = np.lexsort((np.arange(len(mean_abs)), -mean_abs))[:top]
    return [{"rank": r + 1, **feature_parts(names[j]), "mean_abs_shap": _sig(mean_abs[j]),
             "mean_shap": _sig(mean[j]),
             "direction": None if not np.isfinite(direction[j]) else _sig(direction[j])}
            for r, j in enumerate(order)]


def _sig(value: float, digits: int = 5) -> float:
    """``value`` rounded to ``digits`` significant digits (the saved rankings stay small)."""
    return float(f"{float(value):.{digits}g}")


def line_groups(lineages: Sequence[str], sub_subtypes: Sequence[str], min_lines: int
                ) -> dict[str, np.ndarray]:
    """Groups of lines (positions into the given sequences) that get a ranking: ``"all"``, each
    lineage with ≥ ``min_lines`` lines, and ``"<lineage> / <sub_subtype>"`` for the lineages
    of :data:`SUBTYPE_LINEAGES` (≥ ``min_lines`` lines)."""
    lineage = np.asarray(lineages, dtype=object)
    sub = np.asarray(sub_subtypes, dtype=object) if len(sub_subtypes) else np.full(
        len(lineage), "", dtype=object)
    out: dict[str, np.ndarray] = {"all": np.arange(len(lineage))}
    for name in sorted(set(lineage.tolist())):
        pos = np.flatnonzero(lineage == name)
        if len(pos) >= min_lines:
            out[name] = pos
    for name in SUBTYPE_LINEAGES:
        for s in sorted({str(v) for v in sub[lineage == name] if v}):
            pos = np.flatnonzero((lineage == name) & (sub == s))
            if len(pos) >= min_lines:
                out[f"{name} / {s}"] = pos
    return out


def stability(importance: np.ndarray, names: Sequence[str], k: int) -> dict[str, Any]:
    """Agreement of the folds' top-``k`` features.

    Args:
        importance: ``[n_folds, F]`` mean |SHAP| of each fold model over the same lines.
        names: ``F`` feature names.
        k: size of the top sets.

    Returns:
        ``k``, ``n_folds``, ``mean_pairwise_jaccard``, ``min_pairwise_jaccard``,
        ``random_expectation`` (mean Jaccard of two random ``k``-sets of ``F`` features),
        ``in_every_fold`` and ``in_most_folds`` (features in the top ``k`` of every fold / of
        more than half of the folds, ordered by mean importance).
    """
    importance = np.asarray(importance, dtype=np.float64)
    n_folds, n_features = importance.shape
    k = min(k, n_features)
    tops = [set(np.lexsort((np.arange(n_features), -row))[:k].tolist()) for row in importance]
    pairs = [len(a & b) / len(a | b) for a, b in combinations(tops, 2)]
    counts = np.zeros(n_features, dtype=np.int64)
    for t in tops:
        counts[list(t)] += 1
    order = np.argsort(-importance.mean(0), kind="stable")
    # E|A∩B| = k²/F for two random k-sets; Jaccard ≈ that over 2k − k²/F
    overlap = k * k / n_features
    return {
        "k": k, "n_folds": n_folds,
        "mean_pairwise_jaccard": float(np.mean(pairs)) if pairs else None,
        "min_pairwise_jaccard": float(np.min(pairs)) if pairs else None,
        "random_expectation": float(overlap / (2 * k - overlap)),
        "in_every_fold": [names[j] for j in order if counts[j] == n_folds],
        "in_most_folds": [names[j] for j in order if counts[j] * 2 > n_folds],
    }


def gene_check(by_group: Mapping[str, Any], genes: Sequence[str], gene: str, group: str,
               drug: str) -> dict[str, Any]:
    """Does ``gene`` come up for ``drug`` in ``group``? Its panel membership and, when it is a
    panel gene, the best rank of its features in that group's ranking (None beyond the stored
    top features)."""
    symbols = {g.split(" (", 1)[0] for g in genes}
    out: dict[str, Any] = {"gene": gene, "drug": drug, "group": group,
                           "in_panel": gene in symbols}
    entry = by_group.get(group)
    out["group_found"] = entry is not None
    if entry is not None:
        out["n_lines"] = entry["n_lines"]
        ranks = [f["rank"] for f in entry["top"] if f["gene"] == gene]
        out["best_rank"] = min(ranks) if ranks else None
        out["of_top"] = len(entry["top"])
        out["top_genes"] = [f["label"] for f in entry["top"][:10]]
    if not out["in_panel"]:
        out["finding"] = (f"{gene} is not among the {len(symbols)} panel genes, so the model "
                          f"cannot use it and the claim cannot be checked with these features")
    elif entry is None:
        out["finding"] = f"too few labelled {group} lines for {drug} to rank genes"
    elif out["best_rank"] is None:
        out["finding"] = (f"{gene} is not among the top {out['of_top']} features for {drug} "
                          f"in {group}")
    else:
        out["finding"] = f"{gene} ranks {out['best_rank']} for {drug} in {group}"
    return out


def save_interpretation(payload: Mapping[str, Any], models_dir: Path | str | None = None, *,
                        seed: int, config: Mapping[str, Any], data_hash: str,
                        data_version: str, metrics: Mapping[str, Any]):
    """Save ``models/drug/interpretation.json`` through the registry; returns its meta."""
    from engine.drug.evaluate import FAMILY
    from engine.platform import registry

    root = settings.models_dir(models_dir)
    return registry.save_json_artifact(root, FAMILY, INTERPRETATION_NAME, dict(payload),
                                       seed=seed, config=config, data_hash=data_hash,
                                       cohort_version=data_version, metrics=metrics)


def load_interpretation(models_dir: Path | str | None = None) -> tuple[dict[str, Any], Any]:
    """The saved interpretation and its manifest meta (hash-checked)."""
    from engine.drug.evaluate import FAMILY
    from engine.platform import registry

    root = settings.models_dir(models_dir)
    return registry.load_json_artifact(root, FAMILY, INTERPRETATION_NAME)
