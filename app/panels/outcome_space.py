"""Outcome space panel: TCP/NTCP over the dose grid, a dose slider, the summary, dose response."""

from __future__ import annotations

from collections.abc import Callable

from shiny import module, reactive, render, ui

from app import shared
from app.panels.widgets import figure_card
from app.plots import render_figure
from engine.arclids.arte import goal_flags
from engine.arclids.outcomes import OutcomeModel
from engine.arclids.recommend import Recommendation
from engine.core.protocols import Protocol
from engine.figures.outcome_space import (
    dose_response_figure,
    outcome_space_figure,
    recommendation_text,
)
from engine.figures.style import case_colour

__all__ = ["outcome_space_server", "outcome_space_ui"]

EMPTY_STATE = "Load an example patient or upload a file (panel “Data input”), then choose the " \
    "cases to show in the sidebar."


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def _nearest(doses_gy: list[float], dose_gy: float) -> int:
    return min(range(len(doses_gy)), key=lambda j: abs(doses_gy[j] - dose_gy))


def _case_summary(i: int, rec: Recommendation, dose_gy: float, protocol: Protocol) -> ui.Tag:
    j = _nearest(rec.doses_gy, dose_gy)
    return ui.div(
        ui.div(
            ui.span(class_="swatch", style=f"background: {case_colour(i)}"),
            ui.tags.strong(rec.label),
            class_="case-title",
        ),
        ui.p(
            ui.span(f"At {rec.doses_gy[j]:g} Gy/fx (selected): ", class_="what"),
            f"TCP {_pct(rec.tcp[j])}, NTCP {_pct(rec.ntcp[j])}, reward {rec.reward[j]:.2f} "
            f"({protocol.goal_met_text(rec.goal[j])}).",
            class_="selected-line",
        ),
        ui.p(
            ui.span(f"Recommended: {recommendation_text(rec)}", class_="what rec"),
            f" → TCP {_pct(rec.recommended_tcp)}, NTCP {_pct(rec.recommended_ntcp)} "
            f"({protocol.goal_met_text(rec.recommended_goal)}).",
            class_="recommended-line",
        ),
        _recommender_line(rec),
        ui.tags.ul(*[_goal_flag(g, bool(met)) for g, met in zip(
            protocol.goals,
            goal_flags(rec.recommended_tcp, rec.recommended_ntcp, protocol.goals),
            strict=True,
        )], class_="goal-flags"),
        class_="case-summary",
    )


def _recommender_line(rec: Recommendation) -> ui.Tag:
    if rec.recommender == "odm":
        members = ", ".join(f"{d:g}" for d in rec.member_doses_gy or [])
        return ui.p(
            ui.tags.small(
                f"Double-DQN decision maker ({len(rec.member_doses_gy or [])} members: "
                f"{members} Gy/fx); {_serving_text(rec)}; q-value = expected reward, the "
                f"confidence "
                f"(0–3 with the goal bonuses). Exact reward argmax: "
                f"{rec.exact_argmax_dose_gy:g} Gy/fx.",
                class_="text-muted"),
            class_="recommender-line mb-1",
        )
    return ui.p(ui.tags.small("Exact reward argmax over the dose grid: ",
                              shared.with_code(rec.recommender_note or ""),
                              class_="text-muted"),
                class_="recommender-line mb-1")


def _serving_text(rec: Recommendation) -> str:
    if rec.odm_serving_rule == "mean-q":
        return ("served: the grid dose with the highest q-value averaged over the members; "
                "members' mean dose ± SEM")
    return "served: the members' mean dose ± SEM"


def _goal_flag(goal, met: bool) -> ui.Tag:
    return ui.tags.li(("✓ " if met else "✗ ") + goal.label,
                      class_="goal-met" if met else "goal-not-met")


@module.ui
def outcome_space_ui() -> ui.TagList:
    """Outcome-space plot, dose slider and summary, then the dose–response plot."""
    grid = shared.PROTOCOLS[next(iter(shared.PROTOCOLS))].dose_grid_gy
    return ui.TagList(
        ui.layout_columns(
            figure_card("Outcome space: TCP against NTCP for every candidate dose", "empty",
                        "plot"),
            ui.card(
                ui.card_header("Dose per fraction"),
                ui.output_ui("model_label"),
                ui.input_slider(
                    "dose", "Selected adaptive dose per fraction (Gy/fx)",
                    min=grid[0], max=grid[-1], value=grid[0],
                    step=round(grid[1] - grid[0], 6), width="100%", post=" Gy",
                ),
                ui.output_ui("summary"),
            ),
            col_widths=(8, 4),
        ),
        figure_card("Dose response: TCP, NTCP and reward against the adaptive dose",
                    "dose_response_empty", "dose_response"),
    )


@module.server
def outcome_space_server(
    input, output, session, *,
    protocol: Callable[[], Protocol],
    model: Callable[[], OutcomeModel],
    recs: Callable[[], list[Recommendation]],
) -> Callable[[], float]:
    """Draw the shown cases; returns the selected dose per fraction (Gy) for siblings."""
    last_view: dict[str, object] = {"key": None}

    @reactive.effect
    def _reset_slider() -> None:
        # New protocol or new set of cases: put the slider on the first case's recommendation.
        p, current = protocol(), recs()
        key = (p.name, tuple(r.label for r in current))
        if key == last_view["key"]:
            return
        last_view["key"] = key
        grid = p.dose_grid_gy
        value = current[0].recommended_dose_gy if current else grid[len(grid) // 2]
        ui.update_slider("dose", min=grid[0], max=grid[-1],
                         step=round(grid[1] - grid[0], 6), value=value)

    @reactive.calc
    def selected_dose() -> float:
        dose = input.dose()
        grid = protocol().dose_grid_gy
        return float(min(max(dose, grid[0]), grid[-1])) if dose is not None else grid[0]

    @render.ui
    def model_label():
        m = model()
        return ui.p(
            ui.span("Model: ", class_="fw-semibold"), m.label,
            ui.br(),
            ui.tags.small(f"version {m.version} · {shared.model_caveat(m)}",
                          class_="text-muted"),
            class_="model-label",
        )

    @render.ui
    def empty():
        return None if recs() else ui.div(EMPTY_STATE, class_="artds-empty")

    @render_figure
    def plot():
        current = recs()
        if not current:
            return None
        dose = selected_dose()
        return outcome_space_figure(current, protocol(),
                                    selected_dose_gy={r.label: dose for r in current})

    @render.ui
    def dose_response_empty():
        if recs():
            return None
        return ui.div("The dose response appears once a case is shown.", class_="artds-empty")

    @render_figure
    def dose_response():
        current = recs()
        return dose_response_figure(current, protocol()) if current else None

    @render.ui
    def summary():
        current = recs()
        if not current:
            return ui.div("No case shown yet.", class_="artds-empty")
        dose = selected_dose()
        return ui.TagList(*[_case_summary(i, r, dose, protocol()) for i, r in enumerate(current)])

    return selected_dose
