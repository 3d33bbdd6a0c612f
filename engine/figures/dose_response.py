"""The dose response of recommended cases: TCP, NTCP and reward against the adaptive dose per
fraction, shown to clinicians in the app and printed in the HTML report beside the outcome space
(:mod:`engine.figures.outcome_space`, whose case styles, layout and proposal hover it shares),
with the interval as a shaded band, the best dose's interval and the physician's proposal.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from engine.arclids.recommend import Recommendation
from engine.core.protocols import Protocol
from engine.figures.outcome_space import (
    case_style,
    nearest_index,
    proposal_hover,
    recommendation_layout,
)
from engine.figures.style import GRIDDED, fmt_dose, rgba
from engine.figures.wording import (
    DOSE_INTERVAL_MEANING,
    PREDICTED_REWARD,
    dose_text,
    interval_label,
    level_label,
    recommendation_text,
)

__all__ = ["dose_response_figure"]


def dose_response_figure(recs: list[Recommendation], protocol: Protocol) -> go.Figure:
    """TCP and NTCP (top) and reward (bottom) against the adaptive dose per fraction.

    TCP is drawn solid, NTCP dashed, in the case's colour. Where the outcome model states an
    interval (or its members disagree), a semi-transparent band from the interval's lower to its
    upper end (one ``fill="toself"`` trace, ``meta="band"``, named with the interval's level, in
    the case's legend group) surrounds each mean curve. The recommended dose of each case is a
    dashed vertical line across both rows; the best dose's interval, where it has a width, a thick
    line at the recommendation's reward (``meta="dose-interval"``); a proposal is a dotted line
    with an open square on the reward (``meta="proposal"``).
    """
    fig = make_subplots(
        rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08, row_heights=[0.62, 0.38],
    )
    grid = protocol.dose_grid()
    band_label = None
    any_dose_interval = False
    for i, rec in enumerate(recs):
        colour, label, group = case_style(i, rec)
        doses = np.asarray(rec.doses_gy, dtype=float)
        iv_label = interval_label(rec)
        for values, lo, hi, name, dash in (
            (rec.tcp, rec.tcp_lo, rec.tcp_hi, "TCP", "solid"),
            (rec.ntcp, rec.ntcp_lo, rec.ntcp_hi, "NTCP", "dash"),
        ):
            mean = np.asarray(values, dtype=float)
            if iv_label:
                lower = np.clip(np.asarray(lo, dtype=float), 0.0, 1.0)
                upper = np.clip(np.asarray(hi, dtype=float), 0.0, 1.0)
                fig.add_trace(
                    go.Scatter(
                        x=np.concatenate([doses, doses[::-1]]),
                        y=np.concatenate([upper, lower[::-1]]),
                        mode="lines", fill="toself",
                        fillcolor=rgba(colour, 0.16 if name == "TCP" else 0.10),
                        line=dict(width=0, color=colour),
                        name=f"{label}: {name} {iv_label}", legendgroup=group, showlegend=False,
                        hoverinfo="skip", meta="band",
                    ),
                    row=1, col=1,
                )
                band_label = band_label or iv_label
                custom = np.column_stack([lower, upper])
                iv_hover = f" ({iv_label} %{{customdata[0]:.1%}}–%{{customdata[1]:.1%}})"
            else:
                custom, iv_hover = None, ""
            fig.add_trace(
                go.Scatter(
                    x=doses, y=mean, mode="lines", name=f"{label}: {name}",
                    legendgroup=group,
                    line=dict(color=colour, width=2.5, dash=dash),
                    customdata=custom,
                    hovertemplate=(
                        f"<b>{label}</b><br>dose %{{x:.2f}} Gy/fx<br>{name} %{{y:.1%}}"
                        f"{iv_hover}<extra></extra>"
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
                    f"<b>{label}</b><br>dose %{{x:.2f}} Gy/fx<br>{PREDICTED_REWARD}: %{{y:.3f}}"
                    "<extra></extra>"
                ),
            ),
            row=2, col=1,
        )
        dose_iv = rec.dose_interval_gy if iv_label else None
        if dose_iv and dose_iv[1] > dose_iv[0]:
            # A thick line at the recommendation's reward (not a shaded column: with several
            # cases, overlapping columns grey out the whole plot).
            level = level_label(rec.interval_level or 0.8)
            fig.add_trace(
                go.Scatter(
                    x=list(dose_iv), y=[rec.recommended_reward] * 2, mode="lines",
                    name=f"{label}: best dose, {level}", legendgroup=group, showlegend=False,
                    line=dict(color=rgba(colour, 0.45), width=9), meta="dose-interval",
                    hovertemplate=(f"<b>{label}</b> best dose, {level}<br>{dose_text(dose_iv[0])}–"
                                   f"{dose_text(dose_iv[1])} Gy/fx<br>{DOSE_INTERVAL_MEANING}"
                                   "<extra></extra>"),
                ),
                row=2, col=1,
            )
            any_dose_interval = True
        for row in (1, 2):
            fig.add_vline(
                x=rec.recommended_dose_gy, line=dict(color=colour, width=2, dash="dash"),
                opacity=0.9,
                row=row, col=1,
            )
            if rec.proposal is not None:
                fig.add_vline(
                    x=rec.proposal["dose_gy"], line=dict(color=colour, width=2, dash="dot"),
                    opacity=0.9, row=row, col=1,
                )
        if rec.proposal is not None:
            fig.add_trace(
                go.Scatter(
                    x=[rec.proposal["dose_gy"]], y=[rec.proposal["reward"]], mode="markers",
                    name=f"{label}: your proposal", legendgroup=group, showlegend=False,
                    marker=dict(symbol="square-open", size=12, color=colour,
                                line=dict(width=2.5, color=colour)),
                    meta="proposal", hovertemplate=proposal_hover(rec),
                ),
                row=2, col=1,
            )
        if rec.recommender == "odm":
            j = nearest_index(doses, rec.exact_argmax_dose_gy)
            fig.add_trace(
                go.Scatter(
                    x=[doses[j]], y=[rec.reward[j]], mode="markers",
                    name=f"{label}: exact reward argmax", legendgroup=group, showlegend=False,
                    marker=dict(symbol="diamond-open", size=12, color=colour,
                                line=dict(width=2, color=colour)),
                    meta="exact-argmax",
                    hovertemplate=(f"<b>{label}</b> exact reward argmax<br>"
                                   f"dose {fmt_dose(doses[j])} Gy/fx<br>"
                                   f"{PREDICTED_REWARD}: {rec.reward[j]:.3f}<extra></extra>"),
                ),
                row=2, col=1,
            )
        where = (rec.recommended_dose_gy - grid[0]) / max(grid[-1] - grid[0], 1e-9)
        anchor = "left" if where < 0.15 else "right" if where > 0.85 else "center"
        text = f"{label}: recommended {recommendation_text(rec)}"
        if dose_iv and dose_iv[1] > dose_iv[0]:
            text += (f" (best dose {dose_text(dose_iv[0])}–{dose_text(dose_iv[1])}, "
                     f"{level_label(rec.interval_level or 0.8)})")
        if rec.proposal is not None:
            text += f" · your proposal {dose_text(rec.proposal['dose_gy'])} Gy/fx"
        fig.add_annotation(
            x=rec.recommended_dose_gy, y=1.0, xref="x", yref="y domain",
            text=text,
            showarrow=False, yanchor="bottom", xanchor=anchor, yshift=4 + 16 * i,
            font=dict(size=11, color=colour), bgcolor="rgba(255,255,255,0.8)",
        )

    # Subtitle lines kept under ~95 characters: longer ones are cut at the plot's width.
    marks = [f"shaded: {band_label} of TCP and NTCP"] if band_label else []
    if any(r.proposal is not None for r in recs):
        marks.append("dotted: your proposal")
    if any(r.recommender == "odm" for r in recs):
        marks.append("◇ exact argmax")
    notes = "<br>" + " · ".join(marks) if marks else ""
    if any_dose_interval:
        level = next(level_label(r.interval_level or 0.8) for r in recs if interval_label(r))
        notes += f"<br>thick line on the reward: best dose, {level} ({DOSE_INTERVAL_MEANING})"
    recommendation_layout(fig, recs, protocol, "Dose response", 560 + 22 * len(recs), notes,
                           dict(l=80, r=30, t=76 + 16 * len(recs) + 18 * notes.count("<br>"),
                                b=80))
    fig.update_layout(legend=dict(y=-0.16, entrywidth=210, entrywidthmode="pixels",
                                  tracegroupgap=6))
    pad = 0.02 * (grid[-1] - grid[0])
    fig.update_xaxes(range=[grid[0] - pad, grid[-1] + pad], **GRIDDED)
    fig.update_xaxes(title_text="adaptive dose per fraction (Gy/fx)", row=2, col=1)
    fig.update_yaxes(**GRIDDED)
    fig.update_yaxes(title_text="probability (TCP solid, NTCP dashed)", range=[0, 1.02],
                     tickformat=".0%", row=1, col=1)
    fig.update_yaxes(title_text="predicted reward (0–3)", rangemode="tozero", row=2, col=1)
    return fig
