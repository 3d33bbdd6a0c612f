"""Population panel: where the shown cases sit in the virtual trial, feature by feature."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
from shiny import module, render, ui

from app import shared
from app.panels.widgets import figure_card
from app.plots import render_figure
from engine.core.protocols import Protocol
from engine.figures.population import population_figure

__all__ = ["population_server", "population_ui"]


@module.ui
def population_ui() -> ui.TagList:
    return figure_card("Virtual trial population", "intro", "plot")


@module.server
def population_server(
    input, output, session, *,
    protocol: Callable[[], Protocol],
    cases: Callable[[], pd.DataFrame],
) -> None:
    """Histograms of the protocol's virtual-trial population with the shown cases marked."""

    @render.ui
    def intro():
        n = len(shared.POPULATIONS[protocol().name])
        text = (
            f"Grey bars: the {n} complete cases of the {protocol().label} virtual trial "
            "(simulated patients, not clinical data). Coloured lines: the shown cases; hover "
            "for the value and its percentile."
        )
        if cases().empty:
            return ui.TagList(
                ui.p(text, class_="small text-muted"),
                ui.div("Load an example patient or upload a file to mark it on the "
                       "histograms.", class_="artds-empty"),
            )
        return ui.p(text, class_="small text-muted")

    @render_figure
    def plot():
        p = protocol()
        return population_figure(shared.POPULATIONS[p.name], p, cases())
