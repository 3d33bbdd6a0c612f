"""The cumulative DVHs of an imported plan (:mod:`engine.dvh`), for the app's "Import plan" panel
and the HTML report.

One line per structure: the structures that play a protocol role (the tumour, the organ at risk,
the constraint organs) solid and thick, the others thin and dashed. Each constraint on a point of
a DVH (``V<x>Gy`` ≤ limit %, ``D<x>%`` ≤ limit Gy, physical dose) is a marker at its limit on the
structure's colour, a check mark when the plan meets it and a cross when it does not, with the
value, the margin and the source on hover. Structure names come from the user's files and are
escaped.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

import plotly.graph_objects as go

from engine.figures.style import (
    BLUISH_GREEN,
    CASE_COLOURS,
    GRIDDED,
    VERMILLION,
    add_empty_note,
    base_layout,
    safe,
    wrap,
)

if TYPE_CHECKING:
    from engine.dvh import PlanImport

__all__ = ["dvh_figure"]

_DASHES = ("dash", "dot", "dashdot", "longdash")


def dvh_figure(result: PlanImport, *, structures: Sequence[str] | None = None,
               n_points: int = 200, height_px: int = 480) -> go.Figure:
    """Cumulative DVH (volume % receiving at least each dose) of the plan's structures.

    Args:
        result: an imported plan.
        structures: the structures drawn, in order (default: all, those playing a role first,
            in the protocol's role order).
        n_points: points per curve.
        height_px: figure height.

    Returns:
        A figure with one ``scatter`` line per structure (``meta`` = the structure's name) and
        one marker per DVH-point constraint checked (``meta="constraint"``).
    """
    fig = go.Figure()
    by_name = {s.name: s for s in result.structures}
    if structures is None:  # the roles' structures in the protocol's role order, then the rest
        structures = list(dict.fromkeys(
            [a.structure for a in result.roles.values() if a.structure in by_name]
            + [s.name for s in result.structures]))
    colours: dict[str, str] = {}
    for i, name in enumerate(structures):
        s = by_name[name]
        colour = CASE_COLOURS[i % len(CASE_COLOURS)]
        colours[name] = colour
        dose, volume = s.dvh.cumulative(n_points)
        role = f" ({', '.join(s.roles)})" if s.roles else ""
        label = safe(f"{name}{role}")
        fig.add_trace(go.Scatter(
            x=dose, y=volume, mode="lines", name=label, meta=name,
            line=dict(color=colour, width=3 if s.roles else 1.5,
                      dash="solid" if s.roles else _DASHES[i % len(_DASHES)]),
            hovertemplate=f"{label}<br>%{{y:.1f}} % receives ≥ %{{x:.2f}} Gy<extra></extra>",
        ))
    for c in result.constraints:
        k = c.constraint
        if c.passed is None or k.dose != "physical" or c.structure not in colours:
            continue
        if k.metric.kind == "volume_percent":
            x, y = k.metric.x, k.limit
        elif k.metric.kind == "dose_at_percent":
            x, y = k.limit, k.metric.x
        else:
            continue
        state = "met" if c.passed else "not met"
        fig.add_trace(go.Scatter(
            x=[x], y=[y], mode="markers", meta="constraint", showlegend=False,
            marker=dict(symbol="circle-x" if not c.passed else "circle-cross-open", size=13,
                        color=BLUISH_GREEN if c.passed else VERMILLION,
                        line=dict(width=2, color=colours[c.structure])),
            hovertemplate=(f"{safe(k.label)} — {state}<br>{safe(c.structure)}: "
                           f"{c.value:.1f} {k.unit} (margin {c.margin:+.1f} {k.unit})<br>"
                           f"{wrap(safe(k.source), 70)}<extra></extra>"),
        ))
    base_layout(
        fig, "Cumulative DVH", height_px,
        _revision(result),
        subtitle_text=(f"Dose of the plan's {result.n_plan_fractions} fractions (physical); "
                       f"the features scale it to the {result.n_eval_fractions} evaluation "
                       "fractions"),
        legend_y=-0.18,
    )
    fig.update_xaxes(title_text="Dose (Gy)", rangemode="tozero", **GRIDDED)
    fig.update_yaxes(title_text="Volume (%)", range=[0, 102], **GRIDDED)
    if not structures:
        add_empty_note(fig, "No structure has a DVH")
    return fig


def _revision(result: PlanImport) -> str:
    """plotly ``uirevision``: the same protocol and files keep the user's zoom."""
    digest = hashlib.sha1("\x00".join(sorted(result.files.values())).encode()).hexdigest()[:12]
    return f"dvh-{result.protocol}-{digest}"
