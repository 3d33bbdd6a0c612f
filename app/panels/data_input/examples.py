"""Data input, part one: the example patients shipped in ``assets/examples/``."""

from __future__ import annotations

from shiny import reactive, render, ui
from shiny.session import Inputs

from app import shared
from app.panels.data_input.messages import success_line, summary
from app.panels.data_input.state import DataInputState

__all__ = ["examples_card", "examples_server"]

ALL_EXAMPLES = "__all__"
"""Choice value that loads every example patient of the protocol."""


def _example_choices(protocol_name: str) -> dict[str, str]:
    examples = shared.EXAMPLES[protocol_name]
    choices = {ALL_EXAMPLES: f"All example patients ({examples['patient_id'].nunique()})"}
    for pid, rows in examples.groupby("patient_id", sort=False):
        n = len(rows)
        choices[str(pid)] = str(pid) if n == 1 else f"{pid} ({n} tumour sites)"
    return choices


def examples_card(protocol_name: str) -> ui.Tag:
    """The example chooser (first offering ``protocol_name``'s examples)."""
    return ui.card(
        ui.card_header("Example patients"),
        ui.input_select("example", "Example file",
                        choices=_example_choices(protocol_name), width="100%"),
        ui.div(ui.input_action_button("load_example", "Load example",
                                      class_="btn-primary")),
        ui.output_ui("example_status"),
    )


def examples_server(input: Inputs, state: DataInputState) -> None:
    """Offer the current protocol's examples and load the chosen one (or all)."""

    @reactive.effect
    @reactive.event(state.protocol)
    def _offer_examples() -> None:
        ui.update_select("example", choices=_example_choices(state.protocol().name))

    @reactive.effect
    @reactive.event(input.load_example)
    def _load_example() -> None:
        examples = shared.EXAMPLES[state.protocol().name]
        choice = input.example()
        if choice and choice != ALL_EXAMPLES:
            examples = examples[examples["patient_id"] == choice]
        if examples.empty:
            state.set_status("example", "Choose an example first.")
            return
        state.add_cases(examples.reset_index(drop=True), "example", done=lambda added, replaced:
                        state.set_status("example", summary(added, replaced, "the example file")))

    @render.ui
    def example_status():
        return success_line(state.status().get("example"))
