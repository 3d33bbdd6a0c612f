"""The profile source the SF2 and Systemic therapy panels share: a cell line of the training data,
or molecular profiles uploaded as a CSV (one row per sample).

:func:`profile_source_ui` builds the choice and both halves; :func:`profile_source_server`, called
inside the panel's module server, shows the chosen half, reads an upload with the panel's engine
reader (:func:`app.panels.widgets.read_upload`: every problem listed, the file deleted once read)
and returns the accepted upload. The panel keeps what differs: its cell-line choices, the upload's
columns, the example downloads and what it does with the profile.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from shiny import reactive, render, ui
from shiny.session import Inputs
from shiny.ui import TagChild

from app.panels.widgets import read_upload

__all__ = ["MAX_PROBLEMS_SHOWN", "no_profile_note", "profile_source_server", "profile_source_ui"]

T = TypeVar("T")

MAX_PROBLEMS_SHOWN = 8
"""Problems of a refused upload listed; the rest are counted ("and N more problems")."""


def profile_source_ui(
    *,
    line_choice: str,
    upload_choice: str,
    line_choices: dict[str, dict[str, str]],
    selected_line: str | None,
    hint: TagChild,
) -> ui.TagList:
    """The source choice (inputs ``source``, ``line``, ``upload``) and its two halves.

    Args:
        line_choice, upload_choice: the labels of the two sources.
        line_choices: the cell-line selector's choices, ``{group: {line id: label}}``.
        selected_line: the line selected when the panel opens.
        hint: the small text under the file input (the columns, the size limit, the examples).
    """
    return ui.TagList(
        ui.input_radio_buttons("source", None, choices={
            "line": line_choice, "upload": upload_choice}, selected="line"),
        # switched by the server (profile_source_server), not by a conditional panel: Shiny
        # evaluates a conditional panel's condition as a JavaScript string, which the app's
        # Content-Security-Policy forbids (app.security)
        ui.navset_hidden(ui.nav_panel(
            "line",
            ui.input_selectize("line", "Cell line", choices=line_choices,
                               selected=selected_line, width="100%"),
        ), ui.nav_panel(
            "upload",
            ui.input_file("upload", "Profiles (CSV, one row per sample)",
                          accept=[".csv", "text/csv"], multiple=False, width="100%",
                          button_label="Choose file…"),
            ui.tags.small(hint, class_="text-muted d-block mb-2"),
            ui.output_ui("upload_status"),
            ui.output_ui("sample_picker"),
        ), id="source_panel", selected="line"),
    )


def profile_source_server(
    input: Inputs,
    read: Callable[[Path], T],
    *,
    notes: Callable[[T], list[str]] | None = None,
) -> reactive.Calc_[T | None]:
    """The server half of :func:`profile_source_ui`; call it inside the panel's module server.

    Registers the outputs ``upload_status`` (every problem of a refused file, at most
    :data:`MAX_PROBLEMS_SHOWN` listed; else the samples read and ``notes(upload)``) and
    ``sample_picker`` (input ``sample``, an accepted upload's ``samples.index``).

    Args:
        input: the module's inputs.
        read: the engine reader of an uploaded file (raising
            :class:`~engine.core.tabular.SchemaError` on a refusal); what it returns has a
            ``samples`` table indexed by sample id.
        notes: what the reader assumed of an accepted file, one sentence each (none if None).

    Returns:
        The accepted upload, None before one (or after a refused one).
    """
    state: reactive.Value[tuple[str, Any] | None] = reactive.value(None)

    @reactive.effect
    def _show_source() -> None:
        ui.update_navset("source_panel", selected=input.source())

    @reactive.effect
    @reactive.event(input.upload)
    def _read_upload() -> None:
        got = read_upload(input.upload(), read)
        if got is not None:
            state.set(got)

    @render.ui
    def upload_status():
        got = state()
        if got is None:
            return None
        name, content = got
        if isinstance(content, list):
            shown = content[:MAX_PROBLEMS_SHOWN]
            more = len(content) - len(shown)
            return ui.div(
                ui.strong(f"{name} was refused:"),
                ui.tags.ul(*[ui.tags.li(p.message) for p in shown]),
                ui.tags.small(f"and {more} more problems") if more else None,
                class_="alert alert-danger small py-2", role="alert",
            )
        n = len(content.samples)
        said = [ui.tags.li(note) for note in notes(content)] if notes is not None else []
        return ui.div(f"{name}: {n} sample{'s' if n != 1 else ''} read.",
                      ui.tags.ul(*said, class_="mb-0") if said else None,
                      class_="alert alert-success small py-2 mb-2")

    @reactive.calc
    def uploaded() -> T | None:
        got = state()
        if got is None or isinstance(got[1], list):
            return None
        return got[1]

    @render.ui
    def sample_picker():
        up = uploaded()
        if up is None:
            return None
        ids = list(up.samples.index)
        return ui.input_select("sample", "Sample", choices=ids, selected=ids[0], width="100%")

    return uploaded


def no_profile_note(source: str) -> ui.Tag:
    """The empty state before a profile is chosen, for the current ``source``."""
    msg = ("Upload a profile file, or pick a cell line." if source == "upload"
           else "Pick a cell line.")
    return ui.div(msg, class_="artds-empty")
