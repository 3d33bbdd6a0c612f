"""The one home of plot style: colours, fonts, the shared layout and the escaping of user text.

Every plotly figure of the project (ARCliDS in :mod:`engine.figures`, the planner in
:mod:`engine.planner.figures`, SF2 in :mod:`engine.sf2.figures`), the app (``app/plots.py``) and
the HTML report take their look from here, so a change of palette or font changes them all.

Colours come from the Okabe–Ito palette (distinguishable with the common colour-vision
deficiencies). Every string that comes from user input (patient, site and sample ids) goes
through :func:`safe` before it reaches plotly, which would otherwise interpret a subset of HTML
tags in trace names, hover text and titles.
"""

from __future__ import annotations

import hashlib
import html
import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import plotly.graph_objects as go

from engine.arclids.architectures import ARCH_KEYS, REFERENCE, arch_label

if TYPE_CHECKING:
    from engine.core.protocols import Protocol

__all__ = [
    "ARCH_COLOURS",
    "ARCH_DASHES",
    "BLACK",
    "BLUE",
    "BLUISH_GREEN",
    "CASE_COLOURS",
    "FONT",
    "GRID",
    "GRIDDED",
    "HISTOGRAM_GREY",
    "MUTED",
    "ORANGE",
    "PLOTLY_CONFIG",
    "REDDISH_PURPLE",
    "SKY_BLUE",
    "VERMILLION",
    "VIRTUAL_TRIAL_NOTE",
    "add_empty_note",
    "arch_colour",
    "arch_dash",
    "arch_order",
    "base_layout",
    "case_colour",
    "case_revision",
    "fmt_dose",
    "rgba",
    "safe",
    "safe_arch_label",
    "subtitle",
    "wrap",
]

# Okabe–Ito colours by name (Okabe & Ito 2008, "Color Universal Design").
BLUE = "#0072B2"
VERMILLION = "#D55E00"
BLUISH_GREEN = "#009E73"
REDDISH_PURPLE = "#CC79A7"
ORANGE = "#E69F00"
SKY_BLUE = "#56B4E9"
BLACK = "#000000"

CASE_COLOURS: tuple[str, ...] = (
    BLUE, VERMILLION, BLUISH_GREEN, REDDISH_PURPLE, ORANGE, SKY_BLUE, BLACK,
)
"""Okabe–Ito colours, one per case in display order (cycled beyond seven cases)."""

ARCH_COLOURS: dict[str, str] = {
    "glogd": BLUE,
    "single": VERMILLION,
    "logistic": BLUISH_GREEN,
    REFERENCE: "#555555",
}
"""Colour per architecture key of :mod:`engine.arclids.architectures` (and the reference truth,
dark grey) in the model-review figures."""
ARCH_DASHES: dict[str, str] = {
    "glogd": "solid",
    "single": "dash",
    "logistic": "dashdot",
    REFERENCE: "dot",
}
"""plotly line dash per architecture key, so the architectures stay apart in greyscale too."""

FONT: dict[str, Any] = dict(
    family="Helvetica Neue, Helvetica, Arial, sans-serif", size=13, color="#222222"
)
"""Font of every figure (sizes in px)."""
GRID = "#e3e3e3"
"""Colour of grid lines."""
GRIDDED: dict[str, Any] = dict(showgrid=True, gridcolor=GRID, mirror=True)
"""Axis style of a plot with grid lines and a full frame (``fig.update_xaxes(**GRIDDED)``)."""
MUTED = "#666666"
"""Colour of subtitles and of the notes shown in place of an empty figure."""
HISTOGRAM_GREY = "#bdbdbd"
"""Fill of a population histogram, behind the coloured marks of the cases."""

VIRTUAL_TRIAL_NOTE = "Virtual trial (simulated patients) — not clinical evidence"
"""Caption of every ARCliDS figure that shows virtual-trial numbers."""

PLOTLY_CONFIG: dict = {
    "displaylogo": False,
    "responsive": True,
    "scrollZoom": False,
    "modeBarButtonsToRemove": ["select2d", "lasso2d", "autoScale2d"],
    "toImageButtonOptions": {"format": "png", "scale": 2},
}
"""plotly.js config used wherever a figure is rendered: modebar with zoom/reset, no logo link."""

_MARGIN_PX = dict(l=70, r=30, t=80, b=60)
"""Default plot margins (px): room for the y title, the title above and the legend below."""


def case_colour(index: int) -> str:
    """Colour of the ``index``-th case shown (same in every figure, the app and the report)."""
    return CASE_COLOURS[index % len(CASE_COLOURS)]


def arch_colour(arch: str, k: int) -> str:
    """Colour of architecture ``arch``, the ``k``-th drawn; an unknown key gets a case colour."""
    return ARCH_COLOURS.get(arch, CASE_COLOURS[(k + 3) % len(CASE_COLOURS)])


def arch_dash(arch: str) -> str:
    """Line dash of architecture ``arch`` (solid for an unknown key)."""
    return ARCH_DASHES.get(arch, "solid")


def arch_order(archs: Sequence[str]) -> list[str]:
    """``archs`` in table order (served architecture first, the reference truth last), unknown
    keys after them in their given order."""
    order = (*ARCH_KEYS, REFERENCE)
    return [a for a in order if a in archs] + [a for a in archs if a not in order]


def safe(text: object) -> str:
    """Escape user text for plotly labels (plotly renders a subset of HTML in them)."""
    return html.escape(str(text), quote=False)


def safe_arch_label(arch: str) -> str:
    """Display name of an architecture key, escaped for plotly."""
    return safe(arch_label(arch))


def fmt_dose(dose_gy: float) -> str:
    """A dose (Gy) in the shortest exact form: 3 → "3", 2.75 → "2.75"."""
    return f"{dose_gy:g}"


def rgba(colour: str, alpha: float) -> str:
    """``#rrggbb`` → ``rgba(r,g,b,alpha)`` (plotly fill colours); ``alpha`` in [0, 1]."""
    r, g, b = (int(colour[k:k + 2], 16) for k in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha:g})"


def wrap(text: str, width: int = 30) -> str:
    """Break ``text`` into lines of at most ``width`` characters joined by ``<br>``."""
    return "<br>".join(textwrap.wrap(text, width=width)) or text


def subtitle(text: str) -> dict[str, Any]:
    """plotly ``layout.title.subtitle`` of ``text`` in the muted subtitle font."""
    return dict(text=text, font=dict(size=12, color=MUTED))


def case_revision(protocol: Protocol, labels: Sequence[str], model_version: str = "") -> str:
    """Same protocol, cases and model → same revision, so zoom survives e.g. moving the dose
    (another model redraws the full view: its curves may lie elsewhere)."""
    digest = hashlib.sha1("\x00".join([model_version, *labels]).encode()).hexdigest()[:12]
    return f"{protocol.name}-{digest}"


def base_layout(
    fig: go.Figure,
    title: str,
    height_px: int,
    revision: str,
    *,
    subtitle_text: str | None = None,
    margin_px: dict[str, int] | None = None,
    legend_y: float = -0.14,
) -> None:
    """The shared look: template, font, title at the top left, horizontal legend below.

    Args:
        fig: updated in place.
        title: already escaped (:func:`safe`) where it holds user text.
        height_px: figure height.
        revision: plotly ``uirevision``; the user's zoom is kept while it is unchanged.
        subtitle_text: a second, smaller line under the title (muted), if any.
        margin_px: margins that differ from the default (keys ``l``, ``r``, ``t``, ``b``).
        legend_y: top of the legend in plot-area fractions (negative: below the x axis).
    """
    title_spec: dict[str, Any] = dict(
        text=title, x=0.0, xanchor="left", y=1.0, yref="container", yanchor="top",
        pad=dict(t=12, l=4), font=dict(size=16),
    )
    if subtitle_text is not None:
        title_spec["subtitle"] = subtitle(subtitle_text)
    fig.update_layout(
        template="simple_white",
        font=FONT,
        title=title_spec,
        height=height_px,
        autosize=True,
        margin=_MARGIN_PX | (margin_px or {}),
        hoverlabel=dict(font_size=13, namelength=-1),
        legend=dict(
            orientation="h", yanchor="top", y=legend_y, xanchor="left", x=0.0,
            font=dict(size=12),
        ),
        uirevision=revision,
    )


def add_empty_note(fig: go.Figure, text: str) -> None:
    """``text`` in the middle of an empty figure (e.g. "No cases to show")."""
    fig.add_annotation(text=text, xref="paper", yref="paper", x=0.5, y=0.5, showarrow=False,
                       font=dict(size=16, color=MUTED))
