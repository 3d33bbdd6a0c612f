"""Model review, part two: the decision makers (Double-DQN ODM) and the synthetic patients (GAN).

Shown inside the Model review panel. Everything comes from the evaluation saved by
``artds train odm`` (hash-checked at start-up, :data:`app.shared.ODM_REVIEWS`): RMSD and
self-evaluation against the virtual trial's historic clinical decisions (ARCliDS Figs. 10–11),
how much of the exact reward argmax the ODM reaches, the recommendation judged against the
clinician by its true-reward loss against the virtual-trial oracle (on the fresh cohort beside
the training trial), and the GAN's per-feature distribution checks. Every number is from virtual
trials; the panel says so.
"""

from __future__ import annotations

from collections.abc import Callable

from shiny import module, reactive, render, ui

from app import shared
from app.panels.widgets import figure_card, number, plus_minus, unavailable
from app.plots import output_figure, render_figure
from engine.arclids.architectures import arch_label
from engine.arclids.odm_eval import (
    ADVISED_NOTE,
    REGRET_LABELS,
    REGRET_POLICIES,
    OdmReview,
    missing_regret_policies,
)
from engine.core.protocols import Protocol
from engine.figures.odm_review import (
    FRESH_COHORT_NOTE,
    LOSS_TITLE,
    gan_overlay_figure,
    odm_decisions_figure,
    odm_rmsd_figure,
    odm_self_evaluation_figure,
    regret_figure,
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

    def capture(cohort: str) -> Callable[[dict], str]:
        """argmax_reward_ratio and, always beside it, gain_captured (the ratio alone flatters
        a policy that gives everyone one dose)."""
        def cell(m: dict) -> str:
            src = m if cohort == "trial" else m.get("fresh_cohort", {})
            return (f"{number(src.get('argmax_reward_ratio'))} · "
                    f"{number(src.get('gain_captured'))}")
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
        row("argmax_reward_ratio · gain_captured (aim ≥ 0.9), training trial", capture("trial"),
            "argmax_reward_ratio: the served recommendation's mean reward on the learned "
            "environment over the exact argmax's; gain_captured: (served − best single fixed "
            "dose) / (exact argmax − best single fixed dose)"),
        row(f"… {FRESH_COHORT_NOTE}", capture("fresh")),
        row("Mean q-value (predicted reward, 0–3 with goal bonuses)",
            lambda m: number(m.get("q_value_mean"), ".2f"),
            "the decision makers' own prediction of the reward of their choice; not a "
            "confidence, and it can exceed 3"),
    ]
    return ui.div(ui.tags.table(ui.tags.thead(head), ui.tags.tbody(*rows),
                                class_="table table-sm metrics-table odm-table"),
                  class_="table-responsive")


def _regret_table(summary: dict) -> ui.Tag:
    """True-reward loss vs the oracle per policy (rows) and architecture × cohort (columns):
    the fresh cohort first, the training trial beside it."""
    archs = summary.get("architectures", {})
    order = [a for a in ("glogd", "single") if a in archs] + [
        a for a in archs if a not in ("glogd", "single")]
    cohorts = (("fresh_cohort", "fresh cohort"), ("trial", "training trial"))
    head = ui.tags.tr(ui.tags.th("Policy"), *[
        ui.tags.th(f"{arch_label(a)} + DDQN", ui.br(), ui.tags.small(label), class_="num")
        for a in order for _, label in cohorts])

    def regret_of(m: dict, cohort: str) -> dict:
        return (m if cohort == "trial" else m.get(cohort) or {}).get("regret") or {}

    def cells(value: Callable[[dict], str]) -> list[ui.Tag]:
        return [ui.tags.td(value(regret_of(archs[a], c)), class_="num")
                for a in order for c, _ in cohorts]

    constant = next((reg["best_constant_dose_gy"] for a in order for c, _ in cohorts
                     if (reg := regret_of(archs[a], c)).get("best_constant_dose_gy")
                     is not None), None)
    rows = []
    for policy in REGRET_POLICIES:
        label = REGRET_LABELS[policy]
        if policy == "best_constant_dose" and constant is not None:
            label += f" ({constant:g} Gy/fx, chosen on the training trial)"
        rows.append(ui.tags.tr(ui.tags.td(label), *cells(
            lambda reg, p=policy: number((reg.get(p) or {}).get("true_reward_loss")))))
        if policy == "advised":
            rows.append(ui.tags.tr(ui.tags.td("… cases advised to change"), *cells(
                lambda reg: _pct((reg.get("advised") or {}).get("change_share")))))
    return ui.div(ui.tags.table(ui.tags.thead(head), ui.tags.tbody(*rows),
                                class_="table table-sm metrics-table regret-table"),
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
        ui.card(
            ui.card_header("The recommendation against the clinician: "
                           f"{LOSS_TITLE[0].lower()}{LOSS_TITLE[1:]}"),
            ui.output_ui("regret_intro"),
            ui.output_ui("regret_table"),
            output_figure("regret", min_height="0px"),
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

    @render.ui
    def regret_intro():
        r, name = review(), protocol().name
        if r.odm_summary is None:
            return unavailable(_no_odm(name), r.errors.get("odm"))
        missing = missing_regret_policies(r.odm_summary)
        return ui.TagList(
            ui.p(f"{LOSS_TITLE}: the virtual trial's true reward of its best dose per case "
                 "minus the true reward of each policy's dose, mean over cases (reward 0–3). "
                 f"Measured on a {FRESH_COHORT_NOTE} beside the training trial, where a "
                 f"learned recommender looks better than it is. {ADVISED_NOTE}. Virtual "
                 "trials only, not clinical evidence.", class_="small mb-2"),
            ui.div(shared.with_code(
                f"This evaluation has no rows for {', '.join(REGRET_LABELS[p] for p in missing)}"
                f": retrain to see them (`artds train odm --protocol {name}`)."),
                class_="small text-muted mb-2 regret-missing") if missing else None,
        )

    @render.ui
    def regret_table():
        r = review()
        return None if r.odm_summary is None else _regret_table(r.odm_summary)

    @render_figure
    def regret():
        r = review()
        return None if r.odm_summary is None else regret_figure(r.odm_summary)

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
