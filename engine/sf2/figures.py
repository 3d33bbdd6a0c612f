"""Plotly figures of the SF2 panel, styled by :mod:`engine.figures.style`.

* :func:`sf2_population_figure` — the measured SF2 of the panel's lines (all, and the sample's
  own subgroup), with the sample's predicted SF2 ± sd marked, and its measured SF2 when known.
* :func:`gene_influence_figure` — signed influence bars of the top genes for one sample.
* :func:`influence_heatmap_figure` — the paper's Fig. 7: lines (sorted by subgroup, then by
  predicted SF2) × genes.
* :func:`evaluation_figure` — MAE ± sd per method and setting, the honest protocol apart from
  the paper's (which uses the labels it scores).

User text (sample ids) is HTML-escaped before it reaches plotly.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from engine.figures.style import (
    BLUE,
    BLUISH_GREEN,
    GRID,
    HISTOGRAM_GREY,
    VERMILLION,
    base_layout,
    safe,
)
from engine.sf2.evaluate import METHODS

__all__ = [
    "evaluation_figure",
    "gene_influence_figure",
    "influence_heatmap_figure",
    "sf2_population_figure",
]


def _layout(fig: go.Figure, title: str, height_px: int, revision: str) -> None:
    """The shared look, legend a little lower (room for the axis titles)."""
    base_layout(fig, title, height_px, revision, legend_y=-0.18)


def sf2_population_figure(
    reference: pd.DataFrame,
    *,
    sample_id: str,
    sf2: float,
    sf2_sd: float,
    subgroup_ids: list[str] | None = None,
    subgroup_label: str = "",
    measured_sf2: float | None = None,
) -> go.Figure:
    """Histogram of the panel's measured SF2 with the sample's prediction marked.

    Args:
        reference: the labelled lines (``sf2`` column; index ``DepMap_ID``).
        sample_id: shown in labels (escaped).
        sf2, sf2_sd: the prediction and its ensemble sd.
        subgroup_ids: ids of the lines of the sample's subgroup (overlaid), if any.
        subgroup_label: their name, e.g. "tissue: lung".
        measured_sf2: the sample's measured SF2 when it is a panel line.
    """
    values = reference["sf2"].to_numpy(dtype=float)
    edges = np.linspace(0.0, max(1.25, float(values.max()) + 0.05), 27)
    centres, widths = 0.5 * (edges[:-1] + edges[1:]), np.diff(edges)
    counts, _ = np.histogram(values, bins=edges)
    fig = go.Figure()
    fig.add_trace(go.Bar(
        x=centres, y=counts, width=widths, name=f"all {len(values)} lines",
        marker=dict(color=HISTOGRAM_GREY, line=dict(color="#ffffff", width=0.5)),
        customdata=np.column_stack([edges[:-1], edges[1:]]),
        hovertemplate="SF2 %{customdata[0]:.2f}–%{customdata[1]:.2f}: %{y} lines<extra></extra>",
    ))
    if subgroup_ids:
        sub = reference.loc[[i for i in subgroup_ids if i in reference.index], "sf2"]
        sub_counts, _ = np.histogram(sub.to_numpy(dtype=float), bins=edges)
        fig.add_trace(go.Bar(
            x=centres, y=sub_counts, width=widths,
            name=f"{safe(subgroup_label)} ({len(sub)} lines)",
            marker=dict(color=BLUE, opacity=0.75, line=dict(color="#ffffff", width=0.5)),
            hovertemplate="%{y} lines of the subgroup<extra></extra>",
        ))
    top = float(counts.max()) * 1.12 if counts.size else 1.0
    pct = 100.0 * float(np.mean(values <= sf2))
    lo, hi = sf2 - sf2_sd, sf2 + sf2_sd
    fig.add_shape(type="rect", x0=lo, x1=hi, y0=0, y1=top, fillcolor=VERMILLION,
                  opacity=0.15, line_width=0, layer="below")
    fig.add_trace(go.Scatter(
        x=[sf2, sf2], y=[0, top], mode="lines", line=dict(color=VERMILLION, width=3),
        name=f"{safe(sample_id)}: predicted SF2 {sf2:.2f} ± {sf2_sd:.2f}",
        hovertemplate=(f"{safe(sample_id)}<br>predicted SF2 {sf2:.3f} ± {sf2_sd:.3f}<br>"
                       f"{pct:.0f}th percentile of the panel<extra></extra>"),
    ))
    if measured_sf2 is not None:
        fig.add_trace(go.Scatter(
            x=[measured_sf2, measured_sf2], y=[0, top], mode="lines",
            line=dict(color="#000000", width=2, dash="dot"),
            name=f"measured SF2 {measured_sf2:.2f}",
            hovertemplate=f"measured SF2 {measured_sf2:.3f}<extra></extra>",
        ))
    _layout(fig, f"Where {safe(sample_id)} falls among the panel's measured SF2", 380,
            f"pop-{safe(sample_id)}")
    fig.update_layout(barmode="overlay", bargap=0, margin=dict(b=110),
                      legend=dict(y=-0.3))
    fig.update_xaxes(title_text="SF2 (surviving fraction at 2 Gy)", range=[0, edges[-1]],
                     showgrid=True, gridcolor=GRID)
    fig.update_yaxes(title_text="cell lines", range=[0, top])
    return fig


def gene_influence_figure(top_genes: list[dict[str, Any]], sample_id: str,
                          method: str = "gradient") -> go.Figure:
    """Horizontal bars: each gene's influence on the predicted SF2 (largest |influence| on top).

    Args:
        top_genes: ``[{"gene", "influence_per_sd", "z"}, ...]`` as in
            :meth:`engine.sf2.model.SF2Prediction.top_genes`.
    """
    genes = [g["gene"] for g in top_genes][::-1]
    vals = np.array([g["influence_per_sd"] for g in top_genes][::-1], dtype=float)
    zs = np.array([g["z"] for g in top_genes][::-1], dtype=float)
    colours = [VERMILLION if v > 0 else BLUE for v in vals]
    unit = "SF2 per +1 sd of expression" if method == "gradient" else "SF2 (gradient × z)"
    fig = go.Figure(go.Bar(
        x=vals, y=genes, orientation="h", marker=dict(color=colours),
        customdata=zs, name="influence",
        hovertemplate=("%{y}: %{x:+.4f} " + unit +
                       "<br>expression z = %{customdata:+.2f}<extra></extra>"),
    ))
    _layout(fig, f"Genes driving the prediction for {safe(sample_id)}",
            140 + 26 * max(len(genes), 1), f"inf-{safe(sample_id)}")
    fig.update_xaxes(title_text=f"influence ({unit}); red raises SF2 (more resistant)",
                     zeroline=True, zerolinecolor="#888888", showgrid=True, gridcolor=GRID)
    fig.update_layout(showlegend=False, margin=dict(l=110, r=30, t=60, b=60))
    return fig


def influence_heatmap_figure(table: pd.DataFrame, genes: list[str],
                             label_column: str = "cell_line",
                             group_column: str = "subgroup") -> go.Figure:
    """Fig. 7: lines × genes influence (rows grouped by subgroup, sorted by predicted SF2)."""
    z = table[genes].to_numpy(dtype=float)
    limit = float(np.nanmax(np.abs(z))) if z.size else 1.0
    labels = [f"{safe(r[label_column])} ({safe(r[group_column])}, {r['predicted_sf2']:.2f})"
              for _, r in table.iterrows()]
    fig = go.Figure(go.Heatmap(
        z=z, x=genes, y=labels, zmin=-limit, zmax=limit, colorscale="RdBu_r",
        colorbar=dict(title="∂SF2/∂z"),
        hovertemplate="%{y}<br>%{x}: %{z:+.4f}<extra></extra>",
    ))
    _layout(fig, "Gene influence per line (sorted by subgroup, then predicted SF2)",
            160 + 14 * len(labels), "heatmap")
    fig.update_yaxes(autorange="reversed", tickfont=dict(size=10))
    fig.update_layout(margin=dict(l=260, r=30, t=60, b=80))
    return fig


def evaluation_figure(result: dict[str, Any]) -> go.Figure:
    """MAE (mean ± sd over repeats) per method, one panel per setting; the paper's protocol
    (scored on labels it used) in grey with a "uses own label" marker."""
    settings = list(result["settings"])
    fig = make_subplots(rows=1, cols=len(settings), shared_yaxes=True,
                        subplot_titles=[f"{s.replace('_', '-')} "
                                        f"({result['settings'][s]['n_lines']} lines)"
                                        for s in settings], horizontal_spacing=0.04)
    for k, s in enumerate(settings):
        methods = result["settings"][s]["methods"]
        # Table order (honest protocol first), whatever order the saved JSON has (sorted keys).
        names = ([m for m in METHODS if m in methods] +
                 [m for m in methods if m not in METHODS])[::-1]
        means = [methods[m]["mae"]["mean"] for m in names]
        sds = [methods[m]["mae"]["sd"] for m in names]
        leak = [methods[m]["uses_own_label"] for m in names]
        colours = [HISTOGRAM_GREY if lk else (BLUISH_GREEN if m.startswith("reptile") else BLUE)
                   for m, lk in zip(names, leak, strict=True)]
        labels = [m + (" ⚠" if lk else "") for m, lk in zip(names, leak, strict=True)]
        fig.add_trace(go.Bar(
            x=means, y=labels, orientation="h", marker=dict(color=colours),
            error_x=dict(type="data", array=sds, color="#444444", thickness=1.2),
            showlegend=False,
            hovertemplate="%{y}: MAE %{x:.4f}<extra></extra>",
        ), row=1, col=k + 1)
        base = methods["train_mean"]["mae"]["mean"]
        fig.add_vline(x=base, line=dict(color="#000000", dash="dot", width=1), row=1, col=k + 1)
        fig.update_xaxes(title_text="MAE of SF2", row=1, col=k + 1, showgrid=True,
                         gridcolor=GRID, rangemode="tozero")
    _layout(fig, "Held-out error per method (⚠ = scored on labels it used)",
            120 + 30 * len(result["settings"][settings[0]]["methods"]), "evaluation")
    fig.update_layout(margin=dict(l=230, r=30, t=80, b=60))
    return fig
