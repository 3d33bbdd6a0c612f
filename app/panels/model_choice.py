"""Sidebar "Outcome model" selector and the box naming the served model, its version and caveat.

The choices are the models :mod:`app.shared` loaded for the current protocol (learned ensembles
that loaded, then the reference model); learned models that failed to load are named in a small
warning with their one-line error, so nothing is silently replaced. The "served" GLoGD-GNN entry
is whatever version is promoted to Operation Mode (:mod:`app.serving`, read from the database and
re-read when anyone promotes or rolls back).
"""

from __future__ import annotations

from collections.abc import Callable

from shiny import module, reactive, render, ui

from app import shared
from app.db import poll_in_thread
from app.serving import served_model
from engine.arclids.architectures import ARCH_KEYS, arch_label
from engine.arclids.outcomes import OutcomeModel
from engine.core.protocols import Protocol
from engine.platform.store import Store

__all__ = ["model_choice_server", "model_choice_sidebar_ui"]


def _choices(protocol_name: str) -> dict[str, str]:
    return {key: c.choice_label for key, c in shared.MODEL_CHOICES[protocol_name].items()}


@module.ui
def model_choice_sidebar_ui() -> ui.TagList:
    first = next(iter(shared.PROTOCOLS))
    return ui.TagList(
        ui.input_select("choice", "Outcome model", choices=_choices(first),
                        selected=shared.DEFAULT_MODEL[first], width="100%"),
        ui.output_ui("info"),
    )


def _load_warning(protocol: Protocol) -> ui.Tag | None:
    errors = shared.MODEL_ERRORS[protocol.name]
    if not errors:
        return None
    if len(errors) == len(ARCH_KEYS):
        title = (f"No learned outcome model loaded for {protocol.name.upper()}: only the "
                 "reference model is offered.")
    else:
        missing = ", ".join(arch_label(k) for k in errors)
        title = f"Not loaded for {protocol.name.upper()}: {missing}."
    return ui.tags.details(
        ui.tags.summary(title),
        ui.tags.ul(*[ui.tags.li(ui.tags.strong(arch_label(k)), ": ", shared.with_code(msg))
                     for k, msg in errors.items()]),
        class_="model-warning",
    )


@module.server
def model_choice_server(
    input, output, session, *, protocol: Callable[[], Protocol], store: Store | None = None
) -> Callable[[], OutcomeModel]:
    """Keep the selector in step with the protocol; return the selected model (reactive)."""

    # Re-read (in a thread) when anyone promotes or rolls back a version, in any app process.
    promotion_marker = (poll_in_thread(store.latest_promotion_id, 10) if store is not None
                        else lambda: 0)

    @reactive.calc
    def served():
        promotion_marker()
        return None if store is None else served_model(protocol().name, store)

    @reactive.effect
    @reactive.event(protocol)
    def _on_protocol() -> None:
        name = protocol().name
        with reactive.isolate():
            current = input.choice()
        choices = _choices(name)
        selected = current if current in choices else shared.DEFAULT_MODEL[name]
        ui.update_select("choice", choices=choices, selected=selected)

    @reactive.calc
    def model() -> OutcomeModel:
        name = protocol().name
        choices = shared.MODEL_CHOICES[name]
        key = input.choice()
        key = key if key in choices else shared.DEFAULT_MODEL[name]
        current = served()
        if key == "glogd" and current is not None:
            return current.model
        return choices[key].model

    @render.ui
    def info():
        m = model()
        return ui.div(
            ui.p(m.label, class_="mb-1 model-name"),
            ui.tags.small(f"version {m.version}", class_="d-block text-muted model-version"),
            ui.tags.small(shared.model_caveat(m), class_="d-block text-muted"),
            _load_warning(protocol()),
            ui.div(served().warning, class_="model-warning", role="alert")
            if served() is not None and served().warning else None,
            class_="sidebar-model",
        )

    return model
