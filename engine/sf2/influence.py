"""Gene-influence maps (the paper's Fig. 7): how predicted SF2 responds to each gene, per line.

After a line's network has been adapted (on its support set), the influence of gene g is the
gradient of the predicted SF2 with respect to that gene's expression, in SF2 per +1 z-score
(per panel standard deviation): ∂SF2/∂z_g = ∂SF2/∂x_g / (max_g − min_g), where x is the
min–max-scaled input. "If this gene were one sd higher in this line, how much would the
predicted SF2 change?" Option ``"gradient_x_input"`` multiplies by the line's z-score: the
z-scale is centred on the panel mean, so this reads as the gene's first-order contribution
relative to an average line. The paper uses the gradient alone (more stable); so does the
default here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from engine.sf2.reptile import batched_forward

__all__ = ["INFLUENCE_METHODS", "gene_gradients", "influence_map"]

INFLUENCE_METHODS: tuple[str, ...] = ("gradient", "gradient_x_input")
"""Accepted influence methods."""


def gene_gradients(
    params: list[torch.Tensor],
    x_scaled: torch.Tensor,
    scale: np.ndarray,
    z: np.ndarray | None = None,
    method: str = "gradient",
    *,
    activation: str = "relu",
    output: str = "sigmoid",
) -> np.ndarray:
    """Influence of each gene on each line's predicted SF2.

    Args:
        params: adapted networks, batched ``[T, ...]`` (network t scores line t).
        x_scaled: ``[T, d]`` min–max-scaled inputs.
        scale: ``[d]`` max − min of each gene's z-score (the scaling's range).
        z: ``[T, d]`` z-scores (needed for ``"gradient_x_input"``).
        method: ``"gradient"`` (SF2 per +1 z) or ``"gradient_x_input"`` (× z).

    Returns:
        ``[T, d]`` influences (SF2 units per z, or SF2 units).
    """
    if method not in INFLUENCE_METHODS:
        raise ValueError(f"method {method!r} must be one of {', '.join(INFLUENCE_METHODS)}")
    x = x_scaled.detach().clone().requires_grad_(True)
    pred = batched_forward([p.detach() for p in params], x[:, None, :], activation, output)
    (grad,) = torch.autograd.grad(pred.sum(), x)  # [T, d]: each line's own network only
    per_z = grad.numpy() / np.asarray(scale, dtype=float)[None, :]
    if method == "gradient":
        return per_z
    if z is None:
        raise ValueError("gradient_x_input needs the z-scores")
    return per_z * np.asarray(z, dtype=float)


def influence_map(influence: np.ndarray, genes: list[str], lines: pd.DataFrame,
                  predicted_sf2: np.ndarray, group_column: str = "subgroup") -> pd.DataFrame:
    """Lines × genes influence table sorted by subgroup, then by predicted SF2 (ascending).

    Args:
        influence: ``[n, d]`` from :func:`gene_gradients` (averaged over members if wanted).
        genes: the ``d`` gene names.
        lines: ``n`` rows with at least ``group_column`` (same order as ``influence``).
        predicted_sf2: ``[n]`` predictions.

    Returns:
        DataFrame with the ``lines`` columns, ``predicted_sf2`` and one column per gene.
    """
    table = lines.reset_index().copy()
    table["predicted_sf2"] = np.asarray(predicted_sf2, dtype=float)
    table = pd.concat([table, pd.DataFrame(influence, columns=genes)], axis=1)
    return table.sort_values([group_column, "predicted_sf2"], kind="stable").reset_index(drop=True)
