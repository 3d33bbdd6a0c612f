"""The recommendation figures, shown to clinicians in the app and printed in the HTML report (the
wording of the numbers they carry is :mod:`engine.figures.wording`).

- :func:`outcome_space_figure`: TCP (x) against NTCP (y) for every candidate adaptive dose, over
  the reward landscape r = tcp (1 − ntcp) + goal bonus, with the goal regions outlined; where the
  outcome model states an interval, an ellipse at a subset of doses whose TCP and NTCP extents are
  the intervals, tilted by the members' correlation (:func:`interval_ellipse`, at
  :func:`ellipse_dose_indices`); the best dose's interval along the curve; the physician's
  proposal when one was given.
- :func:`engine.figures.dose_response.dose_response_figure` draws the same cases against the
  adaptive dose, with the shared pieces here (:func:`case_style`, :func:`recommendation_layout`,
  :func:`proposal_hover`, :func:`nearest_index`).

The reward landscape is a light grey scale so the case colours (:mod:`engine.figures.style`)
stay readable.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

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
    wrap,
)
from engine.figures.wording import (
    DOSE_INTERVAL_MEANING,
    PREDICTED_REWARD,
    advice_text,
    dose_interval_text,
    dose_text,
    interval_label,
    level_label,
    pct_text,
    recommendation_text,
    reward_text,
)

__all__ = [
    "ELLIPSE_EVERY",
    "covariance_ellipse",
    "ellipse_dose_indices",
    "interval_ellipse",
    "outcome_space_figure",
    "selected_dose_traces",
]

_GOAL_STYLES = ({"dash": "solid", "width": 2.0}, {"dash": "dash", "width": 1.5})
"""Outline of the first goal region, then of every further one (dash and width in px)."""
_MIN_SPREAD = 1e-6
"""Interval width or sd below this (probability units) is treated as none (one model, or
identical members)."""
ELLIPSE_EVERY = 4
"""Outcome space: an interval ellipse at every this many grid doses (plus the first and last,
the recommended and the selected dose). At every dose neighbouring ellipses overlap into a
smear; every fourth keeps each one readable while still showing how the spread changes."""
RING_DECIMALS = 5
"""Decimals of an ellipse's points (probabilities): 1e-5 is far below a pixel, and the rings
are most of the bytes of the figure and of each move of the selected dose."""


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

# --------------------------------------------------------------------------------------------
# Outcome space


def interval_ellipse(
    tcp_interval: Sequence[float],
    ntcp_interval: Sequence[float],
    correlation: float,
    n_points: int = 40,
) -> tuple[np.ndarray, np.ndarray]:
    """The ellipse whose TCP and NTCP extents are exactly the two intervals, tilted by the
    correlation of TCP and NTCP (clipped to [−1, 1]), as a closed polyline.

    Centre: the intervals' midpoints; with half-widths a, b the ellipse is the 1-sd contour of
    Σ = [[a², ρab], [ρab, b²]], whose extent along each axis is a and b whatever ρ is
    (:func:`covariance_ellipse`). ρ = ±1 gives the box's diagonal, 0 the axis-aligned ellipse.

    Returns:
        (x, y), each of shape [n_points].
    """
    (t_lo, t_hi), (n_lo, n_hi) = tcp_interval, ntcp_interval
    a, b = (t_hi - t_lo) / 2.0, (n_hi - n_lo) / 2.0
    rho = float(np.clip(np.nan_to_num(correlation), -1.0, 1.0))
    return covariance_ellipse((t_lo + t_hi) / 2.0, (n_lo + n_hi) / 2.0, a * a, b * b,
                              rho * a * b, n_points=n_points)


def _correlation(rec: Recommendation, j: int) -> float:
    """The members' correlation of TCP and NTCP at grid dose ``j`` (0 without spread)."""
    sd_t, sd_n = rec.tcp_sd[j], rec.ntcp_sd[j]
    if sd_t <= _MIN_SPREAD or sd_n <= _MIN_SPREAD:
        return 0.0
    return rec.tcp_ntcp_cov[j] / (sd_t * sd_n)


def _ellipse_trace(
    rec: Recommendation, indices: list[int], colour: str, group: str, *, marked: bool = False
) -> go.Scatter:
    """Interval ellipses of one case at ``indices`` (:func:`interval_ellipse`), one trace (None
    between rings).

    ``marked`` rings (recommended and selected dose) are drawn stronger than the faint rings
    along the curve. Rings are not clipped to 0–1 here (that would flatten them); the axes clip.
    Points are rounded to :data:`RING_DECIMALS` (0.001 %, far below a pixel).
    """
    xs: list[float | None] = []
    ys: list[float | None] = []
    for j in indices:
        x, y = interval_ellipse((rec.tcp_lo[j], rec.tcp_hi[j]), (rec.ntcp_lo[j], rec.ntcp_hi[j]),
                                _correlation(rec, j))
        xs += [*np.round(x, RING_DECIMALS).tolist(), None]
        ys += [*np.round(y, RING_DECIMALS).tolist(), None]
    return go.Scatter(
        x=xs, y=ys, mode="lines", cliponaxis=True, connectgaps=False,
        name=f"{safe(rec.label)}: {interval_label(rec)} ellipses"
        + (" (marked doses)" if marked else ""),
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


def recommendation_layout(
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


def case_style(i: int, rec: Recommendation) -> tuple[str, str, str]:
    """(colour, escaped label, legend group) of the ``i``-th case. Its curves, marks, bands and
    ellipses share the legend group, so clicking the case hides them together."""
    return case_colour(i), safe(rec.label), f"case{i}"


def nearest_index(doses_gy: Sequence[float], dose_gy: float) -> int:
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

def _recommender_text(rec: Recommendation) -> str:
    """Which rule chose the recommended dose, for the star's hover text."""
    if rec.recommender == "odm":
        q = ("" if rec.q_value is None
             else f"; its {PREDICTED_REWARD}: {rec.q_value:.2f}")
        return (f"Double-DQN ensemble of {len(rec.member_doses_gy or [])} members{q}; exact "
                f"reward argmax {fmt_dose(rec.exact_argmax_dose_gy)} Gy/fx")
    return "exact reward argmax (no decision maker served)"


def _dose_interval_segment(rec: Recommendation, colour: str, group: str) -> go.Scatter:
    """The curve between the ends of the best dose's interval, drawn as a thick translucent band
    (``meta="dose-interval"``)."""
    doses = np.asarray(rec.doses_gy, dtype=float)
    lo, hi = rec.dose_interval_gy
    along = np.linspace(lo, hi, 15)
    tcp = np.interp(along, doses, np.asarray(rec.tcp, dtype=float))
    ntcp = np.interp(along, doses, np.asarray(rec.ntcp, dtype=float))
    level = level_label(rec.interval_level or 0.8)
    return go.Scatter(
        x=tcp, y=ntcp, mode="lines", cliponaxis=False, legendgroup=group, showlegend=False,
        name=f"{safe(rec.label)}: best dose, {level}",
        line=dict(color=rgba(colour, 0.35), width=12), meta="dose-interval",
        hovertemplate=(f"<b>{safe(rec.label)}</b> best dose, {level}<br>"
                       f"{dose_text(lo)}–{dose_text(hi)} Gy/fx<br>{DOSE_INTERVAL_MEANING}"
                       "<extra></extra>"),
    )


def _point_hover(rec: Recommendation, tcp: float, tcp_iv: Sequence[float] | None, ntcp: float,
                 ntcp_iv: Sequence[float] | None) -> str:
    """"TCP … <br>NTCP …" with the case's interval (hover text)."""
    label = interval_label(rec)
    return f"TCP {pct_text(tcp, tcp_iv, label)}<br>NTCP {pct_text(ntcp, ntcp_iv, label)}"


def _grid_dose_mark(
    rec: Recommendation, j: int, i: int, what: str, symbol: str, *, size_px: int, line_px: int,
    meta: str | None = None,
) -> go.Scatter:
    """An open marker on the ``i``-th case's outcome-space curve at grid dose ``j`` (the
    selected dose, the exact reward argmax), hovering the dose, TCP, NTCP (with the interval)
    and reward there."""
    colour, label, group = case_style(i, rec)
    dose = fmt_dose(float(rec.doses_gy[j]))
    tcp, ntcp = float(rec.tcp[j]), float(rec.ntcp[j])
    ivs = ((rec.tcp_lo[j], rec.tcp_hi[j]), (rec.ntcp_lo[j], rec.ntcp_hi[j])) \
        if rec.tcp_lo is not None else (None, None)
    return go.Scatter(
        x=[tcp], y=[ntcp], mode="markers", cliponaxis=False,
        name=f"{label}: {what} {dose} Gy/fx", legendgroup=group, showlegend=False, meta=meta,
        marker=dict(symbol=symbol, size=size_px, color=colour,
                    line=dict(width=line_px, color=colour)),
        hovertemplate=(
            f"<b>{label}</b> {what}<br>dose {dose} Gy/fx<br>"
            f"{_point_hover(rec, tcp, ivs[0], ntcp, ivs[1])}<br>"
            f"{PREDICTED_REWARD}: {rec.reward[j]:.3f}<extra></extra>"
        ),
    )


def proposal_hover(rec: Recommendation) -> str:
    """Hover text of the physician's proposal: dose, TCP, NTCP and reward with their intervals,
    p_recommended_better and the advice."""
    prop = rec.proposal
    assert prop is not None
    label = interval_label(rec)
    reward_iv = (prop["reward_lo"], prop["reward_hi"]) if "reward_lo" in prop else None
    return (
        f"<b>{safe(rec.label)}</b> your proposal<br>dose {dose_text(prop['dose_gy'])} Gy/fx<br>"
        + _point_hover(rec, prop["tcp"], (prop["tcp_lo"], prop["tcp_hi"]), prop["ntcp"],
                       (prop["ntcp_lo"], prop["ntcp_hi"]))
        + f"<br>{PREDICTED_REWARD}: {reward_text(prop['reward'], reward_iv, label)}"
        + f"<br>P(recommendation better) {prop['p_recommended_better']:.2f}"
        + f"<br>advice: {wrap(safe(advice_text(rec) or ''), 60)}<extra></extra>"
    )


def _proposal_mark(rec: Recommendation, i: int) -> go.Scatter:
    """The physician's proposal on the ``i``-th case's outcome-space curve (open square,
    ``meta="proposal"``, in the legend with the advice)."""
    colour, _label, group = case_style(i, rec)
    prop = rec.proposal
    assert prop is not None
    return go.Scatter(
        x=[prop["tcp"]], y=[prop["ntcp"]], mode="markers", cliponaxis=False,
        name=f"proposal: {dose_text(prop['dose_gy'])} Gy/fx (advice: {prop['advice']})",
        legendgroup=group, meta="proposal",
        marker=dict(symbol="square-open", size=15, color=colour, line=dict(width=3,
                                                                             color=colour)),
        hovertemplate=proposal_hover(rec),
    )


def _star_hover(rec: Recommendation, protocol: Protocol) -> str:
    """Hover text of the recommended dose: dose and its interval, TCP and NTCP with theirs, the
    predicted reward, the goal, the recommender and any caution."""
    dose_iv = dose_interval_text(rec)
    lines = [
        f"<b>{safe(rec.label)}</b> recommended",
        f"dose {recommendation_text(rec)}",
        *([f"best dose {wrap(dose_iv, 60)}"] if dose_iv else []),
        _point_hover(rec, rec.recommended_tcp, rec.recommended_tcp_interval,
                     rec.recommended_ntcp, rec.recommended_ntcp_interval),
        f"{PREDICTED_REWARD}: {rec.recommended_reward:.2f}",
        protocol.goal_met_text(rec.recommended_goal),
        safe(_recommender_text(rec)),
        *([f"caution: {wrap(safe(rec.caution), 60)}"] if rec.caution else []),
    ]
    return "<br>".join(lines) + "<extra></extra>"


_MOVING = ("ellipses-marked", "selected")
"""The parts of :func:`_selected_traces` that change with the selected dose."""


def _selected_traces(rec: Recommendation, i: int, dose_gy: float | None) -> dict[str, go.Scatter]:
    """The ``i``-th case's interval ellipses and selected-dose circle, by part: ``"ellipses"``
    (faint interval rings along the curve, the recommended dose's left out) and
    ``"ellipses-marked"`` (bold rings at the recommended and the selected dose) when the case
    states an interval, and ``"selected"`` (open circle at the grid dose nearest ``dose_gy``)
    when a dose is selected (None: none). Each carries the uid ``case{i}-{part}``; the last two
    move with the selected dose (:func:`selected_dose_traces`)."""
    colour, _label, group = case_style(i, rec)
    doses = np.asarray(rec.doses_gy, dtype=float)
    if not len(doses):
        return {}
    selected_j = None if dose_gy is None else nearest_index(doses, dose_gy)
    out: dict[str, go.Scatter] = {}
    if interval_label(rec):
        recommended_j = nearest_index(doses, rec.recommended_dose_gy)
        marked = {recommended_j} | ({selected_j} if selected_j is not None else set())
        # The faint rings do not depend on the selected dose (a selected dose on a faint ring
        # draws its bold ring over it), so moving the selection resends only the bold rings.
        faint = [j for j in ellipse_dose_indices(len(doses)) if j != recommended_j]
        if faint:
            out["ellipses"] = _ellipse_trace(rec, faint, colour, group)
        out["ellipses-marked"] = _ellipse_trace(rec, sorted(marked), colour, group, marked=True)
    if selected_j is not None:
        out["selected"] = _grid_dose_mark(rec, selected_j, i, "selected", "circle-open",
                                          size_px=18, line_px=3)
    for part, trace in out.items():
        trace.uid = f"case{i}-{part}"
    return out


def selected_dose_traces(
    recs: list[Recommendation], selected_dose_gy: dict[str, float]
) -> list[go.Scatter]:
    """The traces of :func:`outcome_space_figure` that move with the selected dose, as the
    figure would draw them for ``selected_dose_gy`` (dose per fraction, Gy, by case label).

    For every case with a selected dose: its bold interval ellipses (recommended and selected
    dose) and its selected-dose circle, each with the uid it has in the figure
    (``case{i}-ellipses-marked``, ``case{i}-selected``). Replacing the figure's traces of these
    uids with them gives exactly the figure drawn for the new doses: the app moves the selected
    dose this way on the client, without rebuilding or resending the figure.
    """
    out: list[go.Scatter] = []
    for i, rec in enumerate(recs):
        if rec.label in selected_dose_gy:
            moving = _selected_traces(rec, i, selected_dose_gy[rec.label])
            out += [moving[part] for part in _MOVING if part in moving]
    return out


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
        dose (open circle), the recommended dose (star, legend entry "recommended: X Gy/fx") and
        the physician's proposal where one was given (open square, ``meta="proposal"``, legend
        entry with the advice). When the outcome model states an interval (or its members
        disagree), each case also gets interval ellipses (``meta="ellipse"``, in the case's
        legend group): the TCP and NTCP extents of each are the interval at that dose
        (:func:`interval_ellipse`), faint at every :data:`ELLIPSE_EVERY`-th dose and the last,
        bold at the recommended and the selected dose (two traces); and the best dose's interval
        as a thick band along the curve (``meta="dose-interval"``). The hover gives the interval
        at every dose. The traces that depend on the selected dose carry uids
        (:func:`selected_dose_traces`), so the selection can move without a new figure.
    """
    selected_dose_gy = selected_dose_gy or {}
    bounds = _case_bounds(recs)
    if zoom is None:
        zoom = bounds is not None and (bounds[1] - bounds[0]) * (bounds[3] - bounds[2]) < 0.1
    fig = go.Figure()
    fig.add_trace(_reward_landscape(protocol, bounds))
    _add_goal_regions(fig, protocol)

    ellipse_label = None
    any_dose_interval = False
    for i, rec in enumerate(recs):
        colour, label, group = case_style(i, rec)
        doses = np.asarray(rec.doses_gy, dtype=float)
        tcp = np.asarray(rec.tcp, dtype=float)
        ntcp = np.asarray(rec.ntcp, dtype=float)
        goals = [protocol.goal_met_text(g) for g in rec.goal]
        iv_label = interval_label(rec)
        lo_hi = (np.column_stack([rec.tcp_lo, rec.tcp_hi, rec.ntcp_lo, rec.ntcp_hi])
                 if iv_label else np.zeros((len(doses), 4)))
        custom = np.column_stack([doses, rec.reward, lo_hi, np.asarray(goals, object)])
        tcp_part = (f" ({iv_label} %{{customdata[2]:.1%}}–%{{customdata[3]:.1%}})"
                    if iv_label else "")
        ntcp_part = (f" ({iv_label} %{{customdata[4]:.1%}}–%{{customdata[5]:.1%}})"
                     if iv_label else "")
        moving = _selected_traces(rec, i, selected_dose_gy.get(rec.label))
        for part in ("ellipses", "ellipses-marked"):
            if part in moving:
                fig.add_trace(moving[part])
                ellipse_label = ellipse_label or iv_label
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
                    f"TCP %{{x:.1%}}{tcp_part}<br>NTCP %{{y:.1%}}{ntcp_part}<br>"
                    f"{PREDICTED_REWARD}: %{{customdata[1]:.3f}} (%{{customdata[6]}})"
                    "<extra></extra>"
                ),
            )
        )
        if "selected" in moving:
            fig.add_trace(moving["selected"])
        if iv_label and rec.dose_interval_gy and rec.dose_interval_gy[1] > rec.dose_interval_gy[0]:
            fig.add_trace(_dose_interval_segment(rec, colour, group))
            any_dose_interval = True
        if rec.recommender == "odm" and len(doses):
            j = nearest_index(doses, rec.exact_argmax_dose_gy)
            fig.add_trace(_grid_dose_mark(rec, j, i, "exact reward argmax", "diamond-open",
                                          size_px=13, line_px=2, meta="exact-argmax"))
        if rec.proposal is not None:
            fig.add_trace(_proposal_mark(rec, i))
        fig.add_trace(
            go.Scatter(
                x=[rec.recommended_tcp], y=[rec.recommended_ntcp], mode="markers",
                cliponaxis=False,
                name=f"recommended: {recommendation_text(rec)}",
                legendgroup=group,
                marker=dict(symbol="star", size=20, color=colour,
                            line=dict(width=1.5, color="#ffffff")),
                hovertemplate=_star_hover(rec, protocol),
            )
        )

    # Subtitle lines kept under ~95 characters: longer ones are cut at the plot's width.
    marks = "★ recommended"
    if any(r.recommender == "odm" for r in recs):
        marks += ", ◇ exact argmax"
    if any(r.proposal is not None for r in recs):
        marks += ", □ your proposal"
    if selected_dose_gy:
        marks += ", ○ selected"
    if ellipse_label:
        marks += (f"<br>ellipses: {ellipse_label} of TCP and of NTCP (extent), tilted by the "
                  "members' correlation")
    if any_dose_interval:
        level = next(level_label(r.interval_level or 0.8) for r in recs if interval_label(r))
        marks += f"<br>thick band: best dose, {level} ({DOSE_INTERVAL_MEANING})"
    recommendation_layout(fig, recs, protocol, "Outcome space", 600 + 22 * len(recs),
                           f"<br>{marks}", dict(l=80, r=30, t=96 + 18 * marks.count("<br>"),
                                                b=70))
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
    """Padded (tcp_lo, tcp_hi, ntcp_lo, ntcp_hi) around every curve and its interval (so the
    ellipses fit), inside [0, 1]."""
    if not recs:
        return None
    def ends(mean: list[float], *interval: list[float] | None) -> list[np.ndarray]:
        return [np.asarray(mean if v is None else v, dtype=float) for v in (mean, *interval)]

    tcp = np.concatenate([a for r in recs for a in ends(r.tcp, r.tcp_lo, r.tcp_hi)])
    ntcp = np.concatenate([a for r in recs for a in ends(r.ntcp, r.ntcp_lo, r.ntcp_hi)])
    out = []
    for v in (tcp, ntcp):
        lo, hi = float(np.nanmin(v)), float(np.nanmax(v))
        pad = max(0.08 * (hi - lo), 0.02)
        out += [max(lo - pad, 0.0), min(hi + pad, 1.0)]
    return out[0], out[1], out[2], out[3]


def _lower_first(text: str) -> str:
    """Lower-case the first letter unless the text starts with an acronym ("NTCP", "AFP")."""
    return text[:1].lower() + text[1:] if text[:2] != text[:2].upper() else text
