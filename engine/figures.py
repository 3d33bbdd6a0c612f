"""Plotly figures shared by the app and the HTML report (one home for every chart).

Three figures, each a plain function of engine data:

- :func:`outcome_space_figure`: TCP (x) against NTCP (y) for every candidate adaptive dose, over
  the reward landscape r = tcp (1 − ntcp) + goal bonus, with the goal regions outlined.
- :func:`dose_response_figure`: TCP, NTCP and reward against the adaptive dose per fraction.
- :func:`population_figure`: where each case sits in the virtual-trial population, feature by
  feature.

Colours come from the Okabe–Ito palette (distinguishable with the common colour-vision
deficiencies); the reward landscape is a light grey scale so the case colours stay readable.
Every string that comes from user input (patient and site ids) is HTML-escaped before it reaches
plotly, which would otherwise interpret a subset of HTML tags in trace names and hover text.
"""

from __future__ import annotations

import hashlib
import html
import re
import textwrap
from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from engine.arte import reward
from engine.protocols import Protocol
from engine.recommend import Recommendation, case_label

__all__ = [
    "CASE_COLOURS",
    "PLOTLY_CONFIG",
    "case_colour",
    "dose_response_figure",
    "outcome_space_figure",
    "population_figure",
]

CASE_COLOURS: tuple[str, ...] = (
    "#0072B2",  # blue
    "#D55E00",  # vermillion
    "#009E73",  # bluish green
    "#CC79A7",  # reddish purple
    "#E69F00",  # orange
    "#56B4E9",  # sky blue
    "#000000",  # black
)
"""Okabe–Ito colours, one per case in display order (cycled beyond seven cases)."""

PLOTLY_CONFIG: dict = {
    "displaylogo": False,
    "responsive": True,
    "scrollZoom": False,
    "modeBarButtonsToRemove": ["select2d", "lasso2d", "autoScale2d"],
    "toImageButtonOptions": {"format": "png", "scale": 2},
}
"""plotly.js config used wherever a figure is rendered: modebar with zoom/reset, no logo link."""

_FONT = dict(family="Helvetica Neue, Helvetica, Arial, sans-serif", size=13, color="#222222")
_GRID = "#e3e3e3"
_GOAL_STYLES = ({"dash": "solid", "width": 2.0}, {"dash": "dash", "width": 1.5})
_VIRTUAL_TRIAL_NOTE = "Virtual-trial reference model — not clinical evidence"


def case_colour(index: int) -> str:
    """Colour of the ``index``-th case shown (same in every figure, the app and the report)."""
    return CASE_COLOURS[index % len(CASE_COLOURS)]


def _safe(text: object) -> str:
    """Escape user text for plotly labels (plotly renders a subset of HTML in them)."""
    return html.escape(str(text), quote=False)


def _fmt_dose(dose_gy: float) -> str:
    return f"{dose_gy:g}"


def _goal_text(goal: str | None, protocol: Protocol) -> str:
    if goal is None:
        return "no goal met"
    for g in protocol.goals:
        if g.name == goal:
            return f"{g.name} goal met"
    return f"{goal} goal met"


def _base_layout(fig: go.Figure, title: str, height: int, revision: str) -> None:
    """Shared look; ``revision`` keeps the user's zoom while it is unchanged (plotly uirevision)."""
    fig.update_layout(
        template="simple_white",
        font=_FONT,
        title=dict(text=title, x=0.0, xanchor="left", y=1.0, yref="container", yanchor="top",
                   pad=dict(t=12, l=4), font=dict(size=16)),
        height=height,
        autosize=True,
        margin=dict(l=70, r=30, t=80, b=60),
        hoverlabel=dict(font_size=13, namelength=-1),
        legend=dict(
            orientation="h", yanchor="top", y=-0.14, xanchor="left", x=0.0,
            font=dict(size=12),
        ),
        uirevision=revision,
    )


def _revision(protocol: Protocol, labels: list[str]) -> str:
    """Same protocol and cases → same revision, so zoom survives e.g. moving the dose."""
    digest = hashlib.sha1("\x00".join(labels).encode()).hexdigest()[:12]
    return f"{protocol.name}-{digest}"


def _nearest_index(doses_gy: Sequence[float], dose_gy: float) -> int:
    return int(np.argmin(np.abs(np.asarray(doses_gy, dtype=float) - float(dose_gy))))


def _axis_grid(n: int, bounds: tuple[float, float] | None, steps: list[float]) -> np.ndarray:
    parts = [np.linspace(0.0, 1.0, n)]
    # Points either side of each goal threshold keep the reward steps sharp in the contour.
    parts += [np.array([t - 1e-4, t + 1e-4]) for t in steps]
    if bounds is not None:
        # A finer grid over the cases' region keeps the landscape smooth when zoomed in.
        parts.append(np.linspace(bounds[0], bounds[1], n // 2))
    grid = np.unique(np.round(np.concatenate(parts), 5))
    return grid[(grid >= 0.0) & (grid <= 1.0)]


def _reward_landscape(
    protocol: Protocol, zoom: tuple[float, float, float, float] | None, n: int = 61
) -> go.Contour:
    tcp = _axis_grid(n, None if zoom is None else zoom[:2], [g.tcp_min for g in protocol.goals])
    ntcp = _axis_grid(n, None if zoom is None else zoom[2:], [g.ntcp_max for g in protocol.goals])
    grid_tcp, grid_ntcp = np.meshgrid(tcp, ntcp)  # [n_ntcp, n_tcp]
    r = reward(grid_tcp, grid_ntcp, protocol.goals).astype(np.float32)  # compact JSON
    r_max = 1.0 + max((g.bonus for g in protocol.goals), default=0.0)
    return go.Contour(
        x=tcp,
        y=ntcp,
        z=r,
        contours=dict(start=0.0, end=r_max, size=0.25, coloring="fill", showlines=False),
        colorscale=[[0.0, "#ffffff"], [1.0, "#a9a9a9"]],
        zmin=0.0,
        zmax=r_max,
        opacity=0.55,
        line=dict(width=0),
        hoverinfo="skip",
        showscale=True,
        colorbar=dict(
            title=dict(text="reward", side="right", font=dict(size=12)),
            thickness=12, len=0.55, y=0.0, yanchor="bottom", tickfont=dict(size=11),
        ),
        name="reward",
        showlegend=False,
    )


def _add_goal_regions(fig: go.Figure, protocol: Protocol) -> None:
    for i, goal in enumerate(protocol.goals):
        style = _GOAL_STYLES[min(i, len(_GOAL_STYLES) - 1)]
        fig.add_shape(
            type="rect", xref="x", yref="y",
            x0=goal.tcp_min, x1=1.0, y0=0.0, y1=goal.ntcp_max,
            line=dict(color="#333333", **style), fillcolor="rgba(0,0,0,0)", layer="above",
        )
        fig.add_annotation(
            x=goal.tcp_min, y=goal.ntcp_max, xref="x", yref="y",
            text=f"{goal.name} goal (+{goal.bonus:g})",
            hovertext=_safe(goal.label),
            showarrow=False, xanchor="left", yanchor="bottom",
            font=dict(size=11, color="#333333"), bgcolor="rgba(255,255,255,0.7)",
        )


def outcome_space_figure(
    recs: list[Recommendation],
    protocol: Protocol,
    *,
    selected_dose_gy: dict[str, float] | None = None,
    zoom: bool | None = None,
) -> go.Figure:
    """TCP against NTCP over the dose grid for each case, on the reward landscape.

    Args:
        recs: one recommendation per case, in display order (colours follow this order).
        protocol: supplies the goals and outcome names.
        selected_dose_gy: dose per fraction to mark with an open circle, keyed by the case label
            (:attr:`Recommendation.label`); the nearest grid dose is marked.
        zoom: show the region around the cases' curves (True) or the whole 0–1 square (False);
            None zooms only when the curves fill less than a tenth of the square (HCC curves sit
            in the high-TCP, low-NTCP corner). Buttons in the figure switch between both views.

    Returns:
        A figure with the reward contour, the goal rectangles, one curve per case (±1 sd error
        bars when the model is an ensemble), the selected dose (open circle) and the recommended
        dose (star, legend entry "recommended: X Gy/fx").
    """
    selected_dose_gy = selected_dose_gy or {}
    bounds = _case_bounds(recs)
    if zoom is None:
        zoom = bounds is not None and (bounds[1] - bounds[0]) * (bounds[3] - bounds[2]) < 0.1
    fig = go.Figure()
    fig.add_trace(_reward_landscape(protocol, bounds))
    _add_goal_regions(fig, protocol)

    for i, rec in enumerate(recs):
        colour = case_colour(i)
        label = _safe(rec.label)
        doses = np.asarray(rec.doses_gy, dtype=float)
        tcp = np.asarray(rec.tcp, dtype=float)
        ntcp = np.asarray(rec.ntcp, dtype=float)
        tcp_sd = np.asarray(rec.tcp_sd, dtype=float)
        ntcp_sd = np.asarray(rec.ntcp_sd, dtype=float)
        goals = [_goal_text(g, protocol) for g in rec.goal]
        custom = np.column_stack([doses, rec.reward, tcp_sd, ntcp_sd, np.asarray(goals, object)])
        has_sd = bool(np.any(tcp_sd > 0) or np.any(ntcp_sd > 0))
        sd_part = " ± %{customdata[2]:.1%}" if has_sd else ""
        sd_part_n = " ± %{customdata[3]:.1%}" if has_sd else ""
        fig.add_trace(
            go.Scatter(
                x=tcp, y=ntcp,
                mode="lines+markers", cliponaxis=False,
                name=f"{label} (dose {_fmt_dose(doses[0])}–{_fmt_dose(doses[-1])} Gy/fx)"
                if len(doses) else label,
                line=dict(color=colour, width=2.5),
                marker=dict(color=colour, size=6),
                error_x=dict(type="data", array=tcp_sd, visible=has_sd, color=colour,
                             thickness=1, width=0),
                error_y=dict(type="data", array=ntcp_sd, visible=has_sd, color=colour,
                             thickness=1, width=0),
                customdata=custom,
                hovertemplate=(
                    f"<b>{label}</b><br>dose %{{customdata[0]:.2f}} Gy/fx<br>"
                    f"TCP %{{x:.1%}}{sd_part}<br>NTCP %{{y:.1%}}{sd_part_n}<br>"
                    "reward %{customdata[1]:.3f} (%{customdata[4]})<extra></extra>"
                ),
            )
        )
        if rec.label in selected_dose_gy and len(doses):
            j = _nearest_index(doses, selected_dose_gy[rec.label])
            fig.add_trace(
                go.Scatter(
                    x=[tcp[j]], y=[ntcp[j]], mode="markers", cliponaxis=False,
                    name=f"{label}: selected {_fmt_dose(doses[j])} Gy/fx",
                    showlegend=False,
                    marker=dict(symbol="circle-open", size=18, color=colour,
                                line=dict(width=3, color=colour)),
                    hovertemplate=(
                        f"<b>{label}</b> selected<br>dose {_fmt_dose(doses[j])} Gy/fx<br>"
                        f"TCP {tcp[j]:.1%}<br>NTCP {ntcp[j]:.1%}<br>"
                        f"reward {rec.reward[j]:.3f}<extra></extra>"
                    ),
                )
            )
        fig.add_trace(
            go.Scatter(
                x=[rec.recommended_tcp], y=[rec.recommended_ntcp], mode="markers",
                cliponaxis=False,
                name=f"recommended: {_fmt_dose(rec.recommended_dose_gy)} Gy/fx",
                marker=dict(symbol="star", size=20, color=colour,
                            line=dict(width=1.5, color="#ffffff")),
                hovertemplate=(
                    f"<b>{label}</b> recommended<br>"
                    f"dose {_fmt_dose(rec.recommended_dose_gy)} Gy/fx<br>"
                    f"TCP {rec.recommended_tcp:.1%}<br>NTCP {rec.recommended_ntcp:.1%}<br>"
                    f"{_goal_text(rec.recommended_goal, protocol)}<extra></extra>"
                ),
            )
        )

    model = _safe(recs[0].model) if recs else "no cases"
    _base_layout(fig, f"Outcome space · {model}", height=580 + 22 * len(recs),
                 revision=_revision(protocol, [r.label for r in recs]))
    fig.update_layout(
        margin=dict(l=80, r=30, t=76, b=70),
        title=dict(subtitle=dict(
            text=f"{_VIRTUAL_TRIAL_NOTE} · ★ recommended dose"
            + (", ○ selected dose" if selected_dose_gy else ""),
            font=dict(size=12, color="#666666"),
        )),
        legend=dict(entrywidth=0.5, entrywidthmode="fraction"),
    )
    full = ([0.0, 1.0], [0.0, 1.0])
    zoomed = full if bounds is None else ([bounds[0], bounds[1]], [bounds[2], bounds[3]])
    x_range, y_range = zoomed if zoom else full
    fig.update_xaxes(
        title_text=f"TCP: probability of {_safe(protocol.target.outcome_label.lower())}",
        range=x_range, tickformat=".0%", nticks=12, showgrid=True, gridcolor=_GRID,
        mirror=True, constrain="domain",
    )
    fig.update_yaxes(
        title_text=f"NTCP: probability of {_safe(_lower_first(protocol.oar.outcome_label))}",
        range=y_range, tickformat=".0%", nticks=12, showgrid=True, gridcolor=_GRID,
        mirror=True,
    )
    if bounds is not None:
        fig.update_layout(
            updatemenus=[dict(
                type="buttons", direction="down", showactive=True, active=1 if zoom else 0,
                x=1.02, xanchor="left", y=1.0, yanchor="top", pad=dict(t=0, l=0),
                font=dict(size=11), bgcolor="#f4f4f4", bordercolor="#bbbbbb",
                buttons=[
                    dict(label="Full 0–100 %", method="relayout",
                         args=[{"xaxis.range": full[0], "yaxis.range": full[1]}]),
                    dict(label="Zoom to cases", method="relayout",
                         args=[{"xaxis.range": zoomed[0], "yaxis.range": zoomed[1]}]),
                ],
            )],
        )
    if not recs:
        fig.add_annotation(
            text="No cases to show", xref="paper", yref="paper", x=0.5, y=0.5,
            showarrow=False, font=dict(size=16, color="#666666"),
        )
    return fig


def _case_bounds(recs: list[Recommendation]) -> tuple[float, float, float, float] | None:
    """Padded (tcp_lo, tcp_hi, ntcp_lo, ntcp_hi) around every curve (±1 sd), inside [0, 1]."""
    if not recs:
        return None
    tcp = np.concatenate([np.asarray(r.tcp) + s * np.asarray(r.tcp_sd) for r in recs
                          for s in (-1.0, 1.0)])
    ntcp = np.concatenate([np.asarray(r.ntcp) + s * np.asarray(r.ntcp_sd) for r in recs
                           for s in (-1.0, 1.0)])
    out = []
    for v in (tcp, ntcp):
        lo, hi = float(np.nanmin(v)), float(np.nanmax(v))
        pad = max(0.08 * (hi - lo), 0.02)
        out += [max(lo - pad, 0.0), min(hi + pad, 1.0)]
    return out[0], out[1], out[2], out[3]


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:] if text[:2] != text[:2].upper() else text


def dose_response_figure(recs: list[Recommendation], protocol: Protocol) -> go.Figure:
    """TCP and NTCP (top) and reward (bottom) against the adaptive dose per fraction.

    TCP is drawn solid, NTCP dashed, in the case's colour; ±1 sd error bars appear when the model
    is an ensemble. The recommended dose of each case is a dotted vertical line across both rows.
    """
    fig = make_subplots(
        rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08, row_heights=[0.62, 0.38],
    )
    for i, rec in enumerate(recs):
        colour = case_colour(i)
        label = _safe(rec.label)
        doses = np.asarray(rec.doses_gy, dtype=float)
        for values, sd, name, dash in (
            (rec.tcp, rec.tcp_sd, "TCP", "solid"),
            (rec.ntcp, rec.ntcp_sd, "NTCP", "dash"),
        ):
            sd_arr = np.asarray(sd, dtype=float)
            has_sd = bool(np.any(sd_arr > 0))
            fig.add_trace(
                go.Scatter(
                    x=doses, y=values, mode="lines", name=f"{label}: {name}",
                    line=dict(color=colour, width=2.5, dash=dash),
                    error_y=dict(type="data", array=sd_arr, visible=has_sd, color=colour,
                                 thickness=1, width=0),
                    hovertemplate=(
                        f"<b>{label}</b><br>dose %{{x:.2f}} Gy/fx<br>{name} %{{y:.1%}}"
                        "<extra></extra>"
                    ),
                ),
                row=1, col=1,
            )
        fig.add_trace(
            go.Scatter(
                x=doses, y=rec.reward, mode="lines+markers", name=f"{label}: reward",
                line=dict(color=colour, width=2),
                marker=dict(size=4, color=colour),
                hovertemplate=(
                    f"<b>{label}</b><br>dose %{{x:.2f}} Gy/fx<br>reward %{{y:.3f}}"
                    "<extra></extra>"
                ),
            ),
            row=2, col=1,
        )
        for row in (1, 2):
            fig.add_vline(
                x=rec.recommended_dose_gy, line=dict(color=colour, width=2, dash="dash"),
                opacity=0.9,
                row=row, col=1,
            )
        grid = protocol.dose_grid()
        where = (rec.recommended_dose_gy - grid[0]) / max(grid[-1] - grid[0], 1e-9)
        anchor = "left" if where < 0.15 else "right" if where > 0.85 else "center"
        fig.add_annotation(
            x=rec.recommended_dose_gy, y=1.0, xref="x", yref="y domain",
            text=f"{label}: recommended {_fmt_dose(rec.recommended_dose_gy)} Gy/fx",
            showarrow=False, yanchor="bottom", xanchor=anchor, yshift=4 + 16 * i,
            font=dict(size=11, color=colour), bgcolor="rgba(255,255,255,0.8)",
        )

    model = _safe(recs[0].model) if recs else "no cases"
    _base_layout(fig, f"Dose response · {model}", height=540 + 22 * len(recs),
                 revision=_revision(protocol, [r.label for r in recs]))
    fig.update_layout(margin=dict(l=80, r=30, t=56 + 16 * len(recs), b=80),
                      legend=dict(y=-0.16, entrywidth=1 / 3, entrywidthmode="fraction"))
    grid = protocol.dose_grid()
    pad = 0.02 * (grid[-1] - grid[0])
    fig.update_xaxes(range=[grid[0] - pad, grid[-1] + pad], showgrid=True, gridcolor=_GRID,
                     mirror=True)
    fig.update_xaxes(title_text="adaptive dose per fraction (Gy/fx)", row=2, col=1)
    fig.update_yaxes(showgrid=True, gridcolor=_GRID, mirror=True)
    fig.update_yaxes(title_text="probability (TCP solid, NTCP dashed)", range=[0, 1.02],
                     tickformat=".0%", row=1, col=1)
    fig.update_yaxes(title_text="reward", rangemode="tozero", row=2, col=1)
    return fig


def _wrap(text: str, width: int = 30) -> str:
    return "<br>".join(textwrap.wrap(text, width=width)) or text


def _feature_title(label: str, unit: str) -> str:
    shown = re.search(rf"\b{re.escape(unit)}\b", label, flags=re.IGNORECASE)
    text = label if shown else f"{label} ({unit})"
    return _wrap(_safe(text), 36)


def _bins(values: np.ndarray, integer: bool, lo: float, hi: float) -> np.ndarray:
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
    labels = [
        case_label(str(row["patient_id"]),
                   int(row["site_id"]) if "site_id" in protocol.id_columns
                   and "site_id" in row and pd.notna(row["site_id"]) else None)
        for _, row in cases.iterrows()
    ] if "patient_id" in cases.columns else []
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
                    color="#bdbdbd", line=dict(color="#ffffff", width=0.5)),
                name="virtual trial population", legendgroup="population",
                showlegend=k == 0,
                customdata=np.column_stack([shown_edges[:-1], shown_edges[1:]]),
                hovertemplate=(
                    "%{customdata[0]:.3g} – %{customdata[1]:.3g} "
                    f"{_safe(feat.unit)}: %{{y}} cases<extra>population</extra>"
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
                    name=_safe(lab), legendgroup=f"case{i}",
                    showlegend=i not in shown_in_legend,
                    hovertemplate=(
                        f"<b>{_safe(lab)}</b><br>{_safe(feat.label)}: {value:.4g} "
                        f"{_safe(feat.unit)}<br>population percentile {pct:.0f}"
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
    _base_layout(fig, "Where the cases sit in the virtual trial population", height,
                 revision=_revision(protocol, labels))
    fig.update_layout(
        bargap=0.02,
        margin=dict(l=50, r=20, t=120, b=40),
        legend=dict(orientation="h", y=1.0 - 44 / height, yanchor="top", yref="container", x=0.0,
                    xanchor="left", title=dict(text="")),
    )
    fig.update_xaxes(showgrid=False, ticks="outside", tickfont=dict(size=10), nticks=5)
    fig.update_yaxes(showgrid=True, gridcolor=_GRID, tickfont=dict(size=10), nticks=4)
    fig.update_yaxes(title_text="cases", title_font=dict(size=11), col=1)
    return fig
