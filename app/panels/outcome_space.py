"""Outcome space panel: TCP/NTCP over the dose grid, a dose slider, the summary, dose response.

Both figures are built in the worker processes (:func:`app.plots.pooled_figure`) from the
recommendations alone (shared by sessions showing the same cases); the outcome space is drawn
with the first case's recommended dose selected. The selected dose is then moved on the page:
:func:`app.plots.send_selected_dose` sends the few traces that depend on it (~2 kB a case) on
every slider move and with every new figure, and the page swaps them in. Moving the slider
rebuilds and resends no figure (the summary's "selected" line is re-rendered, ~2 kB).
"""

from __future__ import annotations

from collections.abc import Callable

from shiny import module, reactive, render, ui

from app import shared
from app.panels.widgets import figure_card
from app.plots import FigureRequest, content_key, pooled_figure, render_figure, send_selected_dose
from engine.arclids.arte import goal_flags
from engine.arclids.odm_eval import track_record
from engine.arclids.outcomes import OutcomeModel
from engine.arclids.recommend import Recommendation
from engine.core.protocols import Protocol
from engine.figures.dose_response import dose_response_figure
from engine.figures.outcome_space import outcome_space_figure, selected_dose_traces
from engine.figures.style import case_colour
from engine.figures.wording import (
    PREDICTED_REWARD,
    SEM_MEANING,
    TRACK_RECORD_UNKNOWN,
    advice_text,
    dose_interval_text,
    interval_label,
    level_label,
    pct_text,
    recommendation_text,
    reward_text,
    track_record_caption,
    track_record_rows,
    track_record_verdict,
)

__all__ = ["outcome_space_server", "outcome_space_ui"]

EMPTY_STATE = "Load an example patient or upload a file (panel “Data input”), then choose the " \
    "cases to show in the sidebar."


def _nearest(doses_gy: list[float], dose_gy: float) -> int:
    return min(range(len(doses_gy)), key=lambda j: abs(doses_gy[j] - dose_gy))


def _case_summary(i: int, rec: Recommendation, dose_gy: float, protocol: Protocol) -> ui.Tag:
    j = _nearest(rec.doses_gy, dose_gy)
    label = interval_label(rec)
    at_j = ((rec.tcp_lo[j], rec.tcp_hi[j]), (rec.ntcp_lo[j], rec.ntcp_hi[j])) \
        if rec.tcp_lo is not None else (None, None)
    dose_iv = dose_interval_text(rec)
    return ui.div(
        ui.div(
            ui.span(class_="swatch", style=f"background: {case_colour(i)}"),
            ui.tags.strong(rec.label),
            class_="case-title",
        ),
        ui.p(
            ui.span(f"At {rec.doses_gy[j]:g} Gy/fx (selected): ", class_="what"),
            f"TCP {pct_text(rec.tcp[j], at_j[0], label)}, "
            f"NTCP {pct_text(rec.ntcp[j], at_j[1], label)}, predicted reward "
            f"{rec.reward[j]:.2f} ({protocol.goal_met_text(rec.goal[j])}).",
            class_="selected-line",
        ),
        ui.p(
            ui.span(f"Recommended: {recommendation_text(rec)}", class_="what rec"),
            f" → TCP {pct_text(rec.recommended_tcp, rec.recommended_tcp_interval, label)}, "
            f"NTCP {pct_text(rec.recommended_ntcp, rec.recommended_ntcp_interval, label)} "
            f"({protocol.goal_met_text(rec.recommended_goal)}).",
            class_="recommended-line",
        ),
        ui.p(
            ui.span(f"{PREDICTED_REWARD[:1].upper()}{PREDICTED_REWARD[1:]}: ", class_="what"),
            f"{rec.recommended_reward:.2f} at the recommended dose, from the outcome model's "
            "curves.",
            class_="reward-line",
        ),
        ui.p(ui.span("Best dose: ", class_="what"), f"{dose_iv}.",
             class_="dose-interval-line") if dose_iv else None,
        ui.div(ui.tags.strong("Caution: "), rec.caution, class_="artds-caution",
               role="alert") if rec.caution else None,
        _proposal_comparison(rec, label) if rec.proposal else None,
        _recommender_line(rec),
        ui.tags.ul(*[_goal_flag(g, bool(met)) for g, met in zip(
            protocol.goals,
            goal_flags(rec.recommended_tcp, rec.recommended_ntcp, protocol.goals),
            strict=True,
        )], class_="goal-flags"),
        class_="case-summary",
    )


def _cell(main: str, interval: str | None) -> ui.Tag:
    """A table cell: the value, and under it its interval (which names its level)."""
    return ui.tags.td(main, ui.tags.small(interval, class_="text-muted")
                      if interval else None, class_="num")


def _row_head(name: str) -> ui.Tag:
    """A row's name; a long label ("predicted reward (0–3, with goal bonuses)") keeps its
    explanation in small print under the first words."""
    head, _, rest = name.partition(" (")
    return ui.tags.th(head[:1].upper() + head[1:],
                      ui.tags.small(f"({rest}", class_="text-muted") if rest else None)


def _split(text: str) -> tuple[str, str | None]:
    """``"71.2 % (80 % interval 60.1–80.3 %)"`` → ``("71.2 %", "80 % interval 60.1–80.3 %")``."""
    main, _, rest = text.partition(" (")
    return main, rest[:-1] if rest else None


def _proposal_comparison(rec: Recommendation, label: str | None) -> ui.Tag:
    """The physician's proposal beside the recommendation: TCP, NTCP and predicted reward with
    their intervals, the probability that the recommendation is better, and the advice."""
    prop = rec.proposal
    reward_level = level_label(rec.interval_level or 0.8) if label else None
    rows = [
        ("Dose", (f"{prop['dose_gy']:g} Gy/fx", None), (recommendation_text(rec), None)),
        ("TCP", _split(pct_text(prop["tcp"], (prop["tcp_lo"], prop["tcp_hi"]), label)),
         _split(pct_text(rec.recommended_tcp, rec.recommended_tcp_interval, label))),
        ("NTCP", _split(pct_text(prop["ntcp"], (prop["ntcp_lo"], prop["ntcp_hi"]), label)),
         _split(pct_text(rec.recommended_ntcp, rec.recommended_ntcp_interval, label))),
        (PREDICTED_REWARD,
         _split(reward_text(prop["reward"], (prop.get("reward_lo"), prop.get("reward_hi")),
                            reward_level if "reward_lo" in prop else None)),
         _split(reward_text(prop["recommended_reward"], (prop.get("recommended_reward_lo"),
                                                         prop.get("recommended_reward_hi")),
                            reward_level if "recommended_reward_lo" in prop else None))),
    ]
    advice = advice_text(rec) or ""
    return ui.div(
        ui.tags.table(
            ui.tags.thead(ui.tags.tr(ui.tags.th(""), ui.tags.th("Your proposal", class_="num"),
                                     ui.tags.th("Recommen­dation", class_="num"))),
            ui.tags.tbody(*[ui.tags.tr(_row_head(name), _cell(*mine), _cell(*theirs))
                            for name, mine, theirs in rows]),
            class_="table table-sm proposal-table mb-1",
        ),
        ui.p(ui.span("P(recommendation better): ", class_="what"),
             f"{prop['p_recommended_better']:.2f} — the probability that the recommendation's "
             "reward is truly higher, from the outcome models' uncertainty, calibrated against "
             "the virtual trial's truth (a change is advised from "
             f"{prop['threshold']:.2f}).", class_="p-better-line"),
        ui.p(ui.span("Advice: ", class_="what"), f"{advice[:1].upper()}{advice[1:]}. ",
             ui.span("Advised dose: ", class_="what"),
             f"{round(prop['advised_dose_gy'], 2):g} Gy/fx.",
             class_=f"advice-line advice-{prop['advice']}"),
        class_="proposal-comparison",
    )


def _recommender_line(rec: Recommendation) -> ui.Tag:
    if rec.recommender == "odm":
        members = ", ".join(f"{d:g}" for d in rec.member_doses_gy or [])
        serving = ("serves the grid dose with the highest q-value averaged over the members"
                   if rec.odm_serving_rule == "mean-q" else "serves the members' mean dose")
        mean = rec.member_mean_dose_gy if rec.member_mean_dose_gy is not None \
            else rec.recommended_dose_gy
        q = ("" if rec.q_value is None else
             f" Their q-value {rec.q_value:.2f} is their own {PREDICTED_REWARD}.")
        return ui.p(
            ui.tags.small(
                f"Double-DQN decision maker ({len(rec.member_doses_gy or [])} members: "
                f"{members} Gy/fx) {serving}; the members' mean dose {mean:.2f} ± "
                f"{rec.recommended_dose_sem_gy:.2f} Gy/fx (SEM: {SEM_MEANING}).{q} Exact "
                f"reward argmax: {rec.exact_argmax_dose_gy:g} Gy/fx.",
                class_="text-muted"),
            class_="recommender-line mb-1",
        )
    return ui.p(ui.tags.small("Exact reward argmax over the dose grid: ",
                              shared.with_code(rec.recommender_note or ""),
                              class_="text-muted"),
                class_="recommender-line mb-1")


def _track_record(rec: Recommendation, protocol: Protocol) -> ui.Tag:
    """How the recommending policy did on a fresh virtual cohort beside the clinicians' rule and
    one dose for everyone: shown where the dose is chosen, not only in the model cards."""
    record = track_record(shared.ODM_REVIEWS[protocol.name].odm_summary, rec.model_version,
                          rec.recommender, rec.odm_version)
    if record is None:
        return ui.div(ui.tags.small(TRACK_RECORD_UNKNOWN), class_="track-record text-muted mt-2")
    body = [ui.tags.tr(ui.tags.td(ui.tags.strong(name) if best else name),
                       ui.tags.td(ui.tags.strong(loss) if best else loss, class_="num"))
            for name, loss, best in track_record_rows(record)]
    return ui.div(
        ui.tags.small(track_record_caption(record) + ":", class_="text-muted"),
        ui.tags.table(ui.tags.tbody(*body), class_="table table-sm mb-1 track-record-table"),
        ui.tags.small(ui.tags.strong(track_record_verdict(record))),
        class_="track-record mt-3")


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
        return ui.TagList(
            ui.p(
                ui.span("Model: ", class_="fw-semibold"), m.label,
                ui.br(),
                ui.tags.small(f"version {m.version} · {shared.model_caveat(m)}",
                              class_="text-muted"),
                class_="model-label mb-1",
            ),
            None if (quality := shared.probability_quality_of(protocol().name, m.version))
            is None else ui.p(ui.tags.small(quality, class_="text-muted"),
                              class_="probability-quality"),
        )

    @render.ui
    def empty():
        return None if recs() else ui.div(EMPTY_STATE, class_="artds-empty")

    def _outcome_space() -> FigureRequest | None:
        # Drawn at the first case's recommended dose (where the slider is put for new cases),
        # whatever the slider says: the figure depends on the cases only, so sessions showing
        # the same cases share it; _move_selected_dose moves the selection on the page.
        current = recs()
        if not current:
            return None
        start = current[0].recommended_dose_gy
        return FigureRequest(outcome_space_figure, (current, protocol()),
                             {"selected_dose_gy": {r.label: start for r in current}},
                             tag=content_key(current))

    outcome_space = pooled_figure(_outcome_space)

    @render_figure
    def plot():
        return outcome_space()

    @reactive.effect
    async def _move_selected_dose() -> None:
        # On every new dose, and on new cases (their figure is on its way: the page keeps the
        # message until that figure is drawn).
        dose = selected_dose()
        try:
            current = recs()
        except Exception:  # being computed (this runs again when done) or failed (the
            return  # outputs show why): nothing to move
        if not current:
            return
        await send_selected_dose(session, "plot", content_key(current), dose,
                                 selected_dose_traces(current, {r.label: dose for r in current}))

    @render.ui
    def dose_response_empty():
        if recs():
            return None
        return ui.div("The dose response appears once a case is shown.", class_="artds-empty")

    def _dose_response() -> FigureRequest | None:
        current = recs()
        return FigureRequest(dose_response_figure, (current, protocol())) if current else None

    dose_response_payload = pooled_figure(_dose_response)

    @render_figure
    def dose_response():
        return dose_response_payload()

    @render.ui
    def summary():
        current = recs()
        if not current:
            return ui.div("No case shown yet.", class_="artds-empty")
        dose = selected_dose()
        return ui.TagList(*[_case_summary(i, r, dose, protocol()) for i, r in enumerate(current)],
                          _track_record(current[0], protocol()))

    return selected_dose
