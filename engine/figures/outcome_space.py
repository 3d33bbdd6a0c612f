"""The recommendation figures, shown to clinicians in the app and printed in the HTML report.

- :func:`outcome_space_figure`: TCP (x) against NTCP (y) for every candidate adaptive dose, over
  the reward landscape r = tcp (1 − ntcp) + goal bonus, with the goal regions outlined; for an
  ensemble, the 1-sd covariance ellipse of (TCP, NTCP) at a subset of doses (as in ARCliDS
  Fig. S8), built by :func:`covariance_ellipse` at :func:`ellipse_dose_indices`.
- :func:`dose_response_figure`: TCP, NTCP and reward against the adaptive dose per fraction, with
  a ±1 sd band for an ensemble.
- :func:`recommendation_text`: the recommended dose as one line of text ("3.12 ± 0.05 Gy/fx").

The reward landscape is a light grey scale so the case colours (:mod:`engine.figures.style`)
stay readable.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from engine.arclids.arte import reward
from engine.arclids.recommend import Recommendation
from engine.core.protocols import Protocol
from engine.figures.style import (
    GRIDDED,
    VIRTUAL_TRIAL_NOTE,
    add_empty_note,
    base_layout,
    case_colour,
    case_revision,
    fmt_dose,
    rgba,
    safe,
)

__all__ = [
    "ELLIPSE_EVERY",
    "covariance_ellipse",
    "dose_response_figure",
    "ellipse_dose_indices",
    "outcome_space_figure",
    "recommendation_text",
]

_GOAL_STYLES = ({"dash": "solid", "width": 2.0}, {"dash": "dash", "width": 1.5})
"""Outline of the first goal region, then of every further one (dash and width in px)."""
_MIN_SD = 1e-6
"""Ensemble spread below this (probability units) is treated as none (identical members)."""
ELLIPSE_EVERY = 4
"""Outcome space: a covariance ellipse at every this many grid doses (plus the first and last,
the recommended and the selected dose). At every dose neighbouring ellipses overlap into a
smear; every fourth keeps each one readable while still showing how the spread changes."""


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
        name=f"{safe(rec.label)}: ±1 sd ellipses" + (" (marked doses)" if marked else ""),
        legendgroup=group, showlegend=False,
        line=dict(color=rgba(colour, 0.9 if marked else 0.5), width=1.8 if marked else 1.0,
                  dash="solid"),
        fill="toself", fillcolor=rgba(colour, 0.08 if marked else 0.035),
        hoverinfo="skip",
        meta="ellipse",
    )


def _model_line(recs: list[Recommendation]) -> str:
    """"model version … · N ensemble members" for subtitles (first case's model)."""
    if not recs:
        return ""
    rec = recs[0]
    members = (f" · ensemble of {rec.n_members} members" if rec.n_members > 1 else "")
    return f"model version {safe(rec.model_version)}{members}"


def _recommendation_layout(
    fig: go.Figure,
    recs: list[Recommendation],
    protocol: Protocol,
    what: str,
    height_px: int,
    notes: str,
    margin_px: dict[str, int],
) -> None:
    """Shared look of both figures: title "<what> · <model>", the subtitle "model version … ·
    virtual-trial note" followed by ``notes``, and a zoom revision of these cases and model."""
    model = safe(recs[0].model) if recs else "no cases"
    caption = " · ".join(p for p in (_model_line(recs), VIRTUAL_TRIAL_NOTE) if p)
    base_layout(fig, f"{what} · {model}", height_px,
                case_revision(protocol, [r.label for r in recs],
                              recs[0].model_version if recs else ""),
                subtitle_text=caption + notes, margin_px=margin_px)


def _case_style(i: int, rec: Recommendation) -> tuple[str, str, str]:
    """(colour, escaped label, legend group) of the ``i``-th case. Its curves, marks, bands and
    ellipses share the legend group, so clicking the case hides them together."""
    return case_colour(i), safe(rec.label), f"case{i}"


def _nearest_index(doses_gy: Sequence[float], dose_gy: float) -> int:
    """Index of the grid dose nearest to ``dose_gy`` (both Gy per fraction)."""
    return int(np.argmin(np.abs(np.asarray(doses_gy, dtype=float) - float(dose_gy))))


def _axis_grid(n: int, bounds: tuple[float, float] | None, steps: list[float]) -> np.ndarray:
    """Sorted probabilities in [0, 1] at which the reward landscape is evaluated: ``n`` even
    points, both sides of each goal threshold in ``steps`` and, when given, ``n // 2`` more
    points within ``bounds`` (the cases' region)."""
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
    """The protocol's reward over the (TCP, NTCP) square as a filled grey contour; ``zoom``
    (tcp_lo, tcp_hi, ntcp_lo, ntcp_hi) refines the grid over the cases' region."""
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
    """Outline each goal's region (TCP ≥ tcp_min, NTCP ≤ ntcp_max) and label it with its bonus."""
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
            hovertext=safe(goal.label),
            showarrow=False, xanchor="left", yanchor="bottom",
            font=dict(size=11, color="#333333"), bgcolor="rgba(255,255,255,0.7)",
        )


def recommendation_text(rec: Recommendation, *, q: bool = True) -> str:
    """"3.12 ± 0.05 Gy/fx (q 2.71)" for an ODM serving the members' mean dose, "3.20 Gy/fx
    (members 3.12 ± 0.05, q 2.71)" for one serving the best mean-q grid dose, "3.2 Gy/fx"
    without an ODM."""
    if rec.recommended_dose_sem_gy is None:
        return f"{fmt_dose(rec.recommended_dose_gy)} Gy/fx"
    if rec.odm_serving_rule == "mean-q" and rec.member_mean_dose_gy is not None:
        q_text = "" if rec.q_value is None or not q else f", q {rec.q_value:.2f}"
        return (f"{rec.recommended_dose_gy:.2f} Gy/fx (members {rec.member_mean_dose_gy:.2f} ± "
                f"{rec.recommended_dose_sem_gy:.2f}{q_text})")
    q_text = "" if rec.q_value is None or not q else f" (q {rec.q_value:.2f})"
    return f"{rec.recommended_dose_gy:.2f} ± {rec.recommended_dose_sem_gy:.2f} Gy/fx{q_text}"


def _recommender_text(rec: Recommendation) -> str:
    """Which rule chose the recommended dose, for the star's hover text."""
    if rec.recommender == "odm":
        return (f"Double-DQN ensemble of {len(rec.member_doses_gy or [])} members; exact "
                f"reward argmax {fmt_dose(rec.exact_argmax_dose_gy)} Gy/fx")
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
        name=f"{safe(rec.label)}: recommended dose ± SEM",
        line=dict(color=rgba(colour, 0.35), width=12), meta="sem",
        hovertemplate=(f"<b>{safe(rec.label)}</b> recommended dose ± SEM<br>"
                       f"{lo:.2f}–{hi:.2f} Gy/fx<extra></extra>"),
    )


def _grid_dose_mark(
    rec: Recommendation, j: int, i: int, what: str, symbol: str, *, size_px: int, line_px: int,
    meta: str | None = None,
) -> go.Scatter:
    """An open marker on the ``i``-th case's outcome-space curve at grid dose ``j`` (the
    selected dose, the exact reward argmax), hovering the dose, TCP, NTCP and reward there."""
    colour, label, group = _case_style(i, rec)
    dose = fmt_dose(float(rec.doses_gy[j]))
    tcp, ntcp = float(rec.tcp[j]), float(rec.ntcp[j])
    return go.Scatter(
        x=[tcp], y=[ntcp], mode="markers", cliponaxis=False,
        name=f"{label}: {what} {dose} Gy/fx", legendgroup=group, showlegend=False, meta=meta,
        marker=dict(symbol=symbol, size=size_px, color=colour,
                    line=dict(width=line_px, color=colour)),
        hovertemplate=(
            f"<b>{label}</b> {what}<br>dose {dose} Gy/fx<br>TCP {tcp:.1%}<br>"
            f"NTCP {ntcp:.1%}<br>reward {rec.reward[j]:.3f}<extra></extra>"
        ),
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
        colour, label, group = _case_style(i, rec)
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
                name=f"{label} (dose {fmt_dose(doses[0])}–{fmt_dose(doses[-1])} Gy/fx)"
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
            fig.add_trace(_grid_dose_mark(rec, selected_j, i, "selected", "circle-open",
                                          size_px=18, line_px=3))
        if rec.recommended_dose_sem_gy and len(doses) > 1:
            fig.add_trace(_sem_segment(rec, colour, group))
        if rec.recommender == "odm" and len(doses):
            j = _nearest_index(doses, rec.exact_argmax_dose_gy)
            fig.add_trace(_grid_dose_mark(rec, j, i, "exact reward argmax", "diamond-open",
                                          size_px=13, line_px=2, meta="exact-argmax"))
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
                    f"{safe(_recommender_text(rec))}<extra></extra>"
                ),
            )
        )

    odm_marks = any(r.recommender == "odm" for r in recs)
    marks = ("★ recommended dose (band: ± SEM), ◇ exact argmax" if odm_marks
             else "★ recommended dose") + (", ○ selected" if selected_dose_gy else "")
    if any_ellipse:
        marks += (f" · ellipses: ensemble ±1 sd at every {ELLIPSE_EVERY}th dose"
                  + ("" if odm_marks else ", bold at the marked doses"))
    _recommendation_layout(fig, recs, protocol, "Outcome space", 600 + 22 * len(recs),
                           f"<br>{marks}", dict(l=80, r=30, t=96, b=70))
    fig.update_layout(
        # One legend block per case, side by side: its curve and its star share a legend group,
        # so clicking the case hides the curve, ellipses, star and circle together.
        legend=dict(entrywidth=190, entrywidthmode="pixels", tracegroupgap=0),
    )
    full = ([0.0, 1.0], [0.0, 1.0])
    zoomed = full if bounds is None else ([bounds[0], bounds[1]], [bounds[2], bounds[3]])
    x_range, y_range = zoomed if zoom else full
    fig.update_xaxes(
        title_text=f"TCP: probability of {safe(protocol.target.outcome_label.lower())}",
        range=x_range, tickformat=".0%", nticks=12, constrain="domain", **GRIDDED,
    )
    fig.update_yaxes(
        title_text=f"NTCP: probability of {safe(_lower_first(protocol.oar.outcome_label))}",
        range=y_range, tickformat=".0%", nticks=12, **GRIDDED,
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
        add_empty_note(fig, "No cases to show")
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
    """Lower-case the first letter unless the text starts with an acronym ("NTCP", "AFP")."""
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
    grid = protocol.dose_grid()
    any_band = False
    for i, rec in enumerate(recs):
        colour, label, group = _case_style(i, rec)
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
                        fillcolor=rgba(colour, 0.16 if name == "TCP" else 0.10),
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
                    fillcolor=rgba(colour, 0.15), line_width=0, layer="below",
                    row=row, col=1,
                )
            fig.add_vline(
                x=rec.recommended_dose_gy, line=dict(color=colour, width=2, dash="dash"),
                opacity=0.9,
                row=row, col=1,
            )
        if rec.recommender == "odm":
            j = _nearest_index(doses, rec.exact_argmax_dose_gy)
            fig.add_trace(
                go.Scatter(
                    x=[doses[j]], y=[rec.reward[j]], mode="markers",
                    name=f"{label}: exact reward argmax", legendgroup=group, showlegend=False,
                    marker=dict(symbol="diamond-open", size=12, color=colour,
                                line=dict(width=2, color=colour)),
                    meta="exact-argmax",
                    hovertemplate=(f"<b>{label}</b> exact reward argmax<br>"
                                   f"dose {fmt_dose(doses[j])} Gy/fx<br>"
                                   f"reward {rec.reward[j]:.3f}<extra></extra>"),
                ),
                row=2, col=1,
            )
        where = (rec.recommended_dose_gy - grid[0]) / max(grid[-1] - grid[0], 1e-9)
        anchor = "left" if where < 0.15 else "right" if where > 0.85 else "center"
        fig.add_annotation(
            x=rec.recommended_dose_gy, y=1.0, xref="x", yref="y domain",
            text=f"{label}: recommended {recommendation_text(rec)}",
            showarrow=False, yanchor="bottom", xanchor=anchor, yshift=4 + 16 * i,
            font=dict(size=11, color=colour), bgcolor="rgba(255,255,255,0.8)",
        )

    bands = " · shaded: ensemble ±1 sd" if any_band else ""
    if any(r.recommended_dose_sem_gy for r in recs):
        bands += " · band: recommended ± SEM · ◇ exact argmax"
    _recommendation_layout(fig, recs, protocol, "Dose response", 560 + 22 * len(recs), bands,
                           dict(l=80, r=30, t=76 + 16 * len(recs), b=80))
    fig.update_layout(legend=dict(y=-0.16, entrywidth=210, entrywidthmode="pixels",
                                  tracegroupgap=6))
    pad = 0.02 * (grid[-1] - grid[0])
    fig.update_xaxes(range=[grid[0] - pad, grid[-1] + pad], **GRIDDED)
    fig.update_xaxes(title_text="adaptive dose per fraction (Gy/fx)", row=2, col=1)
    fig.update_yaxes(**GRIDDED)
    fig.update_yaxes(title_text="probability (TCP solid, NTCP dashed)", range=[0, 1.02],
                     tickformat=".0%", row=1, col=1)
    fig.update_yaxes(title_text="reward", rangemode="tozero", row=2, col=1)
    return fig

