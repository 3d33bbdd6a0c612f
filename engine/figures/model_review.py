"""Review of the outcome estimators, for physicists (the app's model-review panel).

- :func:`roc_figure`: cross-validated ROC curves per architecture, TCP and NTCP outcome.
- :func:`learning_curve_figure`: AUROC against the training-trial size, with the Bayes ceiling.
- :func:`architecture_contrast_figure`: the dose response of chosen patients per architecture,
  with every dose step over which a curve falls highlighted.
- :func:`reliability_figure`: the reliability diagram on the fresh cohort (mean predicted
  probability per bin against the observed rate and the mean true probability).
- :func:`interval_coverage_figure`: the stated interval level against the measured share of
  true probabilities inside the interval.

Architectures keep one colour and line style in all three (:data:`engine.figures.style.
ARCH_COLOURS`, :data:`~engine.figures.style.ARCH_DASHES`), cases their case colour.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from engine.arclids.architectures import REFERENCE, SERVED_ARCH
from engine.arclids.outcomes import OutcomeCurves
from engine.core.protocols import Protocol
from engine.figures.style import (
    GRIDDED,
    REDDISH_PURPLE,
    SKY_BLUE,
    VIRTUAL_TRIAL_NOTE,
    add_empty_note,
    arch_colour,
    arch_dash,
    arch_order,
    base_layout,
    case_colour,
    case_revision,
    rgba,
    safe,
    safe_arch_label,
)

__all__ = [
    "architecture_contrast_figure",
    "interval_coverage_figure",
    "learning_curve_figure",
    "reliability_figure",
    "roc_figure",
]

COVERAGE_TOLERANCE = 0.15
"""Issue #12's aim: the measured coverage within ±0.15 of the stated level (the shaded band)."""
_FRESH_NOTE = "fresh virtual cohort (never trained on)"


def _outcome_panels(protocol: Protocol) -> list[tuple[str, str, str]]:
    """(outcome column, "TCP"/"NTCP", readable outcome) for the target, then the organ at risk."""
    return [
        (protocol.target.outcome, "TCP", safe(protocol.target.outcome_label)),
        (protocol.oar.outcome, "NTCP", safe(protocol.oar.outcome_label)),
    ]


def _mean_roc(splits: Sequence[dict], grid: np.ndarray) -> np.ndarray | None:
    """Mean true-positive rate of the splits' ROC curves on a common false-positive-rate grid."""
    curves = []
    for split in splits:
        fpr = np.asarray(split.get("fpr", []), dtype=float)
        tpr = np.asarray(split.get("tpr", []), dtype=float)
        if fpr.size < 2 or fpr.size != tpr.size:
            continue
        order = np.lexsort((tpr, fpr))  # by fpr, ties by tpr: the step's top is kept last
        curves.append(np.interp(grid, fpr[order], tpr[order]))
    if not curves:
        return None
    mean = np.mean(curves, axis=0)
    mean[0] = 0.0 if grid[0] == 0.0 else mean[0]
    return mean


def roc_figure(payload: dict, protocol: Protocol, *, n_grid: int = 101) -> go.Figure:
    """Cross-validated ROC curves of every architecture, TCP outcome left, NTCP outcome right.

    Args:
        payload: one protocol's evaluation payload (``payload["architectures"][arch][outcome]``
            with ``roc``: one ``{"fpr": [...], "tpr": [...]}`` per CV split, ``cv_auroc_mean``
            and ``cv_auroc_sd``), as saved by ``artds train rtoe``.
        protocol: names the outcomes.
        n_grid: points of the common false-positive-rate grid of the mean curve.

    Thin lines are the single splits (``meta="split"``), the thick line their mean on the common
    grid (vertical averaging, ``meta="mean"``); each panel has its own legend below it giving
    the splits' AUROC mean ± sd per architecture. The dotted diagonal is chance.
    """
    archs = payload.get("architectures") or {}
    panels = _outcome_panels(protocol)
    fig = make_subplots(
        rows=1, cols=2, horizontal_spacing=0.12,
        subplot_titles=[f"{short}: {label}" for _, short, label in panels],
    )
    grid = np.linspace(0.0, 1.0, n_grid)
    scored: set[int] = set()
    for col, (outcome, short, _) in enumerate(panels, start=1):
        legend = "legend" if col == 1 else "legend2"
        for k, arch in enumerate(arch_order(list(archs))):
            result = (archs.get(arch) or {}).get(outcome)
            if not result:
                continue
            colour = arch_colour(arch, k)
            splits = result.get("roc") or []
            xs: list[float | None] = []
            ys: list[float | None] = []
            for split in splits:
                xs += [*map(float, split.get("fpr", [])), None]
                ys += [*map(float, split.get("tpr", [])), None]
            group = f"{arch}-{short}"
            if xs:
                fig.add_trace(
                    go.Scatter(x=xs, y=ys, mode="lines", connectgaps=False,
                               name=f"{safe_arch_label(arch)} · {short}: single splits",
                               line=dict(color=rgba(colour, 0.3), width=1),
                               legend=legend, legendgroup=group, showlegend=False,
                               hoverinfo="skip", meta="split"),
                    row=1, col=col,
                )
            mean_tpr = _mean_roc(splits, grid)
            if mean_tpr is None:
                continue
            scored.add(col)
            m, sd = result.get("cv_auroc_mean"), result.get("cv_auroc_sd")
            auroc = ("AUROC n/a" if m is None else
                     f"AUROC {m:.2f}" + ("" if sd is None else f" ± {sd:.2f}"))
            fig.add_trace(
                go.Scatter(x=grid, y=mean_tpr, mode="lines",
                           name=f"{safe_arch_label(arch)}: {auroc}",
                           line=dict(color=colour, width=3, dash=arch_dash(arch)),
                           legend=legend, legendgroup=group, legendrank=100 + k, meta="mean",
                           hovertemplate=(
                               f"<b>{safe_arch_label(arch)}</b> · {short}<br>"
                               "FPR %{x:.2f}<br>mean TPR %{y:.2f}<extra></extra>"
                           )),
                row=1, col=col,
            )
        fig.add_trace(
            go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance (AUROC 0.5)",
                       line=dict(color="#999999", dash="dot", width=1.2),
                       legend=legend, legendrank=2000, hoverinfo="skip"),
            row=1, col=col,
        )
    n_splits = max((len((archs.get(a) or {}).get(o, {}).get("roc") or [])
                    for a in archs for o, _, _ in panels), default=0)
    base_layout(fig, f"Cross-validated ROC curves · {safe(protocol.label)}", 600,
                f"roc-{protocol.name}",
                subtitle_text=f"thin: each of {n_splits} stratified 80/20 splits · thick: their "
                              "mean · virtual trial (simulated patients), not clinical evidence",
                margin_px=dict(t=96, b=30))
    legend_style = dict(orientation="v", yanchor="top", y=-0.16, xanchor="left",
                        font=dict(size=12), bgcolor="rgba(255,255,255,0)")
    fig.update_layout(
        showlegend=True,
        legend=dict(legend_style, x=0.0),
        legend2=dict(legend_style, x=0.56),
    )
    for col, (outcome, _, _) in enumerate(panels, start=1):
        if col in scored or not archs:
            continue
        counted = [r for r in ((archs.get(a) or {}).get(outcome) or {} for a in archs)
                   if r.get("n_cases")]
        n_cases = int(counted[0]["n_cases"]) if counted else 0
        n_events = int(counted[0].get("n_events") or 0) if counted else 0
        minority = min(n_events, n_cases - n_events)
        fig.add_annotation(
            text=("No ROC curve: no validation split held both outcomes"
                  + (f"<br>(the smaller class has {minority} of {n_cases} cases)"
                     if n_cases else "")),
            xref=f"x{col if col > 1 else ''} domain", yref=f"y{col if col > 1 else ''} domain",
            x=0.5, y=0.62, showarrow=False, font=dict(size=13, color="#555555"),
            bgcolor="rgba(255,255,255,0.85)",
        )
    fig.update_annotations(font=dict(size=13))
    fig.update_xaxes(range=[0, 1], title_text="false positive rate", tickformat=".1f",
                     dtick=0.2, **GRIDDED)
    fig.update_yaxes(range=[0, 1.01], tickformat=".1f", dtick=0.2, **GRIDDED)
    fig.update_yaxes(title_text="true positive rate", col=1)
    if not archs:
        add_empty_note(fig, "No evaluation to show")
    return fig


def learning_curve_figure(
    rows: Sequence[dict], protocol: Protocol | None = None
) -> go.Figure:
    """AUROC on a fresh virtual cohort against the training-trial size, per architecture.

    Args:
        rows: ``{arch, outcome, n_train_patients, auroc_vs_truth, auroc_bayes_ceiling, ...}``
            (the evaluation's ``learning_curve``).
        protocol: when given, outcome columns are shown as "TCP: local control" etc.

    One panel per outcome; the dashed grey line is the Bayes ceiling (the AUROC of the true
    probabilities on the same draws), which no model can beat on average.
    """
    names: dict[str, str] = {}
    if protocol is not None:
        for outcome, short, label in _outcome_panels(protocol):
            names[outcome] = f"{short}: {label}"
            names[short.lower()] = f"{short}: {label}"
    outcomes = list(dict.fromkeys(str(r.get("outcome")) for r in rows))
    if protocol is not None:
        order = [o for o, _, _ in _outcome_panels(protocol)] + ["tcp", "ntcp"]
        outcomes.sort(key=lambda o: order.index(o) if o in order else len(order))
    fig = make_subplots(
        rows=1, cols=max(len(outcomes), 1), horizontal_spacing=0.1,
        subplot_titles=[names.get(o, safe(o)) for o in outcomes] or [""],
    )
    archs = arch_order(list(dict.fromkeys(str(r.get("arch")) for r in rows)))
    sizes = sorted({int(r["n_train_patients"]) for r in rows if r.get("n_train_patients")})
    for col, outcome in enumerate(outcomes, start=1):
        mine = [r for r in rows if str(r.get("outcome")) == outcome]
        ceiling: dict[int, list[float]] = {}
        for r in mine:
            if r.get("auroc_bayes_ceiling") is not None:
                ceiling.setdefault(int(r["n_train_patients"]), []).append(
                    float(r["auroc_bayes_ceiling"]))
        if ceiling:
            xs = sorted(ceiling)
            fig.add_trace(
                go.Scatter(x=xs, y=[float(np.mean(ceiling[x])) for x in xs], mode="lines",
                           name="Bayes ceiling (true probabilities)",
                           line=dict(color="#777777", dash="dash", width=1.8),
                           legendgroup="ceiling", showlegend=col == 1, legendrank=2000,
                           hovertemplate="Bayes ceiling %{y:.3f}<extra></extra>"),
                row=1, col=col,
            )
        for k, arch in enumerate(archs):
            points = sorted((int(r["n_train_patients"]), r.get("auroc_vs_truth"))
                            for r in mine if str(r.get("arch")) == arch)
            points = [(n, float(a)) for n, a in points if a is not None]
            if not points:
                continue
            colour = arch_colour(arch, k)
            fig.add_trace(
                go.Scatter(
                    x=[n for n, _ in points], y=[a for _, a in points], mode="lines+markers",
                    name=safe_arch_label(arch), legendgroup=arch, showlegend=col == 1,
                    legendrank=100 + k,
                    line=dict(color=colour, width=2.4, dash=arch_dash(arch)),
                    marker=dict(color=colour, size=8),
                    hovertemplate=(f"<b>{safe_arch_label(arch)}</b><br>%{{x}} training patients"
                                   "<br>AUROC %{y:.3f}<extra></extra>"),
                ),
                row=1, col=col,
            )
    base_layout(fig, "Learning curve: AUROC on a fresh virtual cohort", 460, "learning-curve",
                subtitle_text="one model per size, each trained on its own virtual trial · "
                              "virtual trial (simulated patients), not clinical evidence",
                margin_px=dict(t=96, b=40), legend_y=-0.2)
    fig.update_annotations(font=dict(size=13))
    fig.update_xaxes(type="log", title_text="patients in the training trial", **GRIDDED,
                     **({"tickvals": sizes, "ticktext": [str(n) for n in sizes]}
                        if sizes else {}))
    fig.update_yaxes(title_text="AUROC", tickformat=".2f", **GRIDDED)
    if not rows:
        add_empty_note(fig, "No learning curve in this evaluation")
    return fig


def _falls(mean: np.ndarray, tol: float = 1e-6) -> np.ndarray:
    """Indices j ≥ 1 where the curve drops from dose j−1 to dose j by more than ``tol``."""
    return np.flatnonzero(np.diff(mean) < -tol) + 1


def architecture_contrast_figure(
    cases_labels: Sequence[str],
    curves_by_arch: dict[str, OutcomeCurves],
    protocol: Protocol,
) -> go.Figure:
    """TCP and NTCP against dose for chosen patients, one line style per architecture.

    Args:
        cases_labels: the patients' labels, in the order of the curves' case axis.
        curves_by_arch: ensemble curves per architecture key (``"glogd"``, ``"single"``,
            ``"logistic"``, ``"reference"`` for the virtual-trial truth), each [M, P, D].
        protocol: names the outcomes and the dose axis.

    Colour is the case (as everywhere else), line style the architecture; the ensemble mean is
    drawn (``meta`` = the architecture key). Every dose step over which a mean curve falls
    although the dose rose is overdrawn with a broad translucent highlight (``meta="falls"``):
    the Single-GNN may do this, GLoGD-GNN is monotone in dose by construction. The subtitle
    counts the cases with such a fall per architecture and outcome. The legend has one key per
    architecture (clicking it hides that architecture) and one per case.
    """
    panels = _outcome_panels(protocol)
    fig = make_subplots(
        rows=1, cols=2, horizontal_spacing=0.08, shared_xaxes=True,
        subplot_titles=[f"{short}: {label}" for _, short, label in panels],
    )
    archs = arch_order(list(curves_by_arch))
    n_cases = len(cases_labels)
    counts: dict[tuple[str, str], int] = {}
    for k, arch in enumerate(archs):
        curves = curves_by_arch[arch]
        means = curves.mean()  # (tcp [P, D], ntcp [P, D])
        doses = np.asarray(curves.doses_gy, dtype=float)
        width = 2.6 if arch == SERVED_ARCH else 2.0
        dash = arch_dash(arch)
        # Legend key of the architecture: a grey line in its style (the group's only entry).
        fig.add_trace(go.Scatter(
            x=[None], y=[None], mode="lines", name=safe_arch_label(arch), legendgroup=arch,
            legendrank=100 + k, line=dict(color="#444444", width=width, dash=dash),
            hoverinfo="skip"))
        for col, ((_, short, _), mean_all) in enumerate(zip(panels, means, strict=True),
                                                        start=1):
            n_shown = min(len(cases_labels), mean_all.shape[0])
            # Falling steps first, so the highlight lies under the curves.
            seg_x: list[float | None] = []
            seg_y: list[float | None] = []
            n_falling = 0
            for i in range(n_shown):
                mean = np.asarray(mean_all[i], dtype=float)
                falls = _falls(mean)
                if falls.size:
                    n_falling += 1
                    for j in falls:
                        seg_x += [float(doses[j - 1]), float(doses[j]), None]
                        seg_y += [float(mean[j - 1]), float(mean[j]), None]
            counts[(arch, short)] = n_falling
            if seg_x:
                fig.add_trace(
                    go.Scatter(
                        x=seg_x, y=seg_y, mode="lines", connectgaps=False,
                        name=f"{safe_arch_label(arch)}: falls with dose",
                        legendgroup=f"falls-{arch}", legendrank=1000 + k,
                        showlegend=not any(t.legendgroup == f"falls-{arch}" and t.showlegend
                                           for t in fig.data),
                        # Okabe–Ito yellow, a highlighter no case colour uses.
                        line=dict(color="rgba(240,228,66,0.8)", width=11),
                        meta="falls", hoverinfo="skip",
                    ),
                    row=1, col=col,
                )
            for i in range(n_shown):
                label = cases_labels[i]
                colour = case_colour(i)
                fig.add_trace(
                    go.Scatter(
                        x=doses, y=np.asarray(mean_all[i], dtype=float), mode="lines",
                        name=f"{safe(label)} · {safe_arch_label(arch)}",
                        legendgroup=arch, showlegend=False,
                        line=dict(color=colour, width=width, dash=dash),
                        meta=arch,
                        hovertemplate=(
                            f"<b>{safe(label)}</b> · {safe_arch_label(arch)}<br>"
                            f"dose %{{x:.2f}} Gy/fx<br>{short} %{{y:.1%}}<extra></extra>"
                        ),
                    ),
                    row=1, col=col,
                )
    for i, label in enumerate(cases_labels):
        fig.add_trace(go.Scatter(
            x=[None], y=[None], mode="lines", name=safe(label), legendgroup=f"case{i}",
            legendrank=500 + i, line=dict(color=case_colour(i), width=6), hoverinfo="skip"))
    parts = []
    for arch in archs:
        if arch == REFERENCE:
            continue
        tcp_n, ntcp_n = counts.get((arch, "TCP"), 0), counts.get((arch, "NTCP"), 0)
        parts.append(f"{safe_arch_label(arch)} {tcp_n}/{n_cases} (TCP), {ntcp_n}/{n_cases} (NTCP)")
    summary = ("cases whose mean curve falls with dose: " + "; ".join(parts)) if parts else ""
    base_layout(fig, "Dose response by architecture (ensemble means)", 560,
                f"contrast-{case_revision(protocol, list(cases_labels))}",
                subtitle_text=f"colour: case · line style: architecture · {summary}<br>"
                              f"{VIRTUAL_TRIAL_NOTE}",
                margin_px=dict(t=100, b=40), legend_y=-0.18)
    fig.update_layout(legend=dict(entrywidth=150, entrywidthmode="pixels"))
    fig.update_annotations(font=dict(size=13))
    fig.update_xaxes(title_text="adaptive dose per fraction (Gy/fx)", **GRIDDED)
    fig.update_yaxes(range=[0, 1.02], tickformat=".0%", **GRIDDED)
    fig.update_yaxes(title_text="probability", col=1)
    if not cases_labels or not curves_by_arch:
        add_empty_note(fig, "No cases to show")
    return fig



def _calibrated(summary: dict) -> list[tuple[str, int, str, dict]]:
    """(arch, its draw index, "tcp"/"ntcp", calibration) of every architecture and outcome of an
    RTOE summary that has a ``calibration``, in table order; the calibration dict carries the
    served map's ``method`` (from ``calibrator``) when the evaluation recorded one."""
    archs = summary.get("architectures") or {}
    out = []
    for k, arch in enumerate(arch_order(list(archs))):
        for key in ("tcp", "ntcp"):
            entry = archs[arch].get(key) or {}
            if entry.get("calibration"):
                method = (entry.get("calibrator") or {}).get("method")
                out.append((arch, k, key, {**entry["calibration"], "method": method}))
    return out


_MAP_WORDS = {"none": "as trained", "platt": "Platt",
              "platt-reference-dose": "Platt at the reference dose"}
"""How the reliability legend names each recalibration map."""


def reliability_figure(summary: dict, protocol: Protocol) -> go.Figure:
    """Reliability diagram on the fresh cohort, TCP outcome left, NTCP outcome right.

    Args:
        summary: :func:`engine.arclids.rtoe_eval.summarise_evaluation` (per architecture and
            "tcp"/"ntcp", ``calibration`` with ``reliability``: per bin of the predicted
            probability ``mean_predicted``, ``observed_rate``, ``mean_true`` and ``n``; ``citl``
            and ``ece``). Architectures without it are left out.
        protocol: names the outcomes.

    Per architecture (its colour): the observed outcome rate per bin (circles, solid line,
    ``meta="observed"``) and the bin's mean true probability (diamonds, dotted,
    ``meta="true"``), both against the bin's mean predicted probability; on the dotted
    diagonal a model is calibrated. The observed rate is noisy where a bin holds few cases (the
    hover gives n); the true probability is what only a virtual trial can show. Each panel's
    legend gives the recalibration map served (when recorded) and the calibration in the large
    (mean predicted − mean true probability).
    """
    panels = _outcome_panels(protocol)
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.12,
                        subplot_titles=[f"{short}: {label}" for _, short, label in panels])
    rows = _calibrated(summary)
    for col, (_, short, _) in enumerate(panels, start=1):
        legend = "legend" if col == 1 else "legend2"
        for arch, k, key, cal in rows:
            if key != short.lower():
                continue
            bins = cal.get("reliability") or []
            colour = arch_colour(arch, k)
            name = safe_arch_label(arch)
            x = [b["mean_predicted"] for b in bins]
            n = [b["n"] for b in bins]
            citl = cal.get("citl")
            map_words = _MAP_WORDS.get(cal.get("method"))
            facts = [map_words] if map_words else []
            if citl is not None:
                facts.append(f"calibration in the large {citl:+.3f}")
            head = name + (f" ({'; '.join(facts)})" if facts else "")
            for what, y_key, symbol, dash in (("observed", "observed_rate", "circle", "solid"),
                                              ("true", "mean_true", "diamond", "dot")):
                label = ("observed outcome rate" if what == "observed"
                         else "mean true probability")
                fig.add_trace(go.Scatter(
                    x=x, y=[b[y_key] for b in bins], customdata=n, mode="lines+markers",
                    name=head if what == "observed" else f"{name}: {label}",
                    legend=legend, legendgroup=f"{arch}-{col}", meta=what,
                    showlegend=what == "observed",
                    line=dict(color=colour, width=2 if what == "observed" else 1.6, dash=dash),
                    marker=dict(color=colour, size=8, symbol=symbol),
                    hovertemplate=(f"<b>{name}</b> · {short}<br>mean predicted %{{x:.3f}}<br>"
                                   f"{label} %{{y:.3f}}<br>%{{customdata}} cases in the bin"
                                   "<extra></extra>"),
                ), row=1, col=col)
        fig.add_trace(go.Scatter(
            x=[0, 1], y=[0, 1], mode="lines", name="calibrated (diagonal)", legend=legend,
            line=dict(color="#999999", dash="dot", width=1.2), hoverinfo="skip",
            legendrank=2000), row=1, col=col)
    # one key for the two marker styles (the architectures' entries show the observed rate)
    for what, symbol, dash in (("observed outcome rate", "circle", "solid"),
                               ("mean true probability", "diamond", "dot")):
        fig.add_trace(go.Scatter(
            x=[None], y=[None], mode="lines+markers", name=what, legend="legend",
            line=dict(color="#444444", dash=dash), marker=dict(symbol=symbol, color="#444444"),
            hoverinfo="skip", legendrank=1500))
    base_layout(fig, "Calibration: reliability of the predicted probabilities", 640,
                f"reliability-{protocol.name}",
                subtitle_text=f"{_FRESH_NOTE} · probability at each patient's received dose, "
                              "10 equal-width bins · on the diagonal a model is calibrated<br>"
                              + VIRTUAL_TRIAL_NOTE,
                margin_px=dict(t=110, b=30))
    legend_style = dict(orientation="v", yanchor="top", y=-0.2, xanchor="left",
                        font=dict(size=12), bgcolor="rgba(255,255,255,0)")
    fig.update_layout(showlegend=True, legend=dict(legend_style, x=0.0),
                      legend2=dict(legend_style, x=0.56))
    fig.update_annotations(font=dict(size=13))
    fig.update_xaxes(range=[0, 1], title_text="mean predicted probability (bin)",
                     tickformat=".1f", dtick=0.2, **GRIDDED)
    fig.update_yaxes(range=[0, 1.01], tickformat=".1f", dtick=0.2, **GRIDDED)
    fig.update_yaxes(title_text="observed rate · mean true probability", col=1)
    if not rows:
        add_empty_note(fig, "No calibration metrics in this evaluation")
    return fig


def interval_coverage_figure(summary: dict, protocol: Protocol) -> go.Figure:
    """Stated interval level against the measured coverage of the truth, per architecture and
    outcome.

    Args:
        summary: :func:`engine.arclids.rtoe_eval.summarise_evaluation` (``calibration`` with
            ``interval_level`` and ``interval_coverage_truth``: the share of fresh-cohort
            patient × dose points whose true probability lies in the served interval, and
            ``interval_width_mean``).
        protocol: names the outcomes.

    Bars: the measured coverage (TCP and NTCP side by side per architecture, ``meta`` =
    "tcp"/"ntcp"); the dashed line is the stated level and the shaded band the aim (within
    ±:data:`COVERAGE_TOLERANCE` of it). An interval without a stated level (an uncalibrated
    ensemble's members' min–max) has no line.
    """
    rows = [r for r in _calibrated(summary)
            if r[3].get("interval_coverage_truth") is not None]
    archs = arch_order(list(dict.fromkeys(arch for arch, _, _, _ in rows)))
    fig = go.Figure()
    for (_, short, label), colour in zip(_outcome_panels(protocol), (SKY_BLUE, REDDISH_PURPLE),
                                         strict=True):
        mine = {arch: cal for arch, _, key, cal in rows if key == short.lower()}
        shown = [a for a in archs if a in mine]
        if not shown:
            continue
        levels = [mine[a].get("interval_level") for a in shown]
        fig.add_trace(go.Bar(
            x=[safe_arch_label(a) for a in shown],
            y=[mine[a]["interval_coverage_truth"] for a in shown],
            customdata=[["none" if lv is None else f"{lv:.0%}",
                         mine[a].get("interval_width_mean") or float("nan")]
                        for a, lv in zip(shown, levels, strict=True)],
            name=f"{short}: {label}", meta=short.lower(), marker_color=colour,
            text=[f"{mine[a]['interval_coverage_truth']:.0%}" for a in shown],
            textposition="outside", cliponaxis=False,
            hovertemplate=(f"%{{x}} · {short}<br>true probability inside the interval: "
                           "%{y:.1%}<br>stated level %{customdata[0]}<br>mean width "
                           "%{customdata[1]:.3f}<extra></extra>"),
        ))
    levels = sorted({float(cal["interval_level"]) for _, _, _, cal in rows
                     if cal.get("interval_level") is not None})
    for level in levels:
        fig.add_hrect(y0=max(0.0, level - COVERAGE_TOLERANCE),
                      y1=min(1.0, level + COVERAGE_TOLERANCE),
                      fillcolor="rgba(0,0,0,0.06)", line_width=0, layer="below")
        fig.add_hline(y=level, line=dict(color="#333333", dash="dash", width=1.5),
                      annotation_text=f"stated level {level:.0%}",
                      annotation_position="top left")
    stated = " / ".join(f"{lv:.0%}" for lv in levels) or "none"
    base_layout(fig, "Interval coverage: does the stated interval hold the truth?", 420,
                f"coverage-{protocol.name}",
                subtitle_text=(f"{_FRESH_NOTE} · bars: share of patient × dose points whose "
                               f"true probability lies in the {stated} interval · band: "
                               f"stated level ± {COVERAGE_TOLERANCE:.2f}<br>"
                               + VIRTUAL_TRIAL_NOTE),
                margin_px=dict(t=110, b=40), legend_y=-0.15)
    fig.update_layout(barmode="group")
    fig.update_yaxes(range=[0, 1.08], tickformat=".0%", title_text="coverage of the truth",
                     **GRIDDED)
    if not rows:
        add_empty_note(fig, "No interval coverage in this evaluation")
    return fig
