"""Where the shown cases sit in the virtual-trial population (the app's population panel and the
HTML report): :func:`population_figure`, one histogram per protocol feature with each case's
value marked in its case colour."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from engine.core.protocols import Protocol
from engine.core.schema import case_labels
from engine.figures.style import (
    GRID,
    HISTOGRAM_GREY,
    base_layout,
    case_colour,
    case_revision,
    safe,
    wrap,
)

__all__ = ["population_figure"]


def _feature_title(label: str, unit: str) -> str:
    """Panel title: the feature's label with its unit unless the label already names it."""
    shown = re.search(rf"\b{re.escape(unit)}\b", label, flags=re.IGNORECASE)
    text = label if shown else f"{label} ({unit})"
    return wrap(safe(text), 36)


def _bins(values: np.ndarray, integer: bool, lo: float, hi: float) -> np.ndarray:
    """Histogram edges over [lo, hi]: one bin per whole number, else 20 equal bins."""
    if integer:
        return np.arange(np.floor(lo) - 0.5, np.ceil(hi) + 1.0, 1.0)
    if hi <= lo:
        return np.array([lo - 0.5, hi + 0.5])
    return np.histogram_bin_edges(values, bins=20, range=(lo, hi))


def _log_scale(integer: bool, values: np.ndarray) -> bool:
    """Log axis for strongly skewed positive measurements (e.g. AFP spans four decades)."""
    if integer or values.size == 0 or np.any(values <= 0):
        return False
    return bool(values.max() / values.min() > 200.0)


def population_figure(
    population: pd.DataFrame, protocol: Protocol, cases: pd.DataFrame
) -> go.Figure:
    """One small histogram per protocol feature, with each case's value as a vertical line.

    Args:
        population: the virtual-trial population (one row per case, the protocol's features).
        protocol: supplies the features, their labels and units.
        cases: cases to mark (id columns and features); missing values are skipped.

    The case lines carry the case colours used by the other figures; hovering over a line gives
    the case, its value and its percentile in the population.
    """
    features = protocol.features
    n_cols = 4
    n_rows = int(np.ceil(len(features) / n_cols))
    fig = make_subplots(
        rows=n_rows, cols=n_cols,
        subplot_titles=[_feature_title(f.label, f.unit) for f in features],
        horizontal_spacing=0.06, vertical_spacing=0.3 / n_rows,
    )
    labels = case_labels(cases) if "patient_id" in cases.columns else []
    shown_in_legend: set[int] = set()
    for k, feat in enumerate(features):
        r, c = divmod(k, n_cols)
        r, c = r + 1, c + 1
        pop = (
            population[feat.name].to_numpy(dtype=float)
            if feat.name in population.columns else np.array([])
        )
        pop = pop[np.isfinite(pop)]
        case_vals = (
            cases[feat.name].to_numpy(dtype=float)
            if feat.name in cases.columns else np.full(len(labels), np.nan)
        )
        finite_cases = case_vals[np.isfinite(case_vals)]
        all_vals = np.concatenate([pop, finite_cases])
        if all_vals.size == 0:
            continue
        log = _log_scale(feat.integer, all_vals)
        to_axis = np.log10 if log else (lambda v: v)
        pop_x = to_axis(pop)
        all_x = to_axis(all_vals)
        edges = _bins(pop_x if pop_x.size else all_x, feat.integer, all_x.min(), all_x.max())
        counts, _ = np.histogram(pop_x, bins=edges)
        centres = 0.5 * (edges[:-1] + edges[1:])
        shown_edges = 10.0**edges if log else edges
        fig.add_trace(
            go.Bar(
                x=centres, y=counts, width=np.diff(edges), marker=dict(
                    color=HISTOGRAM_GREY, line=dict(color="#ffffff", width=0.5)),
                name="virtual trial population", legendgroup="population",
                showlegend=k == 0,
                customdata=np.column_stack([shown_edges[:-1], shown_edges[1:]]),
                hovertemplate=(
                    "%{customdata[0]:.3g} – %{customdata[1]:.3g} "
                    f"{safe(feat.unit)}: %{{y}} cases<extra>population</extra>"
                ),
            ),
            row=r, col=c,
        )
        top = max(float(counts.max()) if counts.size else 1.0, 1.0) * 1.08
        for i, (lab, value) in enumerate(zip(labels, case_vals, strict=True)):
            if not np.isfinite(value):
                continue
            pct = 100.0 * float(np.mean(pop <= value)) if pop.size else float("nan")
            colour = case_colour(i)
            x = float(to_axis(value))
            if feat.integer:
                # Whole-number features: spread equal values so no case line hides another.
                x += 0.07 * (i - (len(labels) - 1) / 2)
            fig.add_trace(
                go.Scatter(
                    x=[x, x], y=[0, top], mode="lines",
                    line=dict(color=colour, width=2.5),
                    name=safe(lab), legendgroup=f"case{i}",
                    showlegend=i not in shown_in_legend,
                    hovertemplate=(
                        f"<b>{safe(lab)}</b><br>{safe(feat.label)}: {value:.4g} "
                        f"{safe(feat.unit)}<br>population percentile {pct:.0f}"
                        "<extra></extra>"
                    ),
                ),
                row=r, col=c,
            )
            shown_in_legend.add(i)
        span = max(float(all_x.max() - all_x.min()), 1e-9)
        lo_edge, hi_edge = float(min(edges[0], all_x.min())), float(max(edges[-1], all_x.max()))
        fig.update_xaxes(range=[lo_edge - 0.04 * span, hi_edge + 0.04 * span], row=r, col=c)
        if log:
            decades = np.arange(np.floor(all_x.min()), np.ceil(all_x.max()) + 1)
            fig.update_xaxes(
                tickmode="array", tickvals=decades,
                ticktext=[f"{10.0**d:g}" for d in decades],
                title_text="log scale", title_font=dict(size=10, color="#666666"),
                title_standoff=2, row=r, col=c,
            )
        fig.update_yaxes(range=[0, top], row=r, col=c)
        if feat.integer:
            fig.update_xaxes(tickmode="linear", dtick=1, row=r, col=c)

    fig.update_annotations(font=dict(size=11))
    height = 220 * n_rows + 130
    base_layout(fig, "Where the cases sit in the virtual trial population", height,
                case_revision(protocol, labels), margin_px=dict(l=50, r=20, t=120, b=40))
    fig.update_layout(
        bargap=0.02,
        legend=dict(orientation="h", y=1.0 - 44 / height, yanchor="top", yref="container", x=0.0,
                    xanchor="left", title=dict(text="")),
    )
    fig.update_xaxes(showgrid=False, ticks="outside", tickfont=dict(size=10), nticks=5)
    fig.update_yaxes(showgrid=True, gridcolor=GRID, tickfont=dict(size=10), nticks=4)
    fig.update_yaxes(title_text="cases", title_font=dict(size=11), col=1)
    return fig

