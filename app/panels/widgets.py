"""Small UI pieces that several panels build alike: a figure card, a "not available" box and
number cells that show a missing value as a dash."""

from __future__ import annotations

from shiny import ui

from app import shared
from app.plots import output_figure

__all__ = ["figure_card", "number", "plus_minus", "unavailable"]


def figure_card(title: str, note_id: str, figure_id: str) -> ui.Tag:
    """A card that can go full screen: the title, a note output (a caption or the empty state)
    and a :class:`app.plots.render_figure` output as tall as its figure."""
    return ui.card(
        ui.card_header(title),
        ui.output_ui(note_id),
        output_figure(figure_id, min_height="0px"),
        full_screen=True,
    )


def unavailable(message: str, why: str | None = None) -> ui.Tag:
    """The empty state of something not trained or not loaded: what to run (its `backticked`
    command shown as code) and, smaller, the one-line reason it did not load."""
    return ui.div(
        ui.p(shared.with_code(message), class_="mb-1"),
        ui.tags.small(shared.with_code(why), class_="text-muted d-block") if why else None,
        class_="artds-empty",
    )


def number(value: object, fmt: str = ".3f") -> str:
    """``value`` formatted with ``fmt``; "–" when it is None or NaN."""
    if value is None or (isinstance(value, float) and value != value):
        return "–"
    return format(float(value), fmt)


def plus_minus(mean: object, spread: object, fmt: str = ".2f") -> str:
    """``"0.64 ± 0.16"`` (just the mean when the spread is None; "–" without a mean)."""
    if mean is None:
        return "–"
    return number(mean, fmt) + ("" if spread is None else f" ± {number(spread, fmt)}")
