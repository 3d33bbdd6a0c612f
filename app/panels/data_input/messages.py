"""The Data input panel's messages: success lines, refusals with every problem, times."""

from __future__ import annotations

from datetime import datetime

from shiny import ui

from engine.core.protocols import Protocol
from engine.core.schema import PROPOSAL_COLUMN
from engine.core.tabular import Problem

__all__ = ["error_box", "form_labels", "result_line", "success_line", "summary", "when"]


def when(t: datetime) -> str:
    """A stored time as the panel shows it (``2026-11-23 18:30 UTC``)."""
    return t.strftime("%Y-%m-%d %H:%M UTC")


def summary(added: int, replaced: int, source: str) -> str:
    """``"3 cases added, 1 replaced (same id) from the example file."``"""
    parts = [f"{added} case{'s' if added != 1 else ''} added"]
    if replaced:
        parts.append(f"{replaced} replaced (same id)")
    return f"{', '.join(parts)} from {source}."


def success_line(text: str | None) -> ui.Tag | None:
    """A part's success line under its buttons (nothing when there is no text)."""
    return ui.p(text, class_="text-success small mt-2") if text else None


def result_line(ok: bool, text: str) -> ui.Tag:
    """A line saying what an action did (green) or why it did nothing (red)."""
    return ui.p(text, class_="small mt-2 " + ("text-success" if ok else "text-danger"))


def form_labels(protocol: Protocol) -> dict[str, str]:
    """Column → the label the form shows for it (also naming the fields of a refusal)."""
    labels = {"patient_id": "Patient id", "site_id": "Tumour site number",
              "dose_eval_gy": "Evaluation-phase dose per fraction",
              "dose_adapt_gy": "Adaptive dose per fraction given",
              PROPOSAL_COLUMN: "Your proposed adaptive dose per fraction"}
    return labels | {f.name: f.label for f in protocol.features}


def _problem_list(
    problems: list[Problem], *, show_rows: bool, labels: dict[str, str] | None = None
) -> ui.Tag:
    """One item per problem: where (row, column, value) in bold, then what is wrong."""
    items = []
    for p in problems:
        message = p.message
        prefix = f"row {p.row}, column {p.column}: " if p.column else f"row {p.row}: "
        if message.startswith(prefix):
            message = message[len(prefix):]
        where = []
        if show_rows and p.row is not None:
            where.append(f"Row {p.row}")
        if p.column and labels and p.column in labels:
            where.append(f"{labels[p.column]} ({p.column})")
        elif p.column:
            where.append(f"column {p.column}" if where else f"Column {p.column}")
        if p.value is not None and p.value != "":
            where.append(f"value “{p.value}”")
        items.append(ui.tags.li(
            ui.div(" · ".join(where), class_="problem-where") if where else None,
            ui.div(message[:1].upper() + message[1:], class_="problem-message"),
        ))
    return ui.tags.ul(*items, class_="problem-list")


def error_box(
    title: str, problems: list[Problem], *, show_rows: bool, note: str,
    labels: dict[str, str] | None = None,
) -> ui.Tag:
    """A refusal: what was not done, what to do, then every problem (row, column, value)."""
    return ui.div(
        ui.tags.strong(title),
        ui.p(note, class_="mb-2"),
        _problem_list(problems, show_rows=show_rows, labels=labels),
        class_="alert alert-danger artds-error",
        role="alert",
    )
