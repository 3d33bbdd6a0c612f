"""Plotly figures shared by the app and the HTML report (one home for every chart).

Each figure is a plain function of engine data:

- :func:`outcome_space_figure`: TCP (x) against NTCP (y) for every candidate adaptive dose, over
  the reward landscape r = tcp (1 − ntcp) + goal bonus, with the goal regions outlined; for an
  ensemble, the 1-sd covariance ellipse of (TCP, NTCP) at a subset of doses (as in ARCliDS
  Fig. S8).
- :func:`dose_response_figure`: TCP, NTCP and reward against the adaptive dose per fraction, with
  a ±1 sd band for an ensemble.
- :func:`population_figure`: where each case sits in the virtual-trial population, feature by
  feature.
- Model review (outcome estimators): :func:`roc_figure` (cross-validated ROC curves),
  :func:`learning_curve_figure` (AUROC against training-trial size with the Bayes ceiling) and
  :func:`architecture_contrast_figure` (dose response of chosen patients per architecture).

Colours come from the Okabe–Ito palette (distinguishable with the common colour-vision
deficiencies); the reward landscape is a light grey scale so the case colours stay readable.
Every string that comes from user input (patient and site ids) is HTML-escaped before it reaches
plotly, which would otherwise interpret a subset of HTML tags in trace names and hover text.
"""

from __future__ import annotations

import hashlib
import html
import itertools
import re
import textwrap
from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from engine.arclids.architectures import ARCH_KEYS, REFERENCE, arch_label
from engine.arclids.arte import reward
from engine.arclids.outcomes import OutcomeCurves
from engine.arclids.recommend import Recommendation
from engine.core.protocols import Protocol
from engine.core.schema import case_labels

__all__ = [
    "CASE_COLOURS",
    "PLOTLY_CONFIG",
    "architecture_contrast_figure",
    "case_colour",
    "covariance_ellipse",
    "dose_response_figure",
    "ellipse_dose_indices",
    "gan_overlay_figure",
    "learning_curve_figure",
    "odm_decisions_figure",
    "odm_rmsd_figure",
    "odm_self_evaluation_figure",
    "outcome_space_figure",
    "population_figure",
    "recommendation_text",
    "roc_figure",
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
_VIRTUAL_TRIAL_NOTE = "Virtual trial (simulated patients) — not clinical evidence"
_MIN_SD = 1e-6
"""Ensemble spread below this (probability units) is treated as none (identical members)."""
ELLIPSE_EVERY = 4
"""Outcome space: a covariance ellipse at every this many grid doses (plus the first and last,
the recommended and the selected dose). At every dose neighbouring ellipses overlap into a
smear; every fourth keeps each one readable while still showing how the spread changes."""

_ARCH_COLOURS = {"glogd": "#0072B2", "single": "#D55E00", "logistic": "#009E73",
                 "reference": "#555555"}
_ARCH_DASH = {"glogd": "solid", "single": "dash", "logistic": "dashdot", "reference": "dot"}


def case_colour(index: int) -> str:
    """Colour of the ``index``-th case shown (same in every figure, the app and the report)."""
    return CASE_COLOURS[index % len(CASE_COLOURS)]


def _safe(text: object) -> str:
    """Escape user text for plotly labels (plotly renders a subset of HTML in them)."""
    return html.escape(str(text), quote=False)


def _fmt_dose(dose_gy: float) -> str:
    return f"{dose_gy:g}"


def _rgba(colour: str, alpha: float) -> str:
    """``#rrggbb`` → ``rgba(r,g,b,alpha)`` (plotly fill colours)."""
    r, g, b = (int(colour[k:k + 2], 16) for k in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha:g})"


def covariance_ellipse(
    mean_x: float,
    mean_y: float,
    var_x: float,
    var_y: float,
    cov_xy: float,
    n_points: int = 40,
    n_sd: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``n_sd`` ellipse of a 2-D normal as a closed polyline (first point = last point).

    The covariance Σ = [[var_x, cov_xy], [cov_xy, var_y]] is eigen-decomposed, Σ = V Λ Vᵀ; the
    ellipse is mean + n_sd · V Λ^½ (cos t, sin t) for t in [0, 2π]. Its semi-axes are n_sd times
    the square roots of the eigenvalues, along the eigenvectors. Eigenvalues below zero (a
    covariance that is not positive semi-definite by rounding) are clipped to zero, so a zero or
    rank-one covariance gives a point or a line segment, never NaN.

    Returns:
        (x, y), each of shape [n_points].
    """
    if n_points < 2:
        raise ValueError(f"n_points must be at least 2, got {n_points}")
    cov = np.array([[var_x, cov_xy], [cov_xy, var_y]], dtype=np.float64)
    cov = np.nan_to_num(cov, nan=0.0, posinf=0.0, neginf=0.0)
    eigenvalues, eigenvectors = np.linalg.eigh(cov)  # ascending, orthonormal columns
    radii = n_sd * np.sqrt(np.clip(eigenvalues, 0.0, None))  # [2]
    t = np.linspace(0.0, 2.0 * np.pi, n_points)
    circle = np.stack([np.cos(t), np.sin(t)])  # [2, n_points]
    points = eigenvectors @ (radii[:, None] * circle)  # [2, n_points]
    points[:, -1] = points[:, 0]  # exactly closed
    return mean_x + points[0], mean_y + points[1]


def ellipse_dose_indices(
    n_doses: int, *, every: int = ELLIPSE_EVERY, extra: Sequence[int] = ()
) -> list[int]:
    """Grid indices that get a covariance ellipse: every ``every``-th dose, the last dose and
    ``extra`` (the recommended and selected doses), sorted and without repeats."""
    if n_doses <= 0:
        return []
    keep = set(range(0, n_doses, max(every, 1))) | {n_doses - 1}
    keep |= {int(j) for j in extra if 0 <= int(j) < n_doses}
    return sorted(keep)


def _has_spread(rec: Recommendation) -> bool:
    """An ensemble whose members disagree somewhere (identical members have no spread)."""
    if rec.n_members < 2:
        return False
    return bool(np.nanmax(np.concatenate([np.asarray(rec.tcp_sd, dtype=float),
                                          np.asarray(rec.ntcp_sd, dtype=float)]),
                          initial=0.0) > _MIN_SD)


def _ellipse_trace(
    rec: Recommendation, indices: list[int], colour: str, group: str, *, marked: bool = False
) -> go.Scatter:
    """1-sd (TCP, NTCP) ellipses of one case at ``indices``, one trace (None between rings).

    ``marked`` rings (recommended and selected dose) are drawn stronger than the faint rings
    along the curve. Rings are not clipped to 0–1 here (that would flatten them); the axes clip.
    """
    xs: list[float | None] = []
    ys: list[float | None] = []
    for j in indices:
        x, y = covariance_ellipse(
            rec.tcp[j], rec.ntcp[j], rec.tcp_sd[j] ** 2, rec.ntcp_sd[j] ** 2,
            rec.tcp_ntcp_cov[j],
        )
        xs += [*x.tolist(), None]
        ys += [*y.tolist(), None]
    return go.Scatter(
        x=xs, y=ys, mode="lines", cliponaxis=True, connectgaps=False,
        name=f"{_safe(rec.label)}: ±1 sd ellipses" + (" (marked doses)" if marked else ""),
        legendgroup=group, showlegend=False,
        line=dict(color=_rgba(colour, 0.9 if marked else 0.5), width=1.8 if marked else 1.0,
                  dash="solid"),
        fill="toself", fillcolor=_rgba(colour, 0.08 if marked else 0.035),
        hoverinfo="skip",
        meta="ellipse",
    )


def _model_line(recs: list[Recommendation]) -> str:
    """"model version … · N ensemble members" for subtitles (first case's model)."""
    if not recs:
        return ""
    rec = recs[0]
    members = (f" · ensemble of {rec.n_members} members" if rec.n_members > 1 else "")
    return f"model version {_safe(rec.model_version)}{members}"


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


def _revision(protocol: Protocol, labels: list[str], model_version: str = "") -> str:
    """Same protocol, cases and model → same revision, so zoom survives e.g. moving the dose
    (another model redraws the full view: its curves may lie elsewhere)."""
    digest = hashlib.sha1("\x00".join([model_version, *labels]).encode()).hexdigest()[:12]
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


def recommendation_text(rec: Recommendation, *, q: bool = True) -> str:
    """"3.12 ± 0.05 Gy/fx (q 2.71)" for an ODM serving the members' mean dose, "3.20 Gy/fx
    (members 3.12 ± 0.05, q 2.71)" for one serving the best mean-q grid dose, "3.2 Gy/fx"
    without an ODM."""
    if rec.recommended_dose_sem_gy is None:
        return f"{_fmt_dose(rec.recommended_dose_gy)} Gy/fx"
    if rec.odm_serving_rule == "mean-q" and rec.member_mean_dose_gy is not None:
        q_text = "" if rec.q_value is None or not q else f", q {rec.q_value:.2f}"
        return (f"{rec.recommended_dose_gy:.2f} Gy/fx (members {rec.member_mean_dose_gy:.2f} ± "
                f"{rec.recommended_dose_sem_gy:.2f}{q_text})")
    q_text = "" if rec.q_value is None or not q else f" (q {rec.q_value:.2f})"
    return f"{rec.recommended_dose_gy:.2f} ± {rec.recommended_dose_sem_gy:.2f} Gy/fx{q_text}"


def _recommender_text(rec: Recommendation) -> str:
    if rec.recommender == "odm":
        return (f"Double-DQN ensemble of {len(rec.member_doses_gy or [])} members; exact "
                f"reward argmax {_fmt_dose(rec.exact_argmax_dose_gy)} Gy/fx")
    return "exact reward argmax (no decision maker served)"


def _sem_segment(rec: Recommendation, colour: str, group: str) -> go.Scatter:
    """The curve between recommended dose − SEM and + SEM, drawn as a thick translucent band."""
    doses = np.asarray(rec.doses_gy, dtype=float)
    lo = max(rec.recommended_dose_gy - rec.recommended_dose_sem_gy, doses[0])
    hi = min(rec.recommended_dose_gy + rec.recommended_dose_sem_gy, doses[-1])
    along = np.linspace(lo, hi, 15)
    tcp = np.interp(along, doses, np.asarray(rec.tcp, dtype=float))
    ntcp = np.interp(along, doses, np.asarray(rec.ntcp, dtype=float))
    return go.Scatter(
        x=tcp, y=ntcp, mode="lines", cliponaxis=False, legendgroup=group, showlegend=False,
        name=f"{_safe(rec.label)}: recommended dose ± SEM",
        line=dict(color=_rgba(colour, 0.35), width=12), meta="sem",
        hovertemplate=(f"<b>{_safe(rec.label)}</b> recommended dose ± SEM<br>"
                       f"{lo:.2f}–{hi:.2f} Gy/fx<extra></extra>"),
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
        A figure with the reward contour, the goal rectangles, one curve per case, the selected
        dose (open circle) and the recommended dose (star, legend entry "recommended: X Gy/fx").
        When the model is an ensemble whose members disagree, each case also gets its 1-sd
        covariance ellipses of (TCP, NTCP) (``meta="ellipse"``, in the case's legend group):
        faint at every :data:`ELLIPSE_EVERY`-th dose and the last, bold at the recommended and
        the selected dose (two traces). The ellipses replace error bars (they show the same
        ±1 sd along each axis, plus how TCP and NTCP move together). The hover gives the sd at
        every dose.
    """
    selected_dose_gy = selected_dose_gy or {}
    bounds = _case_bounds(recs)
    if zoom is None:
        zoom = bounds is not None and (bounds[1] - bounds[0]) * (bounds[3] - bounds[2]) < 0.1
    fig = go.Figure()
    fig.add_trace(_reward_landscape(protocol, bounds))
    _add_goal_regions(fig, protocol)

    any_ellipse = False
    for i, rec in enumerate(recs):
        colour = case_colour(i)
        label = _safe(rec.label)
        group = f"case{i}"
        doses = np.asarray(rec.doses_gy, dtype=float)
        tcp = np.asarray(rec.tcp, dtype=float)
        ntcp = np.asarray(rec.ntcp, dtype=float)
        tcp_sd = np.asarray(rec.tcp_sd, dtype=float)
        ntcp_sd = np.asarray(rec.ntcp_sd, dtype=float)
        goals = [protocol.goal_met_text(g) for g in rec.goal]
        custom = np.column_stack([doses, rec.reward, tcp_sd, ntcp_sd, np.asarray(goals, object)])
        has_sd = _has_spread(rec)
        sd_part = " ± %{customdata[2]:.1%}" if has_sd else ""
        sd_part_n = " ± %{customdata[3]:.1%}" if has_sd else ""
        selected_j = (_nearest_index(doses, selected_dose_gy[rec.label])
                      if rec.label in selected_dose_gy and len(doses) else None)
        if has_sd and len(doses):
            marked = {_nearest_index(doses, rec.recommended_dose_gy)}
            if selected_j is not None:
                marked.add(selected_j)
            faint = [j for j in ellipse_dose_indices(len(doses)) if j not in marked]
            if faint:
                fig.add_trace(_ellipse_trace(rec, faint, colour, group))
            fig.add_trace(_ellipse_trace(rec, sorted(marked), colour, group, marked=True))
            any_ellipse = True
        fig.add_trace(
            go.Scatter(
                x=tcp, y=ntcp,
                mode="lines+markers", cliponaxis=False,
                name=f"{label} (dose {_fmt_dose(doses[0])}–{_fmt_dose(doses[-1])} Gy/fx)"
                if len(doses) else label,
                legendgroup=group,
                line=dict(color=colour, width=2.5),
                marker=dict(color=colour, size=6),
                customdata=custom,
                hovertemplate=(
                    f"<b>{label}</b><br>dose %{{customdata[0]:.2f}} Gy/fx<br>"
                    f"TCP %{{x:.1%}}{sd_part}<br>NTCP %{{y:.1%}}{sd_part_n}<br>"
                    "reward %{customdata[1]:.3f} (%{customdata[4]})<extra></extra>"
                ),
            )
        )
        if selected_j is not None:
            j = selected_j
            fig.add_trace(
                go.Scatter(
                    x=[tcp[j]], y=[ntcp[j]], mode="markers", cliponaxis=False,
                    name=f"{label}: selected {_fmt_dose(doses[j])} Gy/fx",
                    legendgroup=group, showlegend=False,
                    marker=dict(symbol="circle-open", size=18, color=colour,
                                line=dict(width=3, color=colour)),
                    hovertemplate=(
                        f"<b>{label}</b> selected<br>dose {_fmt_dose(doses[j])} Gy/fx<br>"
                        f"TCP {tcp[j]:.1%}<br>NTCP {ntcp[j]:.1%}<br>"
                        f"reward {rec.reward[j]:.3f}<extra></extra>"
                    ),
                )
            )
        if rec.recommended_dose_sem_gy and len(doses) > 1:
            fig.add_trace(_sem_segment(rec, colour, group))
        if rec.recommender == "odm" and len(doses):
            j = _nearest_index(doses, rec.exact_argmax_dose_gy)
            fig.add_trace(
                go.Scatter(
                    x=[tcp[j]], y=[ntcp[j]], mode="markers", cliponaxis=False,
                    name=f"{label}: exact reward argmax {_fmt_dose(doses[j])} Gy/fx",
                    legendgroup=group, showlegend=False, meta="exact-argmax",
                    marker=dict(symbol="diamond-open", size=13, color=colour,
                                line=dict(width=2, color=colour)),
                    hovertemplate=(
                        f"<b>{label}</b> exact reward argmax<br>"
                        f"dose {_fmt_dose(doses[j])} Gy/fx<br>TCP {tcp[j]:.1%}<br>"
                        f"NTCP {ntcp[j]:.1%}<br>reward {rec.reward[j]:.3f}<extra></extra>"
                    ),
                )
            )
        fig.add_trace(
            go.Scatter(
                x=[rec.recommended_tcp], y=[rec.recommended_ntcp], mode="markers",
                cliponaxis=False,
                name=f"recommended: {recommendation_text(rec, q=False)}",
                legendgroup=group,
                marker=dict(symbol="star", size=20, color=colour,
                            line=dict(width=1.5, color="#ffffff")),
                hovertemplate=(
                    f"<b>{label}</b> recommended<br>"
                    f"dose {recommendation_text(rec)}<br>"
                    f"TCP {rec.recommended_tcp:.1%}<br>NTCP {rec.recommended_ntcp:.1%}<br>"
                    f"{protocol.goal_met_text(rec.recommended_goal)}<br>"
                    f"{_safe(_recommender_text(rec))}<extra></extra>"
                ),
            )
        )

    model = _safe(recs[0].model) if recs else "no cases"
    _base_layout(fig, f"Outcome space · {model}", height=600 + 22 * len(recs),
                 revision=_revision(protocol, [r.label for r in recs],
                                    recs[0].model_version if recs else ""))
    odm_marks = any(r.recommender == "odm" for r in recs)
    marks = ("★ recommended dose (band: ± SEM), ◇ exact argmax" if odm_marks
             else "★ recommended dose") + (", ○ selected" if selected_dose_gy else "")
    if any_ellipse:
        marks += (f" · ellipses: ensemble ±1 sd at every {ELLIPSE_EVERY}th dose"
                  + ("" if odm_marks else ", bold at the marked doses"))
    subtitle = " · ".join(p for p in (_model_line(recs), _VIRTUAL_TRIAL_NOTE) if p)
    fig.update_layout(
        margin=dict(l=80, r=30, t=96, b=70),
        title=dict(subtitle=dict(
            text=f"{subtitle}<br>{marks}", font=dict(size=12, color="#666666"),
        )),
        # One legend block per case, side by side: its curve and its star share a legend group,
        # so clicking the case hides the curve, ellipses, star and circle together.
        legend=dict(entrywidth=190, entrywidthmode="pixels", tracegroupgap=0),
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

    TCP is drawn solid, NTCP dashed, in the case's colour. When the model is an ensemble whose
    members disagree, a semi-transparent ±1 sd band (mean − sd to mean + sd, clipped to 0–1;
    one ``fill="toself"`` trace, ``meta="band"``, in the case's legend group) surrounds each
    mean curve. The recommended dose of each case is a dashed vertical line across both rows.
    """
    fig = make_subplots(
        rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08, row_heights=[0.62, 0.38],
    )
    any_band = False
    for i, rec in enumerate(recs):
        colour = case_colour(i)
        label = _safe(rec.label)
        group = f"case{i}"
        doses = np.asarray(rec.doses_gy, dtype=float)
        has_sd = _has_spread(rec)
        for values, sd, name, dash in (
            (rec.tcp, rec.tcp_sd, "TCP", "solid"),
            (rec.ntcp, rec.ntcp_sd, "NTCP", "dash"),
        ):
            mean = np.asarray(values, dtype=float)
            sd_arr = np.asarray(sd, dtype=float)
            if has_sd:
                lower = np.clip(mean - sd_arr, 0.0, 1.0)
                upper = np.clip(mean + sd_arr, 0.0, 1.0)
                fig.add_trace(
                    go.Scatter(
                        x=np.concatenate([doses, doses[::-1]]),
                        y=np.concatenate([upper, lower[::-1]]),
                        mode="lines", fill="toself",
                        fillcolor=_rgba(colour, 0.16 if name == "TCP" else 0.10),
                        line=dict(width=0, color=colour),
                        name=f"{label}: {name} ±1 sd", legendgroup=group, showlegend=False,
                        hoverinfo="skip", meta="band",
                    ),
                    row=1, col=1,
                )
                any_band = True
            sd_hover = " ± %{customdata:.1%}" if has_sd else ""
            fig.add_trace(
                go.Scatter(
                    x=doses, y=mean, mode="lines", name=f"{label}: {name}",
                    legendgroup=group,
                    line=dict(color=colour, width=2.5, dash=dash),
                    customdata=sd_arr,
                    hovertemplate=(
                        f"<b>{label}</b><br>dose %{{x:.2f}} Gy/fx<br>{name} %{{y:.1%}}"
                        f"{sd_hover}<extra></extra>"
                    ),
                ),
                row=1, col=1,
            )
        fig.add_trace(
            go.Scatter(
                x=doses, y=rec.reward, mode="lines+markers", name=f"{label}: reward",
                legendgroup=group,
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
            if rec.recommended_dose_sem_gy:
                fig.add_vrect(
                    x0=rec.recommended_dose_gy - rec.recommended_dose_sem_gy,
                    x1=rec.recommended_dose_gy + rec.recommended_dose_sem_gy,
                    fillcolor=_rgba(colour, 0.15), line_width=0, layer="below",
                    row=row, col=1,
                )
            fig.add_vline(
                x=rec.recommended_dose_gy, line=dict(color=colour, width=2, dash="dash"),
                opacity=0.9,
                row=row, col=1,
            )
        if rec.recommender == "odm":
            doses_arr = np.asarray(rec.doses_gy, dtype=float)
            j = _nearest_index(doses_arr, rec.exact_argmax_dose_gy)
            fig.add_trace(
                go.Scatter(
                    x=[doses_arr[j]], y=[rec.reward[j]], mode="markers",
                    name=f"{label}: exact reward argmax", legendgroup=group, showlegend=False,
                    marker=dict(symbol="diamond-open", size=12, color=colour,
                                line=dict(width=2, color=colour)),
                    meta="exact-argmax",
                    hovertemplate=(f"<b>{label}</b> exact reward argmax<br>"
                                   f"dose {_fmt_dose(doses_arr[j])} Gy/fx<br>"
                                   f"reward {rec.reward[j]:.3f}<extra></extra>"),
                ),
                row=2, col=1,
            )
        grid = protocol.dose_grid()
        where = (rec.recommended_dose_gy - grid[0]) / max(grid[-1] - grid[0], 1e-9)
        anchor = "left" if where < 0.15 else "right" if where > 0.85 else "center"
        fig.add_annotation(
            x=rec.recommended_dose_gy, y=1.0, xref="x", yref="y domain",
            text=f"{label}: recommended {recommendation_text(rec)}",
            showarrow=False, yanchor="bottom", xanchor=anchor, yshift=4 + 16 * i,
            font=dict(size=11, color=colour), bgcolor="rgba(255,255,255,0.8)",
        )

    model = _safe(recs[0].model) if recs else "no cases"
    _base_layout(fig, f"Dose response · {model}", height=560 + 22 * len(recs),
                 revision=_revision(protocol, [r.label for r in recs],
                                    recs[0].model_version if recs else ""))
    bands = " · shaded: ensemble ±1 sd" if any_band else ""
    if any(r.recommended_dose_sem_gy for r in recs):
        bands += " · band: recommended ± SEM · ◇ exact argmax"
    subtitle = " · ".join(p for p in (_model_line(recs), _VIRTUAL_TRIAL_NOTE) if p) + bands
    fig.update_layout(margin=dict(l=80, r=30, t=76 + 16 * len(recs), b=80),
                      title=dict(subtitle=dict(text=subtitle,
                                               font=dict(size=12, color="#666666"))),
                      legend=dict(y=-0.16, entrywidth=210, entrywidthmode="pixels",
                                  tracegroupgap=6))
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


# --------------------------------------------------------------------------------------------
# Model review: cross-validated ROC curves, learning curve, architecture contrast


def _arch_order(archs: Sequence[str]) -> list[str]:
    order = (*ARCH_KEYS, REFERENCE)
    return [a for a in order if a in archs] + [a for a in archs if a not in order]


def _arch_label(arch: str) -> str:
    return _safe(arch_label(arch))


def _arch_colour(arch: str, k: int) -> str:
    return _ARCH_COLOURS.get(arch, CASE_COLOURS[(k + 3) % len(CASE_COLOURS)])


def _outcome_panels(protocol: Protocol) -> list[tuple[str, str, str]]:
    """(outcome column, "TCP"/"NTCP", readable outcome) for the target, then the organ at risk."""
    return [
        (protocol.target.outcome, "TCP", _safe(protocol.target.outcome_label)),
        (protocol.oar.outcome, "NTCP", _safe(protocol.oar.outcome_label)),
    ]


def _mean_roc(splits: Sequence[dict], grid: np.ndarray) -> np.ndarray | None:
    """Mean true-positive rate of the splits' ROC curves on a common false-positive-rate grid."""
    curves = []
    for split in splits:
        fpr = np.asarray(split.get("fpr", []), dtype=float)
        tpr = np.asarray(split.get("tpr", []), dtype=float)
        if fpr.size < 2 or fpr.size != tpr.size:
            continue
        order = np.lexsort((tpr, fpr))  # by fpr, ties by tpr: the step's top is kept last
        curves.append(np.interp(grid, fpr[order], tpr[order]))
    if not curves:
        return None
    mean = np.mean(curves, axis=0)
    mean[0] = 0.0 if grid[0] == 0.0 else mean[0]
    return mean


def roc_figure(payload: dict, protocol: Protocol, *, n_grid: int = 101) -> go.Figure:
    """Cross-validated ROC curves of every architecture, TCP outcome left, NTCP outcome right.

    Args:
        payload: one protocol's evaluation payload (``payload["architectures"][arch][outcome]``
            with ``roc``: one ``{"fpr": [...], "tpr": [...]}`` per CV split, ``cv_auroc_mean``
            and ``cv_auroc_sd``), as saved by ``artds train rtoe``.
        protocol: names the outcomes.
        n_grid: points of the common false-positive-rate grid of the mean curve.

    Thin lines are the single splits (``meta="split"``), the thick line their mean on the common
    grid (vertical averaging, ``meta="mean"``); each panel has its own legend below it giving
    the splits' AUROC mean ± sd per architecture. The dotted diagonal is chance.
    """
    archs = payload.get("architectures") or {}
    panels = _outcome_panels(protocol)
    fig = make_subplots(
        rows=1, cols=2, horizontal_spacing=0.12,
        subplot_titles=[f"{short}: {label}" for _, short, label in panels],
    )
    grid = np.linspace(0.0, 1.0, n_grid)
    scored: set[int] = set()
    for col, (outcome, short, _) in enumerate(panels, start=1):
        legend = "legend" if col == 1 else "legend2"
        for k, arch in enumerate(_arch_order(list(archs))):
            result = (archs.get(arch) or {}).get(outcome)
            if not result:
                continue
            colour = _arch_colour(arch, k)
            splits = result.get("roc") or []
            xs: list[float | None] = []
            ys: list[float | None] = []
            for split in splits:
                xs += [*map(float, split.get("fpr", [])), None]
                ys += [*map(float, split.get("tpr", [])), None]
            group = f"{arch}-{short}"
            if xs:
                fig.add_trace(
                    go.Scatter(x=xs, y=ys, mode="lines", connectgaps=False,
                               name=f"{_arch_label(arch)} · {short}: single splits",
                               line=dict(color=_rgba(colour, 0.3), width=1),
                               legend=legend, legendgroup=group, showlegend=False,
                               hoverinfo="skip", meta="split"),
                    row=1, col=col,
                )
            mean_tpr = _mean_roc(splits, grid)
            if mean_tpr is None:
                continue
            scored.add(col)
            m, sd = result.get("cv_auroc_mean"), result.get("cv_auroc_sd")
            auroc = ("AUROC n/a" if m is None else
                     f"AUROC {m:.2f}" + ("" if sd is None else f" ± {sd:.2f}"))
            fig.add_trace(
                go.Scatter(x=grid, y=mean_tpr, mode="lines",
                           name=f"{_arch_label(arch)}: {auroc}",
                           line=dict(color=colour, width=3, dash=_ARCH_DASH.get(arch, "solid")),
                           legend=legend, legendgroup=group, legendrank=100 + k, meta="mean",
                           hovertemplate=(
                               f"<b>{_arch_label(arch)}</b> · {short}<br>"
                               "FPR %{x:.2f}<br>mean TPR %{y:.2f}<extra></extra>"
                           )),
                row=1, col=col,
            )
        fig.add_trace(
            go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance (AUROC 0.5)",
                       line=dict(color="#999999", dash="dot", width=1.2),
                       legend=legend, legendrank=2000, hoverinfo="skip"),
            row=1, col=col,
        )
    n_splits = max((len((archs.get(a) or {}).get(o, {}).get("roc") or [])
                    for a in archs for o, _, _ in panels), default=0)
    _base_layout(fig, f"Cross-validated ROC curves · {_safe(protocol.label)}", 600,
                 revision=f"roc-{protocol.name}")
    legend_style = dict(orientation="v", yanchor="top", y=-0.16, xanchor="left",
                        font=dict(size=12), bgcolor="rgba(255,255,255,0)")
    fig.update_layout(
        margin=dict(l=70, r=30, t=96, b=30),
        title=dict(subtitle=dict(
            text=f"thin: each of {n_splits} stratified 80/20 splits · thick: their mean · "
                 "virtual trial (simulated patients), not clinical evidence",
            font=dict(size=12, color="#666666"))),
        showlegend=True,
        legend=dict(legend_style, x=0.0),
        legend2=dict(legend_style, x=0.56),
    )
    for col, (outcome, _, _) in enumerate(panels, start=1):
        if col in scored or not archs:
            continue
        counted = [r for r in ((archs.get(a) or {}).get(outcome) or {} for a in archs)
                   if r.get("n_cases")]
        n_cases = int(counted[0]["n_cases"]) if counted else 0
        n_events = int(counted[0].get("n_events") or 0) if counted else 0
        minority = min(n_events, n_cases - n_events)
        fig.add_annotation(
            text=("No ROC curve: no validation split held both outcomes"
                  + (f"<br>(the smaller class has {minority} of {n_cases} cases)"
                     if n_cases else "")),
            xref=f"x{col if col > 1 else ''} domain", yref=f"y{col if col > 1 else ''} domain",
            x=0.5, y=0.62, showarrow=False, font=dict(size=13, color="#555555"),
            bgcolor="rgba(255,255,255,0.85)",
        )
    fig.update_annotations(font=dict(size=13))
    fig.update_xaxes(range=[0, 1], title_text="false positive rate", showgrid=True,
                     gridcolor=_GRID, mirror=True, tickformat=".1f", dtick=0.2)
    fig.update_yaxes(range=[0, 1.01], showgrid=True, gridcolor=_GRID, mirror=True,
                     tickformat=".1f", dtick=0.2)
    fig.update_yaxes(title_text="true positive rate", col=1)
    if not archs:
        fig.add_annotation(text="No evaluation to show", xref="paper", yref="paper", x=0.5,
                           y=0.5, showarrow=False, font=dict(size=16, color="#666666"))
    return fig


def learning_curve_figure(
    rows: Sequence[dict], protocol: Protocol | None = None
) -> go.Figure:
    """AUROC on a fresh virtual cohort against the training-trial size, per architecture.

    Args:
        rows: ``{arch, outcome, n_train_patients, auroc_vs_truth, auroc_bayes_ceiling, ...}``
            (the evaluation's ``learning_curve``).
        protocol: when given, outcome columns are shown as "TCP: local control" etc.

    One panel per outcome; the dashed grey line is the Bayes ceiling (the AUROC of the true
    probabilities on the same draws), which no model can beat on average.
    """
    names: dict[str, str] = {}
    if protocol is not None:
        for outcome, short, label in _outcome_panels(protocol):
            names[outcome] = f"{short}: {label}"
            names[short.lower()] = f"{short}: {label}"
    outcomes = list(dict.fromkeys(str(r.get("outcome")) for r in rows))
    if protocol is not None:
        order = [o for o, _, _ in _outcome_panels(protocol)] + ["tcp", "ntcp"]
        outcomes.sort(key=lambda o: order.index(o) if o in order else len(order))
    fig = make_subplots(
        rows=1, cols=max(len(outcomes), 1), horizontal_spacing=0.1,
        subplot_titles=[names.get(o, _safe(o)) for o in outcomes] or [""],
    )
    archs = _arch_order(list(dict.fromkeys(str(r.get("arch")) for r in rows)))
    sizes = sorted({int(r["n_train_patients"]) for r in rows if r.get("n_train_patients")})
    for col, outcome in enumerate(outcomes, start=1):
        mine = [r for r in rows if str(r.get("outcome")) == outcome]
        ceiling: dict[int, list[float]] = {}
        for r in mine:
            if r.get("auroc_bayes_ceiling") is not None:
                ceiling.setdefault(int(r["n_train_patients"]), []).append(
                    float(r["auroc_bayes_ceiling"]))
        if ceiling:
            xs = sorted(ceiling)
            fig.add_trace(
                go.Scatter(x=xs, y=[float(np.mean(ceiling[x])) for x in xs], mode="lines",
                           name="Bayes ceiling (true probabilities)",
                           line=dict(color="#777777", dash="dash", width=1.8),
                           legendgroup="ceiling", showlegend=col == 1, legendrank=2000,
                           hovertemplate="Bayes ceiling %{y:.3f}<extra></extra>"),
                row=1, col=col,
            )
        for k, arch in enumerate(archs):
            points = sorted((int(r["n_train_patients"]), r.get("auroc_vs_truth"))
                            for r in mine if str(r.get("arch")) == arch)
            points = [(n, float(a)) for n, a in points if a is not None]
            if not points:
                continue
            colour = _arch_colour(arch, k)
            fig.add_trace(
                go.Scatter(
                    x=[n for n, _ in points], y=[a for _, a in points], mode="lines+markers",
                    name=_arch_label(arch), legendgroup=arch, showlegend=col == 1,
                    legendrank=100 + k,
                    line=dict(color=colour, width=2.4, dash=_ARCH_DASH.get(arch, "solid")),
                    marker=dict(color=colour, size=8),
                    hovertemplate=(f"<b>{_arch_label(arch)}</b><br>%{{x}} training patients"
                                   "<br>AUROC %{y:.3f}<extra></extra>"),
                ),
                row=1, col=col,
            )
    _base_layout(fig, "Learning curve: AUROC on a fresh virtual cohort", 460,
                 revision="learning-curve")
    fig.update_layout(
        margin=dict(l=70, r=30, t=96, b=40),
        title=dict(subtitle=dict(
            text="one model per size, each trained on its own virtual trial · virtual trial "
                 "(simulated patients), not clinical evidence",
            font=dict(size=12, color="#666666"))),
        legend=dict(y=-0.2),
    )
    fig.update_annotations(font=dict(size=13))
    fig.update_xaxes(type="log", title_text="patients in the training trial", showgrid=True,
                     gridcolor=_GRID, mirror=True,
                     **({"tickvals": sizes, "ticktext": [str(n) for n in sizes]}
                        if sizes else {}))
    fig.update_yaxes(title_text="AUROC", showgrid=True, gridcolor=_GRID, mirror=True,
                     tickformat=".2f")
    if not rows:
        fig.add_annotation(text="No learning curve in this evaluation", xref="paper",
                           yref="paper", x=0.5, y=0.5, showarrow=False,
                           font=dict(size=16, color="#666666"))
    return fig


def _falls(mean: np.ndarray, tol: float = 1e-6) -> np.ndarray:
    """Indices j ≥ 1 where the curve drops from dose j−1 to dose j by more than ``tol``."""
    return np.flatnonzero(np.diff(mean) < -tol) + 1


def architecture_contrast_figure(
    cases_labels: Sequence[str],
    curves_by_arch: dict[str, OutcomeCurves],
    protocol: Protocol,
) -> go.Figure:
    """TCP and NTCP against dose for chosen patients, one line style per architecture.

    Args:
        cases_labels: the patients' labels, in the order of the curves' case axis.
        curves_by_arch: ensemble curves per architecture key (``"glogd"``, ``"single"``,
            ``"logistic"``, ``"reference"`` for the virtual-trial truth), each [M, P, D].
        protocol: names the outcomes and the dose axis.

    Colour is the case (as everywhere else), line style the architecture; the ensemble mean is
    drawn (``meta`` = the architecture key). Every dose step over which a mean curve falls
    although the dose rose is overdrawn with a broad translucent highlight (``meta="falls"``):
    the Single-GNN may do this, GLoGD-GNN is monotone in dose by construction. The subtitle
    counts the cases with such a fall per architecture and outcome. The legend has one key per
    architecture (clicking it hides that architecture) and one per case.
    """
    panels = _outcome_panels(protocol)
    fig = make_subplots(
        rows=1, cols=2, horizontal_spacing=0.08, shared_xaxes=True,
        subplot_titles=[f"{short}: {label}" for _, short, label in panels],
    )
    archs = _arch_order(list(curves_by_arch))
    n_cases = len(cases_labels)
    counts: dict[tuple[str, str], int] = {}
    for k, arch in enumerate(archs):
        curves = curves_by_arch[arch]
        means = curves.mean()  # (tcp [P, D], ntcp [P, D])
        doses = np.asarray(curves.doses_gy, dtype=float)
        width = 2.6 if arch == "glogd" else 2.0
        dash = _ARCH_DASH.get(arch, "solid")
        # Legend key of the architecture: a grey line in its style (the group's only entry).
        fig.add_trace(go.Scatter(
            x=[None], y=[None], mode="lines", name=_arch_label(arch), legendgroup=arch,
            legendrank=100 + k, line=dict(color="#444444", width=width, dash=dash),
            hoverinfo="skip"))
        for col, ((_, short, _), mean_all) in enumerate(zip(panels, means, strict=True),
                                                        start=1):
            n_shown = min(len(cases_labels), mean_all.shape[0])
            # Falling steps first, so the highlight lies under the curves.
            seg_x: list[float | None] = []
            seg_y: list[float | None] = []
            n_falling = 0
            for i in range(n_shown):
                mean = np.asarray(mean_all[i], dtype=float)
                falls = _falls(mean)
                if falls.size:
                    n_falling += 1
                    for j in falls:
                        seg_x += [float(doses[j - 1]), float(doses[j]), None]
                        seg_y += [float(mean[j - 1]), float(mean[j]), None]
            counts[(arch, short)] = n_falling
            if seg_x:
                fig.add_trace(
                    go.Scatter(
                        x=seg_x, y=seg_y, mode="lines", connectgaps=False,
                        name=f"{_arch_label(arch)}: falls with dose",
                        legendgroup=f"falls-{arch}", legendrank=1000 + k,
                        showlegend=not any(t.legendgroup == f"falls-{arch}" and t.showlegend
                                           for t in fig.data),
                        # Okabe–Ito yellow, a highlighter no case colour uses.
                        line=dict(color="rgba(240,228,66,0.8)", width=11),
                        meta="falls", hoverinfo="skip",
                    ),
                    row=1, col=col,
                )
            for i in range(n_shown):
                label = cases_labels[i]
                colour = case_colour(i)
                fig.add_trace(
                    go.Scatter(
                        x=doses, y=np.asarray(mean_all[i], dtype=float), mode="lines",
                        name=f"{_safe(label)} · {_arch_label(arch)}",
                        legendgroup=arch, showlegend=False,
                        line=dict(color=colour, width=width, dash=dash),
                        meta=arch,
                        hovertemplate=(
                            f"<b>{_safe(label)}</b> · {_arch_label(arch)}<br>"
                            f"dose %{{x:.2f}} Gy/fx<br>{short} %{{y:.1%}}<extra></extra>"
                        ),
                    ),
                    row=1, col=col,
                )
    for i, label in enumerate(cases_labels):
        fig.add_trace(go.Scatter(
            x=[None], y=[None], mode="lines", name=_safe(label), legendgroup=f"case{i}",
            legendrank=500 + i, line=dict(color=case_colour(i), width=6), hoverinfo="skip"))
    parts = []
    for arch in archs:
        if arch == "reference":
            continue
        tcp_n, ntcp_n = counts.get((arch, "TCP"), 0), counts.get((arch, "NTCP"), 0)
        parts.append(f"{_arch_label(arch)} {tcp_n}/{n_cases} (TCP), {ntcp_n}/{n_cases} (NTCP)")
    summary = ("cases whose mean curve falls with dose: " + "; ".join(parts)) if parts else ""
    _base_layout(fig, "Dose response by architecture (ensemble means)", 560,
                 revision=f"contrast-{_revision(protocol, list(cases_labels))}")
    fig.update_layout(
        margin=dict(l=70, r=30, t=100, b=40),
        title=dict(subtitle=dict(
            text=f"colour: case · line style: architecture · {summary}<br>"
                 f"{_VIRTUAL_TRIAL_NOTE}",
            font=dict(size=12, color="#666666"))),
        legend=dict(y=-0.18, entrywidth=150, entrywidthmode="pixels"),
    )
    fig.update_annotations(font=dict(size=13))
    fig.update_xaxes(title_text="adaptive dose per fraction (Gy/fx)", showgrid=True,
                     gridcolor=_GRID, mirror=True)
    fig.update_yaxes(range=[0, 1.02], tickformat=".0%", showgrid=True, gridcolor=_GRID,
                     mirror=True)
    fig.update_yaxes(title_text="probability", col=1)
    if not cases_labels or not curves_by_arch:
        fig.add_annotation(text="No cases to show", xref="paper", yref="paper", x=0.5, y=0.5,
                           showarrow=False, font=dict(size=16, color="#666666"))
    return fig


# --------------------------------------------------------------------------------------------
# Model review: synthetic patients (WGAN-GP) and the decision makers (Double DQN)

_ODM_GROUPS = (("overall", "all cases"), ("positive", "positive outcome"),
               ("negative", "negative outcome"))
_VERDICT_STYLE = (("good", "Good", "#009E73"), ("bad", "Bad", "#D55E00"),
                  ("not_sure", "Not sure", "#BBBBBB"))


def gan_overlay_figure(checks: dict, protocol: Protocol, *, n_cols: int = 4) -> go.Figure:
    """Per-feature histograms: the training trial, the GAN's synthetic patients, the population.

    Args:
        checks: the GAN evaluation saved by ``artds train gan`` (``histograms`` per column with
            ``edges`` and ``shares`` of "training", "synthetic" and "population"; ``jsd_vs_
            training`` per column).
        protocol: names the features.

    Bars: training trial (blue) and synthetic (orange), share of rows per bin; the line is a
    10,000-patient virtual population from the trial's generator (what the GAN should find).
    Each panel's title gives the Jensen–Shannon divergence of synthetic vs training (bits).
    """
    from engine.arclids.gan import gan_columns

    hist = checks.get("histograms") or {}
    # Protocol order (the saved JSON has its keys sorted alphabetically).
    columns = [c for c in gan_columns(protocol) if c in hist] + [
        c for c in hist if c not in gan_columns(protocol)]
    n_rows = max(1, -(-len(columns) // n_cols))
    labels = {f.name: f.label for f in protocol.features} | {
        "dose_eval_gy": "Evaluation dose per fraction"}
    jsd = checks.get("jsd_vs_training") or {}
    titles = [f"{_wrap(_safe(labels.get(c, c)), 28)}<br>JSD {jsd.get(c, float('nan')):.3f}"
              for c in columns]
    fig = make_subplots(rows=n_rows, cols=n_cols, subplot_titles=titles,
                        vertical_spacing=0.09, horizontal_spacing=0.06)
    series = (("training", "training trial", "#0072B2"), ("synthetic", "synthetic (GAN)",
                                                          "#E69F00"))
    for k, col in enumerate(columns):
        h = hist[col]
        edges = np.asarray(h["edges"], dtype=float)
        if h.get("integer"):
            centres = 0.5 * (edges[:-1] + edges[1:])
            x = [f"{v:g}" for v in centres]
        else:
            x = [f"{a:.3g}–{b:.3g}" for a, b in itertools.pairwise(edges)]
        row, c = k // n_cols + 1, k % n_cols + 1
        for key, name, colour in series:
            fig.add_trace(go.Bar(x=x, y=h["shares"].get(key, []), name=name, legendgroup=key,
                                 marker_color=_rgba(colour, 0.7), showlegend=k == 0,
                                 hovertemplate=f"{name}<br>%{{x}}: %{{y:.1%}}<extra></extra>"),
                          row=row, col=c)
        if "population" in h["shares"]:
            fig.add_trace(go.Scatter(x=x, y=h["shares"]["population"], mode="lines",
                                     name="virtual population (truth)", legendgroup="pop",
                                     line=dict(color="#333333", width=1.5, dash="dot"),
                                     showlegend=k == 0,
                                     hovertemplate="population<br>%{x}: %{y:.1%}<extra></extra>"),
                          row=row, col=c)
        fig.update_xaxes(showticklabels=False, row=row, col=c)
    fig.update_layout(barmode="group", bargap=0.05)
    _base_layout(fig, "Synthetic patients (WGAN-GP) against the training trial",
                 height=240 * n_rows + 130, revision=f"gan-{protocol.name}")
    fig.update_annotations(font_size=11)
    fig.update_layout(margin=dict(l=50, r=20, t=110, b=60),
                      legend=dict(orientation="h", y=-0.02, yanchor="top", x=0.0),
                      title=dict(subtitle=dict(
                          text=f"{_VIRTUAL_TRIAL_NOTE} · share of cases per bin · JSD in bits "
                               "(0 identical, 1 disjoint)",
                          font=dict(size=12, color="#666666"))))
    fig.update_yaxes(tickformat=".0%", showgrid=True, gridcolor=_GRID)
    return fig


def odm_rmsd_figure(payload: dict) -> go.Figure:
    """RMSD between recommendation and clinical decision (ARCliDS Figs. 10–11, top): per
    architecture, overall and by clinical outcome, mean ± sem over the ODM members."""
    fig = go.Figure()
    archs = _arch_order(list(payload.get("architectures") or {}))
    for k, arch in enumerate(archs):
        trial = payload["architectures"][arch]["trial"]
        means = [trial["rmsd_gy"][g]["mean"] for g, _ in _ODM_GROUPS]
        sems = [trial["rmsd_gy"][g]["sem"] or 0.0 for g, _ in _ODM_GROUPS]
        fig.add_trace(go.Bar(
            x=[label for _, label in _ODM_GROUPS], y=means, name=f"{_arch_label(arch)} + DDQN",
            marker_color=_arch_colour(arch, k), error_y=dict(type="data", array=sems),
            hovertemplate=f"{_arch_label(arch)} + DDQN<br>%{{x}}: %{{y:.2f}} Gy/fx<extra></extra>",
        ))
    _base_layout(fig, "RMSD from the clinical decisions", height=380,
                 revision=f"odm-rmsd-{payload.get('protocol')}")
    fig.update_layout(barmode="group", legend=dict(y=-0.2),
                      title=dict(subtitle=dict(text="mean ± sem over the 5 decision makers · "
                                               + _VIRTUAL_TRIAL_NOTE,
                                               font=dict(size=12, color="#666666"))))
    fig.update_yaxes(title_text="RMSD (Gy/fx)", rangemode="tozero", showgrid=True,
                     gridcolor=_GRID)
    return fig


def odm_self_evaluation_figure(payload: dict) -> go.Figure:
    """Self-evaluation shares (ARCliDS Table 1; Figs. 10–11, middle): Good / Bad / Not sure per
    architecture, overall and by clinical outcome, stacked to 100 %."""
    archs = _arch_order(list(payload.get("architectures") or {}))
    x = [[_arch_label(a) for a in archs for _ in _ODM_GROUPS],
         [label for _ in archs for _, label in _ODM_GROUPS]]
    fig = go.Figure()
    for key, name, colour in _VERDICT_STYLE:
        y, n = [], []
        for arch in archs:
            se = payload["architectures"][arch]["trial"]["self_evaluation"]
            for g, _ in _ODM_GROUPS:
                y.append(se[g].get(key) or 0.0)
                n.append(se[g].get("n", 0))
        fig.add_trace(go.Bar(x=x, y=y, name=name, marker_color=colour, customdata=n,
                             hovertemplate=f"{name}: %{{y:.0%}} of %{{customdata}} cases"
                                           "<extra></extra>"))
    _base_layout(fig, "Self-evaluation of the recommendations", height=400,
                 revision=f"odm-self-{payload.get('protocol')}")
    fig.update_layout(barmode="stack", legend=dict(y=-0.25, traceorder="normal"),
                      title=dict(subtitle=dict(
                          text="Table 1: direction from the outcome; positive outcome: Good "
                               "within 10 % of the top grid dose",
                          font=dict(size=12, color="#666666"))))
    fig.update_yaxes(title_text="share of cases", tickformat=".0%", range=[0, 1],
                     showgrid=True, gridcolor=_GRID)
    return fig


def odm_decisions_figure(payload: dict, protocol: Protocol) -> go.Figure:
    """Recommendation vs clinical decision per case (ARCliDS Figs. 10–11, bottom), one row per
    architecture: cases sorted by the clinical dose; clinical decisions coloured by outcome,
    recommendations (± SEM) coloured by their q-value (the AI's confidence)."""
    archs = _arch_order(list(payload.get("architectures") or {}))
    fig = make_subplots(
        rows=max(1, len(archs)), cols=1, shared_xaxes=True, vertical_spacing=0.12,
        subplot_titles=[f"{_arch_label(a)} + DDQN" for a in archs])
    q_all = [q for a in archs for q in payload["architectures"][a]["trial"]["patients"]["q_value"]]
    q_lo, q_hi = (min(q_all), max(q_all)) if q_all else (0.0, 1.0)
    for k, arch in enumerate(archs):
        rows = payload["architectures"][arch]["trial"]["patients"]
        order = np.argsort(np.asarray(rows["clinical_dose_gy"]), kind="stable")
        idx = np.arange(1, len(order) + 1)

        def take(key: str, order: np.ndarray = order, rows: dict = rows) -> np.ndarray:
            return np.asarray(rows[key], dtype=object)[order]

        labels = [_safe(v) for v in take("label")]
        positive = (take("tumour_controlled") == 1) & (take("toxicity") == 0)
        for mask, name, colour in ((positive, "clinical decision, positive outcome", "#009E73"),
                                   (~positive, "clinical decision, negative outcome",
                                    "#D55E00")):
            fig.add_trace(go.Scatter(
                x=idx[mask], y=take("clinical_dose_gy")[mask].astype(float), mode="markers",
                name=name, legendgroup=name, showlegend=k == 0,
                marker=dict(symbol="square", size=8, color=colour),
                text=np.asarray(labels, dtype=object)[mask],
                hovertemplate="%{text}<br>clinical %{y:.2f} Gy/fx<extra></extra>",
            ), row=k + 1, col=1)
        verdict = take("self_evaluation")
        fig.add_trace(go.Scatter(
            x=idx, y=take("recommended_dose_gy").astype(float), mode="markers",
            name="recommendation (colour: q-value)", legendgroup="rec", showlegend=k == 0,
            error_y=dict(type="data", array=take("recommended_dose_sem_gy").astype(float),
                         thickness=1, width=0, color="#777777"),
            marker=dict(symbol="circle", size=8, color=take("q_value").astype(float),
                        colorscale="Viridis", cmin=q_lo, cmax=q_hi,
                        showscale=k == 0, line=dict(width=0.5, color="#333333"),
                        colorbar=dict(title=dict(text="q-value", side="right"), thickness=12,
                                      len=0.6)),
            customdata=np.column_stack([take("q_value").astype(float), verdict]),
            text=labels,
            hovertemplate=("%{text}<br>recommended %{y:.2f} Gy/fx<br>q %{customdata[0]:.2f}"
                           "<br>self-evaluation: %{customdata[1]}<extra></extra>"),
        ), row=k + 1, col=1)
        fig.update_yaxes(title_text="Gy/fx", row=k + 1, col=1, showgrid=True, gridcolor=_GRID)
    fig.update_xaxes(title_text="case (sorted by the clinical decision)", row=len(archs), col=1)
    _base_layout(fig, "Recommendation against the clinical decision, case by case",
                 height=300 * max(1, len(archs)) + 140,
                 revision=f"odm-decisions-{protocol.name}")
    fig.update_layout(legend=dict(y=-0.12), title=dict(subtitle=dict(
        text=f"{_VIRTUAL_TRIAL_NOTE} · error bars: SEM over the 5 decision makers",
        font=dict(size=12, color="#666666"))))
    return fig
