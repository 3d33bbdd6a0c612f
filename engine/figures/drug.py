"""Figures of the drug-resistance predictions (the app's Systemic therapy panel).

* :func:`drug_probability_figure` — per drug the calibrated probability of resistance with its
  range over the bagged models and the drug's base rate; drugs whose model does not beat the
  naive baseline in cross-validation are drawn grey;
* :func:`profile_genes_figure` — the features that push this profile's prediction for one drug
  toward resistance (red) or sensitivity (blue): SHAP values of the served model;
* :func:`tissue_genes_figure` — the features that move a drug's predictions most in a tissue
  (mean |SHAP| of the served trees over its held-out lines, and below it, when saved, the
  Res-VAE's mean |integrated gradients|), coloured by direction.

Sample ids and drug names come from users or data files: they pass through
:func:`engine.figures.style.safe`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from engine.figures.style import (
    BLUE,
    GRID,
    HISTOGRAM_GREY,
    MUTED,
    VERMILLION,
    add_empty_note,
    base_layout,
    safe,
    wrap,
)

__all__ = [
    "DIRECTION_MIN",
    "direction_text",
    "drug_probability_figure",
    "group_label",
    "is_weak",
    "profile_genes_figure",
    "tissue_genes_figure",
]

DIRECTION_MIN = 0.1
"""|correlation| of a feature's value with its SHAP value below which its direction is shown as
mixed."""
CELL_LINE_NOTE = "Cell-line models (GDSC, DepMap) — a research estimate, not clinical evidence"
"""Caption of every drug figure."""


_SUBTITLE_CHARS = 95
"""Subtitles wrap at this many characters (they would be cut off at the figure's width)."""


def group_label(group: str) -> str:
    """``"lung / NSCLC_adenocarcinoma"`` → ``"lung, NSCLC adenocarcinoma"``; ``"all"`` →
    ``"all lines"``."""
    if group == "all":
        return "all lines"
    return group.replace(" / ", ", ").replace("_", " ")


def is_weak(cv_auroc: float | None, naive_auroc: float | None) -> bool:
    """Whether a drug's model does not beat the naive baseline (or has no CV AUROC)."""
    if cv_auroc is None:
        return True
    return naive_auroc is not None and cv_auroc <= naive_auroc


def direction_text(feature: dict[str, Any]) -> str:
    """``"higher → resistant"``, ``"mutated → sensitive"``, ``"mixed"`` or ``"constant"``."""
    d = feature.get("direction")
    if d is None:
        return "constant in these lines"
    if abs(d) < DIRECTION_MIN:
        return "mixed"
    what = "mutated" if feature.get("modality") == "mut" else "higher"
    return f"{what} → {'resistant' if d > 0 else 'sensitive'}"


def drug_probability_figure(rows: Sequence[dict[str, Any]], sample_label: str,
                            level: float) -> go.Figure:
    """Dots with whiskers: P(resistant) per drug with its range, the base rate as a tick.

    Args:
        rows: per drug ``drug``, ``p_resistant``, ``low``, ``high``, ``resistant_rate``,
            ``cv_auroc``, ``naive_auroc`` (sorted as they should appear, top first).
        sample_label: what is predicted (escaped here).
        level: the range's level, e.g. 0.8.
    """
    fig = go.Figure()
    pct = round(100 * level)
    title = f"Probability of resistance — {safe(sample_label)}"
    height = 150 + 24 * max(len(rows), 1)
    base_layout(fig, title, height, f"drug-prob-{safe(sample_label)}",
                subtitle_text=wrap(f"dot: calibrated probability; bar: {pct} % range over "
                                   "bagged models (model uncertainty); tick: the drug's base "
                                   "rate; grey dot: CV AUROC not above the naive baseline",
                                   _SUBTITLE_CHARS),
                margin_px=dict(l=150, t=100, b=50))
    if not rows:
        add_empty_note(fig, "No prediction to show")
        return fig
    ordered = list(rows)[::-1]  # plotly draws the first category at the bottom
    names = [safe(r["drug"]) for r in ordered]
    weak = [is_weak(r["cv_auroc"], r["naive_auroc"]) for r in ordered]
    colours = [HISTOGRAM_GREY if w else VERMILLION for w in weak]

    def auroc(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.2f}"

    hover = [f"{safe(r['drug'])}: {r['p_resistant']:.2f} ({pct} % range {r['low']:.2f}–"
             f"{r['high']:.2f})<br>base rate {r['resistant_rate']:.2f}<br>CV AUROC "
             f"{auroc(r['cv_auroc'])} vs naive {auroc(r['naive_auroc'])}"
             + (" — not above the naive baseline" if w else "")
             for r, w in zip(ordered, weak, strict=True)]
    fig.add_trace(go.Scatter(
        x=[r["resistant_rate"] for r in ordered], y=names, mode="markers",
        marker=dict(symbol="line-ns", size=14, line=dict(width=2, color=MUTED)),
        name="base rate", hoverinfo="skip"))
    fig.add_trace(go.Scatter(
        x=[r["p_resistant"] for r in ordered], y=names, mode="markers",
        marker=dict(size=10, color=colours, line=dict(width=1, color="#333333")),
        error_x=dict(type="data", symmetric=False, thickness=2, width=0, color="#555555",
                     array=[r["high"] - r["p_resistant"] for r in ordered],
                     arrayminus=[r["p_resistant"] - r["low"] for r in ordered]),
        name="P(resistant)", text=hover, hovertemplate="%{text}<extra></extra>"))
    fig.update_xaxes(title_text="probability of resistance", range=[0, 1.02], showgrid=True,
                     gridcolor=GRID, zeroline=False)
    fig.update_yaxes(showgrid=False, automargin=True)
    fig.update_layout(showlegend=False)
    return fig


def profile_genes_figure(features: Sequence[dict[str, Any]], drug: str,
                         sample_label: str) -> go.Figure:
    """Signed bars: this profile's SHAP value of each feature for ``drug`` (largest |SHAP| on
    top); red pushes toward resistance.

    Args:
        features: as :meth:`engine.drug.serving.ServedDrugModels.explain` returns for one
            profile (``label``, ``shap``, ``value``, ``units``, ``modality``).
    """
    fig = go.Figure()
    units = features[0]["units"] if features else "probability"
    base_layout(fig, f"Why this prediction — {safe(drug)}, {safe(sample_label)}",
                140 + 26 * max(len(features), 1), f"drug-genes-{safe(drug)}-{safe(sample_label)}",
                subtitle_text=wrap(f"SHAP value of each feature for this profile ({units} "
                                   "units, before calibration); red pushes toward resistance",
                                   _SUBTITLE_CHARS),
                margin_px=dict(l=190, t=100, b=60))
    if not features:
        add_empty_note(fig, "No explanation to show")
        return fig
    ordered = list(features)[::-1]
    values = [f["shap"] for f in ordered]
    fig.add_trace(go.Bar(
        x=values, y=[safe(f["label"]) for f in ordered], orientation="h",
        marker=dict(color=[VERMILLION if v > 0 else BLUE for v in values]),
        customdata=[f["value"] for f in ordered],
        hovertemplate=("%{y}: %{x:+.4f} " + units + "<br>this profile's value %{customdata:.3g}"
                       "<extra></extra>")))
    fig.update_xaxes(title_text=f"SHAP ({units}); > 0 toward resistance", zeroline=True,
                     zerolinecolor="#888888", showgrid=True, gridcolor=GRID)
    fig.update_yaxes(automargin=True)
    fig.update_layout(showlegend=False)
    return fig


def tissue_genes_figure(entry: dict[str, Any], drug: str, group: str, units: str, *,
                        model_label: str = "", resvae: dict[str, Any] | None = None,
                        resvae_label: str = "", resvae_units: str = "logit") -> go.Figure:
    """Bars of mean |SHAP| of the served tree model over a group's held-out lines, coloured by
    direction (red: higher value or a mutation pushes toward resistance, blue: toward
    sensitivity, grey: mixed); with ``resvae``, a second panel below with the Res-VAE's mean
    |integrated gradients| over the same group, each panel titled with its model.

    Args:
        entry: one group of ``interpretation.json`` (``n_lines``, ``n_sensitive``, ``top``).
        model_label: the tree model's name, shown on its panel.
        resvae: the same group of ``interpretation_resvae.json`` (``top`` with
            ``mean_abs_attribution``), or None.
        resvae_label: the Res-VAE variant's name, shown on its panel.
        resvae_units: units of the attributions (logit).
    """
    panels = [(entry, "mean_abs_shap", "mean_shap", "SHAP", units, model_label or "tree model")]
    if resvae is not None:
        panels.append((resvae, "mean_abs_attribution", "mean_attribution",
                       "integrated gradients", resvae_units, resvae_label or "Res-VAE"))
    rows = max(len(p[0].get("top", [])) for p in panels)
    if len(panels) == 1:
        fig = go.Figure()
    else:
        # two-line titles (model, then the quantity): one line is cut off in a half-width card
        fig = make_subplots(
            rows=2, cols=1, vertical_spacing=0.16,
            subplot_titles=[f"<b>{safe(label)}</b><br>mean |{name}| ({u})"
                            for _, _, _, name, u, label in panels])
        fig.update_annotations(font_size=13)
    subtitle = (f"mean |SHAP| over {entry.get('n_lines', 0)} held-out lines "
                f"({entry.get('n_sensitive', 0)} sensitive), {units} units"
                if len(panels) == 1 else
                f"over {entry.get('n_lines', 0)} held-out lines ({entry.get('n_sensitive', 0)} "
                "sensitive), each model's own units")
    base_layout(fig, f"What drives {safe(drug)} predictions — {safe(group_label(group))}",
                140 + 24 * max(rows, 1) * len(panels) + 110 * (len(panels) - 1),
                f"drug-tissue-{safe(drug)}-{safe(group)}",
                subtitle_text=wrap(subtitle + "; red: higher or mutated → resistant, blue: → "
                                   "sensitive, grey: mixed", _SUBTITLE_CHARS),
                margin_px=dict(l=190, t=100 + 35 * (len(panels) - 1), b=60))
    if rows == 0:
        add_empty_note(fig, "No ranking for this group")
        return fig

    def colour(f: dict[str, Any]) -> str:
        d = f.get("direction")
        if d is None or abs(d) < DIRECTION_MIN:
            return HISTOGRAM_GREY
        return VERMILLION if d > 0 else BLUE

    for k, (got, abs_key, mean_key, name, u, label) in enumerate(panels, start=1):
        ordered = list(got.get("top", []))[::-1]
        trace = go.Bar(
            x=[f[abs_key] for f in ordered], y=[safe(f["label"]) for f in ordered],
            orientation="h", marker=dict(color=[colour(f) for f in ordered]),
            text=[direction_text(f) for f in ordered], name=safe(label),
            customdata=[f[mean_key] for f in ordered],
            hovertemplate=(f"{safe(label)}<br>%{{y}}: mean |{name}| %{{x:.4f}}<br>mean {name} "
                           "%{customdata:+.4f}<br>%{text}<extra></extra>"),
            textposition="none")
        axis = f"mean |{name}| ({u})"
        if len(panels) == 1:
            fig.add_trace(trace)
            fig.update_xaxes(title_text=axis, showgrid=True, gridcolor=GRID)
        else:
            fig.add_trace(trace, row=k, col=1)
            fig.update_xaxes(title_text=axis, showgrid=True, gridcolor=GRID, row=k, col=1)
    fig.update_yaxes(automargin=True)
    fig.update_layout(showlegend=False)
    return fig
