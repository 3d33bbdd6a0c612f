"""Small pieces that several panels build alike: a figure card, a "not available" box, number
cells that show a missing value as a dash, the status line under an action, the reading of an
uploaded file, and the progress of work in a worker thread (its shared state and its bar)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from shiny import ui
from shiny.types import FileInfo

from app import shared
from app.plots import output_figure
from engine.core.tabular import Problem, SchemaError

__all__ = ["Progress", "figure_card", "number", "plus_minus", "progress_bar", "read_upload",
           "remove_uploads", "status_line", "unavailable"]

T = TypeVar("T")


def figure_card(title: str, note_id: str | None, figure_id: str) -> ui.Tag:
    """A card that can go full screen: the title, a note output (a caption or the empty state;
    none when ``note_id`` is None) and a :class:`app.plots.render_figure` output as tall as its
    figure."""
    note = () if note_id is None else (ui.output_ui(note_id),)
    return ui.card(
        ui.card_header(title),
        *note,
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


def status_line(message: tuple[bool, str] | None, id: str | None = None) -> ui.Tag | None:
    """The line under an action: ``(True, text)`` says what it did (green), ``(False, text)``
    why it did nothing (red); a ``role="status"`` region, so screen readers announce it.
    Nothing before the first action."""
    if message is None:
        return None
    ok, text = message
    return ui.div(text, class_="small mt-2 " + ("text-success" if ok else "text-danger"),
                  role="status", id=id)


def read_upload(
    files: list[FileInfo] | None,
    read: Callable[[Path], T],
    *,
    detail: Callable[[Exception], str] = str,
) -> tuple[str, T | list[Problem]] | None:
    """Read the first file of a file input with ``read``, then delete the uploaded files.

    Shiny keeps an upload in a temporary folder until the session ends; once read, the file
    (and its folder, when empty) is removed at once, accepted or refused, so a long session
    does not pile uploads up on the server's disk. Read a file input's value once.

    Returns:
        None before a file is chosen; else the file's name (as the user's browser gave it) and
        what ``read`` made of it, or every problem when ``read`` refused it
        (:class:`~engine.core.tabular.SchemaError`) or could not read it at all (an ``OSError``,
        ``TypeError`` or ``ValueError``: one problem, "the file could not be read (…)" with
        ``detail(err)`` in the brackets).
    """
    if not files:
        return None
    info = files[0]
    name = str(info.get("name", "the file"))
    try:
        return name, read(Path(info["datapath"]))
    except SchemaError as err:
        return name, err.problems
    except (OSError, TypeError, ValueError) as err:
        return name, [Problem(None, None, None, f"the file could not be read ({detail(err)})")]
    finally:
        remove_uploads(files)


def remove_uploads(files: list[FileInfo]) -> None:
    """Delete uploaded files and their folders when left empty (errors ignored: a file already
    gone is fine)."""
    for info in files:
        path = Path(str(info.get("datapath", "")))
        if not path.name:
            continue
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            path.parent.rmdir()  # only when empty


class Progress:
    """The share done (0–1) and what is being done: written by a worker thread (call it), read by
    the session's progress output (:meth:`get`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = (0.0, "")

    def __call__(self, share: float, text: str) -> None:
        """Record ``share`` (clipped to 0–1) and ``text`` (what is being done, lower case)."""
        with self._lock:
            self._state = (min(max(share, 0.0), 1.0), text)

    def get(self) -> tuple[float, str]:
        """The last (share, text) recorded; (0.0, "") before any."""
        with self._lock:
            return self._state


def progress_bar(share: float, *, class_: str, style: str) -> ui.Tag:
    """A striped, animated Bootstrap progress bar at ``share`` (0–1) done, never drawn narrower
    than 5 % so a start shows; ``class_`` and ``style`` are the outer ``.progress`` element's."""
    pct = max(0, min(100, round(100 * share)))
    return ui.div(ui.div(class_="progress-bar progress-bar-striped progress-bar-animated",
                         role="progressbar", style=f"width: {max(pct, 5)}%",
                         aria_valuenow=str(pct), aria_valuemin="0", aria_valuemax="100"),
                  class_=class_, style=style)
