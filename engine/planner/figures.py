"""Plotly figures of a planning run (the app's planner panel), styled by engine.figures.style.

- :func:`weekly_dose_figure`: the ART weekly plan against the reference, the expected weekly
  dose and the oracle's plan, above the per-fraction distribution of the planner's actions over
  scenarios (the paper's Fig. 12).
- :func:`volume_box_figure`: tumour volume (% of initial) at the start of each week, box plots
  over scenarios, ART against reference (Fig. 13).
- :func:`bed_sf_figure`: histograms of the final tumour BED and log10 SF over scenarios, ART
  against reference (Figs. 14–15).
- :func:`phantom_dose_figure`: total course dose on the 2-D phantom, reference against ART, with
  the structures outlined and the dose–volume metrics.

Colours: Okabe–Ito (reference blue, ART vermillion, oracle green).
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from engine.figures.style import (
    BLACK,
    BLUE,
    BLUISH_GREEN,
    GRIDDED,
    ORANGE,
    REDDISH_PURPLE,
    SKY_BLUE,
    VERMILLION,
    add_empty_note,
    base_layout,
)
from engine.planner.evaluate import PlanResult

__all__ = [
    "bed_sf_figure",
    "phantom_dose_figure",
    "volume_box_figure",
    "weekly_dose_figure",
]

REF, ART, ORACLE, EXPECTED = BLUE, VERMILLION, BLUISH_GREEN, ORANGE
"""Colours of the reference plan, the ART plan, the exact oracle and the expected weekly dose."""
_ACTION_COLOURS = (SKY_BLUE, "#BBBBBB", VERMILLION, REDDISH_PURPLE, BLUISH_GREEN, BLACK)
"""Colour per planner action (dose per fraction), cycled beyond six actions."""
_SIM_NOTE = "simulated scenarios from the response model · not clinical evidence"


def _layout(fig: go.Figure, title: str, height_px: int, subtitle: str = _SIM_NOTE) -> None:
    """The shared look with the planner's subtitle; annotations (subplot titles) at 13 px."""
    base_layout(fig, title, height_px, "planner", subtitle_text=subtitle,
                margin_px=dict(t=96), legend_y=-0.16)
    fig.update_annotations(font=dict(size=13))


def _step(weekly: list[float], fpw: int) -> tuple[list[float], list[float]]:
    """x (fraction, 0.5-based edges) and y of a weekly plan drawn as steps over fractions."""
    xs, ys = [], []
    for w, d in enumerate(weekly):
        xs += [w * fpw + 0.5, (w + 1) * fpw + 0.5]
        ys += [d, d]
    return xs, ys


def weekly_dose_figure(result: PlanResult) -> go.Figure:
    """Weekly plans (top) and per-fraction action shares over scenarios (bottom)."""
    p = result.payload
    fpw = p["config"]["course"]["fractions_per_week"]
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.1,
                        row_heights=[0.55, 0.45],
                        subplot_titles=("Dose per fraction (Gy)",
                                        "Planner's action per fraction, share of scenarios"))
    lines = (
        ("Reference (equal dose)", p["reference_weekly_dose_gy"], REF, "dot"),
        ("Best weekly plan (exact oracle)", p["oracle"]["best_weekly_dose_gy"], ORACLE, "dash"),
        ("Expected weekly dose (planner)", p["expected_weekly_dose_gy"], EXPECTED, "dashdot"),
        ("ART plan", p["weekly_dose_gy"], ART, "solid"),
    )
    for name, weekly, colour, dash in lines:
        xs, ys = _step(weekly, fpw)
        fig.add_trace(go.Scatter(
            x=xs, y=ys, mode="lines", name=name,
            line=dict(color=colour, dash=dash, width=3 if name == "ART plan" else 2),
            hovertemplate=f"{name}<br>%{{y:.2f}} Gy/fraction<extra></extra>"), row=1, col=1)
    for w in p["adaptation_weeks"]:
        fig.add_vline(x=(w - 1) * fpw + 0.5, line=dict(color="#999999", dash="dot", width=1),
                      row=1, col=1)
    shares = np.asarray(p["policy"]["per_fraction_action_share"])  # [N, A]
    fractions = np.arange(1, shares.shape[0] + 1)
    for a, dose in enumerate(p["policy"]["actions_gy"]):
        fig.add_trace(go.Bar(
            x=fractions, y=100 * shares[:, a], name=f"{dose:g} Gy",
            marker_color=_ACTION_COLOURS[a % len(_ACTION_COLOURS)], legendgroup="actions",
            hovertemplate=f"fraction %{{x}}: {dose:g} Gy in %{{y:.0f}} % of scenarios"
                          "<extra></extra>"), row=2, col=1)
    fig.update_layout(barmode="stack", bargap=0.1)
    n = shares.shape[0]
    weeks = list(range(1, n // fpw + 1))
    fig.update_xaxes(tickvals=[(w - 1) * fpw + (fpw + 1) / 2 for w in weeks],
                     ticktext=[f"W{w}" for w in weeks], range=[0.5, n + 0.5], showgrid=False,
                     mirror=True)
    fig.update_xaxes(title_text="week of treatment (fractions)", row=2, col=1)
    fig.update_yaxes(**GRIDDED)
    all_doses = [d for _, weekly, _, _ in lines for d in weekly]
    fig.update_yaxes(title_text="Gy", range=[min(all_doses) - 0.05, max(all_doses) + 0.05],
                     row=1, col=1)
    fig.update_yaxes(title_text="%", range=[0, 100], row=2, col=1)
    adapt = ", ".join(f"W{w}" for w in p["adaptation_weeks"]) or "none"
    _layout(fig, f"Weekly dose: ART plan and reference · adaptation points {adapt}", 560)
    return fig


def volume_box_figure(result: PlanResult) -> go.Figure:
    """Tumour volume (% of initial) at the start of each week and at the end, per plan."""
    fig = go.Figure()
    for key, name, colour in (("reference", "Reference", REF), ("art", "ART plan", ART)):
        vol = 100.0 * result.outcomes[key].weekly_volume  # [S, W + 1]
        n_w = vol.shape[1]
        labels = [f"W{w + 1}" for w in range(n_w - 1)] + ["end"]
        fig.add_trace(go.Box(
            x=np.repeat(np.array(labels)[None, :], vol.shape[0], 0).ravel(),
            y=np.maximum(vol, 1e-6).ravel(), name=name, marker_color=colour,
            boxpoints=False, line=dict(width=1.5),
            hovertemplate=f"{name}<br>%{{x}}: %{{y:.3g}} %<extra></extra>"))
    fig.update_layout(boxmode="group")
    fig.update_yaxes(type="log", title_text="tumour volume, % of initial (log)",
                     exponentformat="power", **GRIDDED)
    fig.update_xaxes(title_text="start of week", mirror=True)
    _layout(fig, "Predicted tumour volume by week", 420)
    return fig


def bed_sf_figure(result: PlanResult) -> go.Figure:
    """Histograms of final tumour BED (Gy) and log10 SF over scenarios, ART vs reference."""
    p = result.payload
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.12,
                        subplot_titles=("Final tumour BED (Gy)",
                                        "Final surviving fraction (log10)"))
    for key, name, colour in (("reference", "Reference", REF), ("art", "ART plan", ART)):
        out = result.outcomes[key]
        s = p[key]
        fig.add_trace(go.Histogram(
            x=out.tumour_bed_gy, name=name, legendgroup=key, marker_color=colour,
            opacity=0.55, nbinsx=40, histnorm="percent",
            hovertemplate=f"{name}<br>BED %{{x}} Gy: %{{y:.1f}} %<extra></extra>"),
            row=1, col=1)
        fig.add_vline(x=s["tumour_bed_mean"], line=dict(color=colour, dash="dash", width=2),
                      row=1, col=1)
        fig.add_trace(go.Histogram(
            x=np.log10(np.maximum(out.surviving_fraction, 1e-300)), name=name,
            legendgroup=key, showlegend=False, marker_color=colour, opacity=0.55, nbinsx=40,
            histnorm="percent",
            hovertemplate=f"{name}<br>log10 SF %{{x}}: %{{y:.1f}} %<extra></extra>"),
            row=1, col=2)
    eps = p["config"]["reward"]["sf_target"]
    fig.add_vline(x=float(np.log10(eps)), line=dict(color="#444444", dash="dot", width=1.5),
                  annotation_text=f"ε = {eps:g}", annotation_position="top left",
                  row=1, col=2)
    fig.update_layout(barmode="overlay")
    fig.update_yaxes(title_text="% of scenarios", **GRIDDED)
    fig.update_xaxes(**GRIDDED)
    ref, art = p["reference"], p["art"]
    _layout(fig, (f"Tumour BED {ref['tumour_bed_mean']:.2f} → {art['tumour_bed_mean']:.2f} Gy "
                  f"({p['tumour_bed_gain_percent']:+.2f} %), OAR BED "
                  f"{p['oar_bed_change_percent']:+.2f} %"), 420)
    return fig


def _outline(mask: np.ndarray, x: np.ndarray, y: np.ndarray, colour: str, name: str,
             show: bool) -> go.Contour:
    return go.Contour(
        z=mask.astype(float), x=x, y=y, contours=dict(start=0.5, end=0.5, size=1,
                                                      coloring="none"),
        line=dict(color=colour, width=2), showscale=False, name=name, showlegend=show,
        hoverinfo="skip")


def phantom_dose_figure(result: PlanResult) -> go.Figure:
    """Total course dose maps (Gy) of the reference and the ART plan on the phantom."""
    if result.beamlet is None:
        fig = go.Figure()
        add_empty_note(fig, "Beamlet optimisation was not run")
        _layout(fig, "Phantom dose maps", 300)
        return fig
    b = result.beamlet
    ph = b["phantom"]
    x, y = ph.x_mm[0], ph.y_mm[:, 0]
    metrics = result.payload["beamlet"]
    titles = []
    for key, name in (("reference", "Reference"), ("art", "ART")):
        m = metrics[key]
        titles.append(f"{name}: lung V20 {m['lung_v20_percent']:.1f} %, mean "
                      f"{m['lung_mean_gy']:.1f} Gy · heart V45 {m['heart_v45_percent']:.1f} %, "
                      f"D2 {m['heart_d2_gy']:.1f} Gy")
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.06, subplot_titles=titles)
    zmax = float(max(b["reference"].dose_map_gy.max(), b["art"].dose_map_gy.max()))
    for col, key in enumerate(("reference", "art"), start=1):
        plan = b[key]
        dose = np.where(ph.body, plan.dose_map_gy, np.nan)
        fig.add_trace(go.Heatmap(
            z=dose, x=x, y=y, zmin=0, zmax=zmax, colorscale="Turbo", showscale=col == 2,
            colorbar=dict(title=dict(text="Gy"), len=0.8), name="dose",
            hovertemplate="x %{x:.0f} mm, y %{y:.0f} mm<br>%{z:.1f} Gy<extra></extra>"),
            row=1, col=col)
        for mask, colour, name in ((b["final_lung"], "#FFFFFF", "lung (end of treatment)"),
                                   (ph.heart, REDDISH_PURPLE, "heart"),
                                   (ph.tumour, BLACK, "initial tumour"),
                                   (plan.targets[-1], BLUISH_GREEN, "last planned target")):
            fig.add_trace(_outline(mask, x, y, colour, name, col == 1), row=1, col=col)
        fig.update_xaxes(scaleanchor=f"y{'' if col == 1 else col}", showticklabels=False,
                         row=1, col=col)
        fig.update_yaxes(showticklabels=False, row=1, col=col)
    weeks = ", ".join(f"W{w}" for w in metrics["segment_weeks"])
    _layout(fig, f"Total dose on the phantom (ART re-planned at {weeks})", 520,
            subtitle="2-D teaching phantom, pencil-beam model · beamlet LP (22)–(26) with HiGHS")
    fig.update_annotations(font=dict(size=12))
    fig.update_layout(plot_bgcolor="#ffffff")
    return fig
