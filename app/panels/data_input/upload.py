"""Data input, part two: a CSV file of cases (refused as a whole when it has problems)."""

from __future__ import annotations

import pandas as pd
from shiny import reactive, render, ui
from shiny.session import Inputs

from app.panels.data_input.messages import error_box, success_line, summary
from app.panels.data_input.state import DataInputState
from app.panels.widgets import read_upload
from engine.core.schema import MAX_FILE_BYTES, read_cases
from engine.core.tabular import Problem

__all__ = ["upload_card", "upload_server"]


def upload_card() -> ui.Tag:
    return ui.card(
        ui.card_header("Upload a CSV file"),
        ui.input_file("upload", "Cases file (CSV, UTF-8, one row per case)",
                      accept=[".csv", "text/csv"], multiple=False, width="100%",
                      button_label="Choose file…"),
        ui.tags.small(
            "Columns: the ids, every feature and dose_eval_gy, as in the example "
            f"files (at most {MAX_FILE_BYTES // (1024 * 1024)} MB). A file with "
            "problems is refused as a whole; your current cases stay as they are.",
            class_="text-muted",
        ),
        ui.output_ui("upload_status"),
    )


def upload_server(input: Inputs, state: DataInputState) -> None:
    """Read an uploaded file with :func:`engine.core.schema.read_cases` and save its cases, both
    in a database worker thread (:meth:`DataInputState.add_cases`); add its cases, or show every
    problem and leave the current cases untouched. The uploaded file is deleted once read."""
    refused: reactive.Value[tuple[str, list[Problem]] | None] = reactive.value(None)
    """(file name, its problems) of the last file refused, None after a success."""
    working: reactive.Value[str | None] = reactive.value(None)
    """The file being checked and saved (None when none is)."""

    @reactive.effect
    @reactive.event(state.protocol)
    def _forget_refusal() -> None:
        refused.set(None)

    @reactive.effect
    @reactive.event(input.upload)
    def _upload() -> None:
        files = input.upload()
        if not files:
            return
        protocol = state.protocol()
        filename = str(files[0].get("name", "the file"))

        def read() -> pd.DataFrame | list[Problem]:
            got = read_upload(files, lambda path: read_cases(path, protocol),
                              detail=lambda err: type(err).__name__)
            assert got is not None  # files is not empty
            return got[1]

        def done(added: int, replaced: int) -> None:
            working.set(None)
            refused.set(None)
            state.set_status("upload", summary(added, replaced, filename))

        def refuse(problems: list[Problem]) -> None:
            working.set(None)
            refused.set((filename, problems))
            state.set_status("upload", "")

        working.set(filename)
        state.set_status("upload", "")
        state.add_cases(read, "upload", done=done, refused=refuse)

    @render.ui
    def upload_status():
        name = working()
        if name is not None:
            return ui.p(f"Checking and saving {name}…", class_="small text-muted mt-2",
                        role="status")
        last = refused()
        if last is not None:
            filename, problems = last
            n = len(problems)
            return error_box(
                f"{filename} was not loaded: {n} problem{'s' if n != 1 else ''} found.",
                problems,
                show_rows=True,
                note="Nothing was imported; your current cases are unchanged. Fix the file "
                "and upload it again.",
            )
        return success_line(state.status().get("upload"))
