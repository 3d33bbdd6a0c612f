"""Review of the synthetic patients and the decision makers, for physicists (the app's ODM
review panel and the model card ``docs/model-card-odm.md``).

- :func:`gan_overlay_figure`: per-feature histograms of the training trial, the WGAN-GP's
  synthetic patients and the virtual population, with the Jensen–Shannon divergence.
- :func:`odm_rmsd_figure`, :func:`odm_self_evaluation_figure`, :func:`odm_decisions_figure`: the
  Double-DQN decision makers against the clinical decisions (ARCliDS Figs. 10–11, Table 1).
"""

from __future__ import annotations

import itertools

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from engine.core.protocols import Protocol
from engine.figures.style import (
    BLUE,
    BLUISH_GREEN,
    GRID,
    ORANGE,
    VERMILLION,
    VIRTUAL_TRIAL_NOTE,
    arch_colour,
    arch_order,
    base_layout,
    rgba,
    safe,
    safe_arch_label,
    wrap,
)

__all__ = [
    "gan_overlay_figure",
    "odm_decisions_figure",
    "odm_rmsd_figure",
    "odm_self_evaluation_figure",
]

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
    recommendations (± SEM, the members' fitting noise) coloured by their q-value (the reward
    the decision maker predicts, 0–3 with goal bonuses; not a confidence)."""
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
            hovertemplate=("%{text}<br>recommended %{y:.2f} Gy/fx<br>q-value (predicted reward) "
                           "%{customdata[0]:.2f}"
                           "<br>self-evaluation: %{customdata[1]}<extra></extra>"),
        ), row=k + 1, col=1)
        fig.update_yaxes(title_text="Gy/fx", row=k + 1, col=1, showgrid=True, gridcolor=GRID)
    fig.update_xaxes(title_text="case (sorted by the clinical decision)", row=len(archs), col=1)
    base_layout(fig, "Recommendation against the clinical decision, case by case",
                300 * max(1, len(archs)) + 140, f"odm-decisions-{protocol.name}",
                subtitle_text=f"{VIRTUAL_TRIAL_NOTE} · error bars: SEM over the 5 decision makers",
                legend_y=-0.12)
    return fig
