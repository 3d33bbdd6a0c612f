"""Review of the synthetic patients and the decision makers, for physicists (the app's ODM
review panel and the model card ``docs/model-card-odm.md``).

- :func:`gan_overlay_figure`: per-feature histograms of the training trial, the WGAN-GP's
  synthetic patients and the virtual population, with the Jensen–Shannon divergence.
- :func:`odm_rmsd_figure`, :func:`odm_self_evaluation_figure`, :func:`odm_decisions_figure`: the
  Double-DQN decision makers against the clinical decisions (ARCliDS Figs. 10–11, Table 1).
- :func:`regret_figure`: true-reward loss against the oracle of the served recommendation, the
  historic clinicians, the best constant dose, the exact argmax and the advised dose, on the
  fresh virtual cohort beside the training trial.
- :func:`regret_learning_curve_figure`: that loss against the training-trial size, for the
  learned recommender, the clinicians and the constant dose.
"""

from __future__ import annotations

import itertools

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from engine.arclids.odm_eval import ADVISED_NOTE, REGRET_LABELS
from engine.core.protocols import Protocol
from engine.figures.style import (
    BLUE,
    BLUISH_GREEN,
    GRID,
    GRIDDED,
    ORANGE,
    VERMILLION,
    VIRTUAL_TRIAL_NOTE,
    add_empty_note,
    arch_colour,
    arch_order,
    base_layout,
    fmt_dose,
    rgba,
    safe,
    safe_arch_label,
    wrap,
)

__all__ = [
    "FRESH_COHORT_NOTE",
    "LOSS_TITLE",
    "gan_overlay_figure",
    "odm_decisions_figure",
    "odm_rmsd_figure",
    "odm_self_evaluation_figure",
    "regret_figure",
    "regret_learning_curve_figure",
]

LOSS_TITLE = "True-reward loss vs oracle (lower is better)"
"""What every regret number is: the oracle's true reward minus the policy's, mean over cases."""
FRESH_COHORT_NOTE = "fresh virtual cohort (never trained on)"
"""Where the honest regret is measured."""
_HISTORIC_COLOUR = "#333333"
"""The clinicians' bars and line (dark grey: a reference, not a model)."""
_CONSTANT_COLOUR = "#999999"
"""The best constant dose's bars and line."""
_ARCH_POLICIES = (("served", ""), ("advised", "/"), ("exact_argmax", "."))
"""(policy, bar pattern) of the rows that depend on the outcome model: solid, hatched, dotted."""

_ODM_GROUPS = (("overall", "all cases"), ("positive", "positive outcome"),
               ("negative", "negative outcome"))
"""(key in the evaluation payload, label) of the case groups the ODM is scored on."""
_VERDICT_STYLE = (("good", "Good", BLUISH_GREEN), ("bad", "Bad", VERMILLION),
                  ("not_sure", "Not sure", "#BBBBBB"))
"""(key, label, colour) of the self-evaluation verdicts (Table 1)."""


def gan_overlay_figure(checks: dict, protocol: Protocol, *, n_cols: int = 4) -> go.Figure:
    """Per-feature histograms: the training trial, the GAN's synthetic patients, the population.

    Args:
        checks: the GAN evaluation saved by ``artds train gan`` (``histograms`` per column with
            ``edges`` and ``shares`` of "training", "synthetic" and "population"; ``jsd_vs_
            training`` per column).
        protocol: names the features.

    Bars: training trial (blue) and synthetic (orange), share of rows per bin; the line is a
    10,000-patient virtual population from the trial's generator (what the GAN should find).
    Each panel's title gives the Jensen–Shannon divergence of synthetic vs training (bits).
    """
    from engine.arclids.gan import gan_columns

    hist = checks.get("histograms") or {}
    # Protocol order (the saved JSON has its keys sorted alphabetically).
    columns = [c for c in gan_columns(protocol) if c in hist] + [
        c for c in hist if c not in gan_columns(protocol)]
    n_rows = max(1, -(-len(columns) // n_cols))
    labels = {f.name: f.label for f in protocol.features} | {
        "dose_eval_gy": "Evaluation dose per fraction"}
    jsd = checks.get("jsd_vs_training") or {}
    titles = [f"{wrap(safe(labels.get(c, c)), 28)}<br>JSD {jsd.get(c, float('nan')):.3f}"
              for c in columns]
    fig = make_subplots(rows=n_rows, cols=n_cols, subplot_titles=titles,
                        vertical_spacing=0.09, horizontal_spacing=0.06)
    series = (("training", "training trial", BLUE), ("synthetic", "synthetic (GAN)", ORANGE))
    for k, col in enumerate(columns):
        h = hist[col]
        edges = np.asarray(h["edges"], dtype=float)
        if h.get("integer"):
            centres = 0.5 * (edges[:-1] + edges[1:])
            x = [f"{v:g}" for v in centres]
        else:
            x = [f"{a:.3g}–{b:.3g}" for a, b in itertools.pairwise(edges)]
        row, c = k // n_cols + 1, k % n_cols + 1
        for key, name, colour in series:
            fig.add_trace(go.Bar(x=x, y=h["shares"].get(key, []), name=name, legendgroup=key,
                                 marker_color=rgba(colour, 0.7), showlegend=k == 0,
                                 hovertemplate=f"{name}<br>%{{x}}: %{{y:.1%}}<extra></extra>"),
                          row=row, col=c)
        if "population" in h["shares"]:
            fig.add_trace(go.Scatter(x=x, y=h["shares"]["population"], mode="lines",
                                     name="virtual population (truth)", legendgroup="pop",
                                     line=dict(color="#333333", width=1.5, dash="dot"),
                                     showlegend=k == 0,
                                     hovertemplate="population<br>%{x}: %{y:.1%}<extra></extra>"),
                          row=row, col=c)
        fig.update_xaxes(showticklabels=False, row=row, col=c)
    fig.update_layout(barmode="group", bargap=0.05)
    base_layout(fig, "Synthetic patients (WGAN-GP) against the training trial",
                240 * n_rows + 130, f"gan-{protocol.name}",
                subtitle_text=f"{VIRTUAL_TRIAL_NOTE} · share of cases per bin · JSD in bits "
                              "(0 identical, 1 disjoint)",
                margin_px=dict(l=50, r=20, t=110, b=60), legend_y=-0.02)
    fig.update_annotations(font_size=11)
    fig.update_yaxes(tickformat=".0%", showgrid=True, gridcolor=GRID)
    return fig


def odm_rmsd_figure(payload: dict) -> go.Figure:
    """RMSD between recommendation and clinical decision (ARCliDS Figs. 10–11, top): per
    architecture, overall and by clinical outcome, mean ± sem over the ODM members."""
    fig = go.Figure()
    archs = arch_order(list(payload.get("architectures") or {}))
    for k, arch in enumerate(archs):
        trial = payload["architectures"][arch]["trial"]
        means = [trial["rmsd_gy"][g]["mean"] for g, _ in _ODM_GROUPS]
        sems = [trial["rmsd_gy"][g]["sem"] or 0.0 for g, _ in _ODM_GROUPS]
        name = safe_arch_label(arch)
        fig.add_trace(go.Bar(
            x=[label for _, label in _ODM_GROUPS], y=means, name=f"{name} + DDQN",
            marker_color=arch_colour(arch, k), error_y=dict(type="data", array=sems),
            hovertemplate=f"{name} + DDQN<br>%{{x}}: %{{y:.2f}} Gy/fx<extra></extra>",
        ))
    base_layout(fig, "RMSD from the clinical decisions", 380,
                f"odm-rmsd-{payload.get('protocol')}",
                subtitle_text="mean ± sem over the 5 decision makers · " + VIRTUAL_TRIAL_NOTE,
                legend_y=-0.2)
    fig.update_layout(barmode="group")
    fig.update_yaxes(title_text="RMSD (Gy/fx)", rangemode="tozero", showgrid=True,
                     gridcolor=GRID)
    return fig


def odm_self_evaluation_figure(payload: dict) -> go.Figure:
    """Self-evaluation shares (ARCliDS Table 1; Figs. 10–11, middle): Good / Bad / Not sure per
    architecture, overall and by clinical outcome, stacked to 100 %."""
    archs = arch_order(list(payload.get("architectures") or {}))
    x = [[safe_arch_label(a) for a in archs for _ in _ODM_GROUPS],
         [label for _ in archs for _, label in _ODM_GROUPS]]
    fig = go.Figure()
    for key, name, colour in _VERDICT_STYLE:
        y, n = [], []
        for arch in archs:
            se = payload["architectures"][arch]["trial"]["self_evaluation"]
            for g, _ in _ODM_GROUPS:
                y.append(se[g].get(key) or 0.0)
                n.append(se[g].get("n", 0))
        fig.add_trace(go.Bar(x=x, y=y, name=name, marker_color=colour, customdata=n,
                             hovertemplate=f"{name}: %{{y:.0%}} of %{{customdata}} cases"
                                           "<extra></extra>"))
    base_layout(fig, "Self-evaluation of the recommendations", 400,
                f"odm-self-{payload.get('protocol')}",
                subtitle_text="Table 1: direction from the outcome; positive outcome: Good "
                              "within 10 % of the top grid dose",
                legend_y=-0.25)
    fig.update_layout(barmode="stack", legend=dict(traceorder="normal"))
    fig.update_yaxes(title_text="share of cases", tickformat=".0%", range=[0, 1],
                     showgrid=True, gridcolor=GRID)
    return fig


def odm_decisions_figure(payload: dict, protocol: Protocol) -> go.Figure:
    """Recommendation vs clinical decision per case (ARCliDS Figs. 10–11, bottom), one row per
    architecture: cases sorted by the clinical dose; clinical decisions coloured by outcome,
    recommendations (± SEM) coloured by their q-value (the members' predicted reward, 0–3 with
    goal bonuses)."""
    archs = arch_order(list(payload.get("architectures") or {}))
    fig = make_subplots(
        rows=max(1, len(archs)), cols=1, shared_xaxes=True, vertical_spacing=0.12,
        subplot_titles=[f"{safe_arch_label(a)} + DDQN" for a in archs])
    q_all = [q for a in archs for q in payload["architectures"][a]["trial"]["patients"]["q_value"]]
    q_lo, q_hi = (min(q_all), max(q_all)) if q_all else (0.0, 1.0)
    for k, arch in enumerate(archs):
        rows = payload["architectures"][arch]["trial"]["patients"]
        order = np.argsort(np.asarray(rows["clinical_dose_gy"]), kind="stable")
        idx = np.arange(1, len(order) + 1)

        def take(key: str, order: np.ndarray = order, rows: dict = rows) -> np.ndarray:
            return np.asarray(rows[key], dtype=object)[order]

        labels = [safe(v) for v in take("label")]
        positive = (take("tumour_controlled") == 1) & (take("toxicity") == 0)
        for mask, name, colour in (
            (positive, "clinical decision, positive outcome", BLUISH_GREEN),
            (~positive, "clinical decision, negative outcome", VERMILLION),
        ):
            fig.add_trace(go.Scatter(
                x=idx[mask], y=take("clinical_dose_gy")[mask].astype(float), mode="markers",
                name=name, legendgroup=name, showlegend=k == 0,
                marker=dict(symbol="square", size=8, color=colour),
                text=np.asarray(labels, dtype=object)[mask],
                hovertemplate="%{text}<br>clinical %{y:.2f} Gy/fx<extra></extra>",
            ), row=k + 1, col=1)
        verdict = take("self_evaluation")
        fig.add_trace(go.Scatter(
            x=idx, y=take("recommended_dose_gy").astype(float), mode="markers",
            name="recommendation (colour: q-value)", legendgroup="rec", showlegend=k == 0,
            error_y=dict(type="data", array=take("recommended_dose_sem_gy").astype(float),
                         thickness=1, width=0, color="#777777"),
            marker=dict(symbol="circle", size=8, color=take("q_value").astype(float),
                        colorscale="Viridis", cmin=q_lo, cmax=q_hi,
                        showscale=k == 0, line=dict(width=0.5, color="#333333"),
                        colorbar=dict(title=dict(text="q-value", side="right"), thickness=12,
                                      len=0.6)),
            customdata=np.column_stack([take("q_value").astype(float), verdict]),
            text=labels,
            hovertemplate=("%{text}<br>recommended %{y:.2f} Gy/fx<br>q %{customdata[0]:.2f}"
                           "<br>self-evaluation: %{customdata[1]}<extra></extra>"),
        ), row=k + 1, col=1)
        fig.update_yaxes(title_text="Gy/fx", row=k + 1, col=1, showgrid=True, gridcolor=GRID)
    fig.update_xaxes(title_text="case (sorted by the clinical decision)", row=len(archs), col=1)
    base_layout(fig, "Recommendation against the clinical decision, case by case",
                300 * max(1, len(archs)) + 140, f"odm-decisions-{protocol.name}",
                subtitle_text=f"{VIRTUAL_TRIAL_NOTE} · error bars: SEM over the 5 decision makers",
                legend_y=-0.12)
    return fig


def _cohort_regret(m: dict, cohort: str) -> dict:
    """One architecture's ``regret`` of a summary, for ``"trial"`` (top level) or
    ``"fresh_cohort"``."""
    return (m if cohort == "trial" else m.get(cohort) or {}).get("regret") or {}


def _regret_bars(summary: dict) -> list[tuple[str, str, str | None, str, str]]:
    """The bars of :func:`regret_figure`, top to bottom: (row label, policy, architecture or
    None for the clinicians and the constant dose, colour, bar pattern)."""
    archs = arch_order(list(summary.get("architectures") or {}))
    constant = next((reg["best_constant_dose_gy"] for m in summary["architectures"].values()
                     for reg in (_cohort_regret(m, "trial"), _cohort_regret(m, "fresh_cohort"))
                     if reg.get("best_constant_dose_gy") is not None), None)
    bars = [(REGRET_LABELS["historic"], "historic", None, _HISTORIC_COLOUR, ""),
            (REGRET_LABELS["best_constant_dose"]
             + ("" if constant is None else f" ({fmt_dose(round(constant, 3))} Gy/fx)"),
             "best_constant_dose", None, _CONSTANT_COLOUR, "")]
    for k, arch in enumerate(archs):
        bars += [(f"{safe_arch_label(arch)}: {REGRET_LABELS[policy]}", policy, arch,
                  arch_colour(arch, k), pattern) for policy, pattern in _ARCH_POLICIES]
    return bars


def regret_figure(summary: dict) -> go.Figure:
    """True-reward loss against the oracle per policy: the fresh cohort (left) beside the
    training trial (right).

    Args:
        summary: :func:`engine.arclids.odm_eval.summarise_odm_evaluation` (per architecture the
            trial's ``regret`` and ``fresh_cohort["regret"]``, rows of
            :data:`engine.arclids.odm_eval.REGRET_POLICIES`).

    One horizontal bar per policy: the historic clinicians and the best constant dose (the same
    cases and doses for every architecture, drawn once), then per architecture (its colour) the
    served recommendation (solid), the advised dose (hatched) and the exact argmax of its
    reward (dotted). Rows an older evaluation lacks are left out; ``meta`` of each bar is its
    policy. The hover adds the mean |dose − oracle dose| and, for the advice, the share of
    cases advised to change.
    """
    archs = summary.get("architectures") or {}
    cohorts = (("fresh_cohort", FRESH_COHORT_NOTE), ("trial", "training trial (trained on)"))
    first = next(iter(archs.values()), {})
    titles = []
    for cohort, label in cohorts:
        n = (first if cohort == "trial" else first.get(cohort) or {}).get("n_cases")
        titles.append(label + ("" if n is None else f", {int(n):,} cases"))
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.08,
                        subplot_titles=titles)
    labels: list[str] = []
    top = 0.0
    for label, policy, arch, colour, pattern in _regret_bars(summary):
        for col, (cohort, _) in enumerate(cohorts, start=1):
            regs = [_cohort_regret(archs[a], cohort) for a in ([arch] if arch else archs)]
            row = next((reg[policy] for reg in regs if policy in reg), None)
            if row is None:
                continue
            if label not in labels:
                labels.append(label)
            top = max(top, row["true_reward_loss"])
            change = ("" if row.get("change_share") is None else
                      f"<br>advised to change: {row['change_share']:.0%} of cases")
            fig.add_trace(go.Bar(
                x=[row["true_reward_loss"]], y=[label], orientation="h", name=label,
                showlegend=False, meta=policy,
                marker=dict(color=rgba(colour, 0.85), pattern=dict(shape=pattern),
                            line=dict(color=colour, width=1)),
                text=[f"{row['true_reward_loss']:.3f}"], textposition="outside",
                cliponaxis=False,
                hovertemplate=(f"{label}<br>loss %{{x:.3f}}<br>|dose − oracle dose| "
                               f"{row.get('dose_abs_error_gy', float('nan')):.2f} Gy/fx"
                               f"{change}<extra></extra>"),
            ), row=1, col=col)
    base_layout(fig, LOSS_TITLE, 130 + 34 * max(len(labels), 2),
                f"regret-{summary.get('protocol')}",
                subtitle_text="oracle: the virtual trial's true best dose per case · "
                              f"{ADVISED_NOTE}<br>{VIRTUAL_TRIAL_NOTE}",
                margin_px=dict(l=20, r=50, t=110, b=50))
    fig.update_layout(bargap=0.25)
    fig.update_yaxes(autorange="reversed", categoryorder="array", categoryarray=labels,
                     automargin=True)
    # one scale for both cohorts, with room for the value labels
    fig.update_xaxes(title_text="true-reward loss (reward 0–3)", range=[0, 1.2 * top or 1],
                     **GRIDDED)
    fig.update_annotations(font=dict(size=13))
    if not labels:
        add_empty_note(fig, "No regret rows in this evaluation")
    return fig


_CURVE_POLICIES = (
    ("learned_exact_argmax", "learned recommender (exact argmax of its reward)", None, "solid"),
    ("historic", REGRET_LABELS["historic"], _HISTORIC_COLOUR, "dash"),
    ("best_constant_dose", REGRET_LABELS["best_constant_dose"], _CONSTANT_COLOUR, "dot"),
)
"""(policy key in a regret-learning-curve row, label, colour (None: the architecture's), dash)."""


def regret_learning_curve_figure(rows: list[dict]) -> go.Figure:
    """True-reward loss on the fresh cohort against the training-trial size.

    Args:
        rows: the RTOE evaluation's ``regret_learning_curve``: per training size
            ``{arch, n_train_patients, n_members, best_constant_dose_gy, learned_exact_argmax,
            historic, best_constant_dose}``, each policy ``{true_reward_loss,
            dose_abs_error_gy, ...}`` (:func:`engine.arclids.rtoe_train.regret_learning_curve`).

    Answers: from how many training patients on does the learned recommender lose less than
    the clinicians and the one-dose policy? One line per policy (``meta`` = its key); x on a
    log scale with the sizes as ticks.
    """
    fig = go.Figure()
    points = sorted((r for r in rows if r.get("n_train_patients")),
                    key=lambda r: int(r["n_train_patients"]))
    archs = arch_order(list(dict.fromkeys(str(r.get("arch")) for r in points)))
    sizes = sorted({int(r["n_train_patients"]) for r in points})
    for k, arch in enumerate(archs):
        mine = [r for r in points if str(r.get("arch")) == arch]
        for policy, label, colour, dash in _CURVE_POLICIES:
            if policy != "learned_exact_argmax" and k > 0:
                continue  # the same clinicians and constant dose for every architecture
            have = [r for r in mine if (r.get(policy) or {}).get("true_reward_loss") is not None]
            if not have:
                continue
            name = (f"{safe_arch_label(arch)}: {label}" if policy == "learned_exact_argmax"
                    else label)
            line_colour = colour or arch_colour(arch, k)
            hover = ("constant dose %{customdata[1]:.2f} Gy/fx<br>"
                     if policy == "best_constant_dose" else "")
            fig.add_trace(go.Scatter(
                x=[int(r["n_train_patients"]) for r in have],
                y=[r[policy]["true_reward_loss"] for r in have],
                customdata=[[r[policy].get("dose_abs_error_gy"), r.get("best_constant_dose_gy")]
                            for r in have],
                mode="lines+markers", name=name, meta=policy,
                line=dict(color=line_colour, width=2.4, dash=dash),
                marker=dict(color=line_colour, size=8),
                hovertemplate=(f"<b>{name}</b><br>%{{x}} training patients<br>loss %{{y:.3f}}"
                               f"<br>{hover}|dose − oracle dose| %{{customdata[0]:.2f}} Gy/fx"
                               "<extra></extra>"),
            ))
    members = next((r.get("n_members") for r in points if r.get("n_members")), None)
    base_layout(fig, "Regret learning curve: " + LOSS_TITLE.lower(), 440,
                "regret-learning-curve",
                subtitle_text=(f"{FRESH_COHORT_NOTE} · learned: "
                               + (f"{members} bagged, recalibrated members per outcome, "
                                  if members else "")
                               + "trained on each size's own virtual trial · constant dose "
                                 "chosen on that trial's truth<br>" + VIRTUAL_TRIAL_NOTE),
                margin_px=dict(t=110, b=40), legend_y=-0.2)
    fig.update_xaxes(type="log", title_text="patients in the training trial", **GRIDDED,
                     **({"tickvals": sizes, "ticktext": [str(n) for n in sizes]}
                        if sizes else {}))
    fig.update_yaxes(title_text="true-reward loss vs oracle", rangemode="tozero", **GRIDDED)
    if not fig.data:
        add_empty_note(fig, "No regret learning curve in this evaluation")
    return fig
