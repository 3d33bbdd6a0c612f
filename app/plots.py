"""Render engine figures in the app without shinywidgets.

plotly.js is loaded once in the page head (``/vendor/plotly.min.js``, the file shipped inside
the plotly package). :class:`render_figure` sends a figure's JSON to the custom output binding in
``www/plots.js``, which draws it with ``Plotly.react`` into a persistent element, so zoom and pan
survive updates (the figures set ``layout.uirevision``). Returning None clears the plot.
"""

from __future__ import annotations

import json

import plotly.graph_objects as go
from htmltools import Tag, css, tags
from shiny.module import resolve_id
from shiny.render.renderer import Jsonifiable, Renderer

from engine.figures.style import PLOTLY_CONFIG

__all__ = ["output_figure", "render_figure"]


def output_figure(id: str, *, min_height: str = "200px") -> Tag:
    """Placeholder for a :class:`render_figure` output (namespaced inside modules)."""
    return tags.div(
        id=resolve_id(id),
        class_="artds-figure",
        style=css(width="100%", min_height=min_height),
    )


class render_figure(Renderer[go.Figure]):
    """Render a plotly figure (or None for nothing) through the ``artds.figure`` binding."""

    def auto_output_ui(self) -> Tag:
        return output_figure(self.output_id)

    async def transform(self, value: go.Figure) -> Jsonifiable:
        spec = json.loads(value.to_json())
        return {"data": spec.get("data", []), "layout": spec.get("layout", {}),
                "config": PLOTLY_CONFIG}
