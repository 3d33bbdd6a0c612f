"""Model review, part two: the decision makers (Double-DQN ODM) and the synthetic patients (GAN).

Shown inside the Model review panel. Everything comes from the evaluation saved by
``artds train odm`` (hash-checked at start-up, :data:`app.shared.ODM_REVIEWS`): RMSD and
self-evaluation against the virtual trial's historic clinical decisions (ARCliDS Figs. 10–11),
how much of the exact reward argmax the ODM reaches, regret against the virtual-trial oracle, and
the GAN's per-feature distribution checks. Every number is from virtual trials; the panel says so.
"""

from __future__ import annotations

from collections.abc import Callable

from shiny import module, reactive, render, ui

from app import shared
from app.panels.widgets import figure_card, number, plus_minus, unavailable
from app.plots import output_figure, render_figure
from engine.arclids.architectures import arch_label
from engine.arclids.odm_eval import OdmReview
from engine.core.protocols import Protocol
from engine.figures.odm_review import (
    gan_overlay_figure,
    odm_decisions_figure,
    odm_rmsd_figure,
    odm_self_evaluation_figure,
)

__all__ = ["odm_review_server", "odm_review_ui"]


def _planning_text(planning: dict | None) -> str:
    """One sentence on how the five members planned and which dose is served."""
    if not planning:
        return "Five Q-networks per outcome architecture."
    draw = (f"{planning['n_planning_patients']:,} synthetic patients drawn afresh every epoch "
            f"from {planning['n_synthetic']:,}" if planning["planning_resample"] else
            f"one draw of {planning['n_planning_patients']:,} of {planning['n_synthetic']:,} "
            "synthetic patients")
    env = ("the outcome ensemble's mean curves" if planning["planning_arte"] == "ensemble"
           else "its own outcome-ensemble member")
    served = ("the members' mean dose ± SEM is served" if planning["serving_rule"] == "mean-dose"
              else "the grid dose with the highest mean q-value is served")
    return (f"Five Q-networks per outcome architecture, each planned on {draw} with {env} "
            f"({planning['epochs']} epochs); {served}.")


def _no_odm(protocol_name: str) -> str:
    return (f"No decision makers trained for {protocol_name.upper()}: run "
            f"`artds train odm --protocol {protocol_name}`")


def _pm(entry: dict | None) -> str:
    """``"mean ± sem"`` of a summary entry ("–" without one)."""
    return plus_minus(entry.get("mean"), entry.get("sem")) if entry else "–"


def _pct(value: object) -> str:
    return "–" if value is None else f"{100 * float(value):.0f} %"


def _metrics_table(summary: dict) -> ui.Tag:
    archs = summary.get("architectures", {})
    order = [a for a in ("glogd", "single") if a in archs] + [
        a for a in archs if a not in ("glogd", "single")]
    head = ui.tags.tr(ui.tags.th("Metric"), *[
        ui.tags.th(f"{arch_label(a)} + DDQN", class_="num") for a in order])

    def row(label: str, cell: Callable[[dict], str], title: str | None = None) -> ui.Tag:
        return ui.tags.tr(ui.tags.td(label, title=title),
                          *[ui.tags.td(cell(archs[a]), class_="num") for a in order])

    def regret(policy: str, key: str, cohort: str = "trial") -> Callable[[dict], str]:
        def cell(m: dict) -> str:
            src = m if cohort == "trial" else m.get("fresh_cohort", {})
            return number(src.get("regret", {}).get(policy, {}).get(key),
                        ".2f" if key.endswith("gy") else ".3f")
        return cell

    rows = [
        row("RMSD vs clinical decision, all (Gy/fx)", lambda m: _pm(m["rmsd_gy"]["overall"]),
            "mean ± sem over the 5 decision makers"),
        row("… positive outcome", lambda m: _pm(m["rmsd_gy"]["positive"])),
        row("… negative outcome", lambda m: _pm(m["rmsd_gy"]["negative"])),
        row("MAD vs clinical decision, all (Gy/fx)", lambda m: _pm(m["mad_gy"]["overall"])),
        row("Self-evaluation: good / bad / not sure",
            lambda m: " / ".join(_pct(m["self_evaluation"]["overall"][k])
                                 for k in ("good", "bad", "not_sure"))),
        row("argmax_reward_ratio (aim ≥ 0.99)", lambda m: number(m["argmax_reward_ratio"]),
            "the served recommendation's mean ARTE reward over the exact argmax's"),
        row("gain_captured (aim ≥ 0.9)", lambda m: number(m["gain_captured"]),
            "(ODM − best single fixed dose) / (exact argmax − best single fixed dose)"),
        row("… fresh virtual cohort", lambda m: number(m.get("fresh_cohort", {}).get(
            "gain_captured"))),
        row("|dose − oracle dose|: ODM (Gy/fx)", regret("odm", "dose_abs_error_gy")),
        row("… exact ARTE argmax", regret("exact_argmax", "dose_abs_error_gy")),
        row("… historic clinical decision", regret("historic", "dose_abs_error_gy")),
        row("True-reward loss vs oracle: ODM", regret("odm", "true_reward_loss")),
        row("… exact ARTE argmax", regret("exact_argmax", "true_reward_loss")),
        row("… historic clinical decision", regret("historic", "true_reward_loss")),
        row("… ODM, fresh virtual cohort", regret("odm", "true_reward_loss", "fresh")),
        row("Mean q-value (predicted reward, 0–3 with goal bonuses)",
            lambda m: number(m.get("q_value_mean"), ".2f")),
    ]
    return ui.div(ui.tags.table(ui.tags.thead(head), ui.tags.tbody(*rows),
                                class_="table table-sm metrics-table odm-table"),
                  class_="table-responsive")


@module.ui
def odm_review_ui() -> ui.TagList:
    return ui.TagList(
        ui.card(
            ui.card_header("Decision makers: Double-DQN ODM against the clinic and the oracle"),
            ui.output_ui("odm_intro"),
            ui.output_ui("odm_metrics"),
            ui.layout_columns(
                output_figure("rmsd", min_height="0px"),
                output_figure("self_evaluation", min_height="0px"),
                col_widths=(6, 6),
            ),
            output_figure("decisions", min_height="0px"),
            full_screen=True,
        ),
        figure_card("Synthetic patients: WGAN-GP against the training trial", "gan_intro",
                    "gan"),
    )


@module.server
def odm_review_server(input, output, session, *, protocol: Callable[[], Protocol]) -> None:
    @reactive.calc
    def review() -> OdmReview:
        return shared.ODM_REVIEWS[protocol().name]

    @render.ui
    def odm_intro():
        r, name = review(), protocol().name
        if r.odm is None:
            return unavailable(_no_odm(name), r.errors.get("odm"))
        s = r.odm_summary or {}
        stale = [f"{arch_label(a)}: {m['note']}"
                 for a, m in s.get("architectures", {}).items() if m.get("stale")]
        return ui.TagList(
            ui.p(_planning_text(s.get("planning")) + " Compared with the virtual "
                 "trial's historic clinical decisions (as the paper compares with the trial's), "
                 "with the exact argmax of the learned environment's reward (the best any ODM "
                 "can do on it) and with the oracle: the virtual trial's true optimal dose. "
                 f"Budget “{s.get('budget')}”. Virtual trials only, not clinical evidence.",
                 class_="small mb-2"),
            *[ui.div(shared.with_code(text), class_="model-warning mb-2") for text in stale],
        )

    @render.ui
    def odm_metrics():
        r = review()
        return None if r.odm_summary is None else _metrics_table(r.odm_summary)

    @render_figure
    def rmsd():
        r = review()
        return None if r.odm is None else odm_rmsd_figure(r.odm)

    @render_figure
    def self_evaluation():
        r = review()
        return None if r.odm is None else odm_self_evaluation_figure(r.odm)

    @render_figure
    def decisions():
        r = review()
        return None if r.odm is None else odm_decisions_figure(r.odm, protocol())

    @render.ui
    def gan_intro():
        r, name = review(), protocol().name
        if r.gan is None:
            return unavailable(f"No synthetic-patient generator trained for {name.upper()}: "
                               f"run `artds train gan --protocol {name}`", r.errors.get("gan"))
        g = r.gan
        return ui.p(
            f"{g['n_synthetic']:,} synthetic patients from a WGAN-GP trained on the "
            f"{g['n_training_cases']} complete cases. Mean per-feature Jensen–Shannon divergence: "
            f"{g['jsd_vs_training_mean']:.3f} against the training trial, "
            f"{g['jsd_vs_population_mean']:.3f} against a 10,000-patient virtual population "
            f"(the training trial itself is {g['jsd_training_vs_population_mean']:.3f} from that "
            "population: the floor set by having only these cases).",
            class_="small mb-1",
        )

    @render_figure
    def gan():
        r = review()
        return None if r.gan is None else gan_overlay_figure(r.gan, protocol())
