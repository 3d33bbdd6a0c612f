"""Data input, part three: one patient typed into a form (pre-filled from the first example)."""

from __future__ import annotations

import re
from collections.abc import Mapping

import pandas as pd
from shiny import reactive, render, ui
from shiny.session import Inputs

from app import shared
from app.panels.data_input.messages import error_box, form_labels, success_line, summary
from app.panels.data_input.state import DataInputState
from engine.core.protocols import Protocol
from engine.core.schema import (
    PROPOSAL_COLUMN,
    SITE_ID_MAX,
    SITE_ID_MIN,
    validate_dataframe,
)
from engine.core.tabular import Problem, SchemaError

__all__ = ["form_card", "form_frame", "form_server"]


def _first_value(protocol_name: str, column: str) -> float | str | None:
    examples = shared.EXAMPLES[protocol_name]
    if examples.empty or column not in examples.columns:
        return None
    value = examples.iloc[0][column]
    value = value.item() if hasattr(value, "item") else value
    # Whole numbers read better without ".0" (scores, genotypes, round concentrations).
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _numeric_field(input_id: str, label: str, unit: str, lo: float, hi: float, step: float | str,
                   value: float | None) -> ui.Tag:
    # No "(alleles)" after "ERCC1 rs11615 (minor alleles)": the label already says it.
    said = re.search(rf"\b{re.escape(unit)}\b", label, flags=re.IGNORECASE) if unit else True
    shown_unit = "" if said else f" ({unit})"
    return ui.div(
        ui.input_numeric(input_id, f"{label}{shown_unit}", value=value, min=lo, max=hi,
                         step=step, width="100%"),
        ui.tags.small(f"accepted {lo:g} – {hi:g}", class_="text-muted form-hint"),
        class_="artds-field",
    )


def form_frame(input: Inputs, protocol: Protocol,
               replace: Mapping[str, float] | None = None) -> pd.DataFrame:
    """The form's patient as a one-row table to validate (an empty field is NaN), with the
    values of ``replace`` (column → value) instead of the fields' (e.g. an imported plan's
    features, sent to the fields in the same flush: the browser has not echoed them yet)."""
    row: dict[str, object] = {"patient_id": input["m_patient_id"]() or ""}
    if "site_id" in protocol.id_columns:
        row["site_id"] = input["m_site_id"]()
    for name in (*protocol.feature_names, "dose_eval_gy", PROPOSAL_COLUMN):
        row[name] = input[f"m_{name}"]()
    row.update(replace or {})
    return pd.DataFrame([{k: (float("nan") if v is None else v) for k, v in row.items()}])


def form_card() -> ui.Tag:
    return ui.card(
        ui.card_header("Enter a patient by hand"),
        ui.output_ui("form"),
        ui.div(
            ui.input_action_button("add_manual", "Add this patient",
                                   class_="btn-primary"),
            class_="mt-2",
        ),
        ui.output_ui("form_status"),
    )


def form_server(input: Inputs, state: DataInputState) -> None:
    """The current protocol's form (ids, evaluation dose, every feature with its accepted
    range, and the physician's optional proposed dose); "Add this patient" validates it like a
    file row."""
    refused: reactive.Value[list[Problem] | None] = reactive.value(None)
    """The problems of the last form refused, None after a success."""

    @reactive.effect
    @reactive.event(state.protocol)
    def _forget_refusal() -> None:
        refused.set(None)

    @render.ui
    def form():
        p = state.protocol()
        name, labels = p.name, form_labels(p)
        fields = [
            ui.div(
                ui.input_text("m_patient_id", labels["patient_id"], value="NEW-001",
                              width="100%"),
                ui.tags.small("letters, digits, - and _", class_="text-muted form-hint"),
                class_="artds-field",
            )
        ]
        if "site_id" in p.id_columns:
            fields.append(_numeric_field("m_site_id", labels["site_id"], "", SITE_ID_MIN,
                                         SITE_ID_MAX, 1, 1))
        fields.append(_numeric_field(
            "m_dose_eval_gy", labels["dose_eval_gy"], "Gy",
            p.dose_eval_min_gy, p.dose_eval_max_gy, 0.1, _first_value(name, "dose_eval_gy"),
        ))
        grid = p.dose_grid_gy
        fields.append(_numeric_field(  # empty by default: a proposal is the physician's own
            f"m_{PROPOSAL_COLUMN}", f"{labels[PROPOSAL_COLUMN]} (Gy, optional)", "", grid[0],
            grid[-1], round(grid[1] - grid[0], 6), None,
        ))
        for feat in p.features:
            fields.append(_numeric_field(
                f"m_{feat.name}", labels[feat.name], feat.unit, feat.min, feat.max,
                1 if feat.integer else "any", _first_value(name, feat.name),
            ))
        return ui.TagList(
            ui.tags.small(
                f"{p.label}. Values are pre-filled from the first example patient.",
                class_="text-muted",
            ),
            ui.layout_column_wrap(*fields, width="220px", gap="0.6rem", fill=False),
        )

    @reactive.effect
    @reactive.event(input.add_manual)
    def _add_manual() -> None:
        p = state.protocol()
        try:
            new = validate_dataframe(form_frame(input, p), p)
        except SchemaError as err:
            refused.set(err.problems)
            state.set_status("form", "")
            return
        refused.set(None)
        added, replaced = state.add_cases(new, "form")
        state.set_status("form", summary(added, replaced, "the form"))

    @render.ui
    def form_status():
        problems = refused()
        if problems:
            return error_box(
                "This patient was not added.", problems, show_rows=False,
                note="Correct these fields above and press “Add this patient” again.",
                labels=form_labels(state.protocol()),
            )
        return success_line(state.status().get("form"))
